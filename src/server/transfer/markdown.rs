//! One conversation as Markdown, as it reads: the branch on screen, each question and answer
//! under a heading, thinking folded away, the system prompt in effect at the top.

use std::fmt::Write;

use crate::format::{byte_size, model_name};
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
        // The files themselves are only in the archive; the Markdown says what was attached.
        for file in &turn.question.files {
            let _ = writeln!(
                out,
                "- Attached: {} ({})",
                escaped(&file.name),
                byte_size(file.size)
            );
        }
        if !turn.question.files.is_empty() {
            out.push('\n');
        }
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

/// A file's name as literal text: its owner chose it, so no character of it may become markup.
fn escaped(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
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

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn a_file_name_cannot_become_a_link_or_markup() {
        assert_eq!(escaped("a](javascript:x)"), r"a\]\(javascript\:x\)");
        assert_eq!(escaped("<img src=x>.png"), r"\<img src\=x\>\.png");
        assert_eq!(escaped("two\nlines"), "two lines");
    }
}
