//! One conversation as Markdown, as it reads: the branch on screen, each question and answer
//! under a heading, thinking folded away, the system prompt in effect at the top.

use std::fmt::Write;

use crate::format::model_name;
use crate::model::MessageStatus;
use crate::server::export_format::Conversation;

pub fn to_markdown(conversation: &Conversation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", conversation.title);
    let prompt = conversation
        .system_prompts
        .iter()
        .find(|p| p.revision == conversation.system_prompt_revision);
    if let Some(prompt) = prompt {
        let _ = writeln!(out, "**System prompt:**\n\n{}\n", quote(&prompt.text));
    }
    for turn in conversation.branch_on_screen() {
        let _ = writeln!(out, "## You\n\n{}\n", turn.question.text.trim_end());
        let reply = &turn.reply;
        let who = reply.model.as_deref().map_or("Assistant", model_name);
        let _ = writeln!(out, "## {who}\n");
        if !reply.thinking.is_empty() {
            let _ = writeln!(
                out,
                "<details><summary>Thinking</summary>\n\n{}\n\n</details>\n",
                reply.thinking.trim_end()
            );
        }
        if !reply.text.is_empty() {
            let _ = writeln!(out, "{}\n", reply.text.trim_end());
        }
        let ending = match reply.status {
            MessageStatus::Complete | MessageStatus::Streaming => None,
            MessageStatus::Stopped => Some("Stopped"),
            MessageStatus::Failed => Some("Failed"),
            MessageStatus::Interrupted => Some("Interrupted"),
        };
        if let Some(ending) = ending {
            match &reply.error {
                Some(error) => {
                    let _ = writeln!(out, "*{ending}: {error}*\n");
                }
                None => {
                    let _ = writeln!(out, "*{ending}*\n");
                }
            }
        }
    }
    out
}

fn quote(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
