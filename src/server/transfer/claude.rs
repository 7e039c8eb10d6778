//! Claude's data export (`conversations.json`): each conversation a `uuid`, a `name` and its
//! `chat_messages` in order, each from the `human` or the `assistant`, its text in `content`
//! blocks (`text`, `thinking`, `tool_use`, `tool_result`) or, in older exports, in `text`, with
//! `attachments` (their extracted text is kept) and `files` (shown as placeholders: the export
//! does not hold them). The export names no model; replies say they came from Claude. Each
//! message names the one it follows (`parent_message_uuid`): an edited question or a retried
//! answer starts a branch, and `current_leaf_message_uuid` ends the branch on screen.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::chatgpt::{fenced, quoted};
use super::convert::{iso_ms, Builder, ConvertError};
use super::tree::{self, Node, Piece};
use crate::server::export_format::Conversation;

/// What Rill calls the model of an imported Claude reply.
const MODEL: &str = "claude.ai/claude";

#[derive(Deserialize)]
struct Export {
    uuid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    current_leaf_message_uuid: Option<String>,
    chat_messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    parent_message_uuid: Option<String>,
    sender: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    attachments: Vec<Value>,
    #[serde(default)]
    files: Vec<Value>,
}

/// Whether a conversation of an array looks like Claude's.
pub fn recognises(value: &Value) -> bool {
    value.get("chat_messages").is_some_and(Value::is_array)
}

/// One conversation of Claude's export in Rill's format.
pub fn convert(value: Value) -> Result<Conversation, ConvertError> {
    let export: Export = serde_json::from_value(value).map_err(ConvertError::shape)?;
    let created = export.created_at.as_deref().and_then(iso_ms).unwrap_or(0);
    let updated = export
        .updated_at
        .as_deref()
        .and_then(iso_ms)
        .unwrap_or(created);
    let mut builder = Builder::new(
        export.uuid,
        export.name.unwrap_or_default(),
        MODEL.to_owned(),
        created,
        updated,
    );
    let messages = &export.chat_messages;
    // Node 0 is a root above the first messages (editing the first question makes several).
    let index_of: HashMap<&str, usize> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((m.uuid.as_deref()?, i + 1)))
        .collect();
    // Exports before branches were kept name no parents: each message then follows the one
    // listed before it.
    let tree = messages.iter().any(|m| {
        m.parent_message_uuid
            .as_deref()
            .is_some_and(|p| index_of.contains_key(p))
    });
    let mut nodes = Vec::with_capacity(messages.len() + 1);
    nodes.push(Node {
        piece: Piece::Nothing,
        at: created,
        children: Vec::new(),
    });
    for (n, message) in messages.iter().enumerate() {
        let at = message
            .created_at
            .as_deref()
            .and_then(iso_ms)
            .unwrap_or(updated);
        let piece = match message.sender.as_str() {
            "human" | "user" => Piece::Question(question_text(message)),
            "assistant" => {
                let (text, thinking) = answer_text(message);
                Piece::Answer {
                    text,
                    thinking,
                    model: Some(MODEL.to_owned()),
                }
            }
            other => {
                return Err(ConvertError::Invalid(format!(
                    "message {} is from {other:?}, neither \"human\" nor \"assistant\"",
                    n + 1
                )))
            }
        };
        nodes.push(Node {
            piece,
            at,
            children: Vec::new(),
        });
    }
    for (n, message) in messages.iter().enumerate() {
        let parent = if tree {
            message
                .parent_message_uuid
                .as_deref()
                .and_then(|p| index_of.get(p).copied())
                .filter(|p| *p != n + 1)
                .unwrap_or(0)
        } else {
            n
        };
        if let Some(node) = nodes.get_mut(parent) {
            node.children.push(n + 1);
        }
    }
    let branches = tree::add_branches(&mut builder, &nodes, 0)?;
    if branches.reached < nodes.len() {
        return Err(ConvertError::Invalid(format!(
            "{} of its messages follow one another in a circle",
            nodes.len() - branches.reached
        )));
    }
    // The branch on screen: the leaf Claude names, else the last message listed.
    let current = export
        .current_leaf_message_uuid
        .as_deref()
        .and_then(|leaf| index_of.get(leaf).copied())
        .or(Some(messages.len()));
    builder.build(tree::current_turn(&nodes, &branches, current))
}

/// A question: its text, the text extracted from its attachments, placeholders for its files.
fn question_text(message: &Message) -> String {
    let (text, _) = blocks_text(message);
    let mut parts = vec![text];
    for attachment in &message.attachments {
        let name = attachment
            .get("file_name")
            .and_then(Value::as_str)
            .unwrap_or("attachment");
        match attachment.get("extracted_content").and_then(Value::as_str) {
            Some(content) if !content.trim().is_empty() => {
                parts.push(format!("*Attached {name}:*\n\n{}", fenced("", content)));
            }
            _ => parts.push(format!("*[{name}: not included in the export]*")),
        }
    }
    for file in &message.files {
        let name = file
            .get("file_name")
            .and_then(Value::as_str)
            .unwrap_or("a file");
        parts.push(format!("*[{name}: not included in the export]*"));
    }
    parts.retain(|p| !p.trim().is_empty());
    parts.join("\n\n")
}

fn answer_text(message: &Message) -> (String, String) {
    blocks_text(message)
}

/// The text and thinking of a message's `content` blocks (or its `text` when it has none).
fn blocks_text(message: &Message) -> (String, String) {
    if message.content.is_empty() {
        return (message.text.clone().unwrap_or_default(), String::new());
    }
    let mut text = Vec::new();
    let mut thinking = Vec::new();
    for block in &message.content {
        let str_of = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
        match block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "text" => text.push(str_of("text").to_owned()),
            "thinking" => thinking.push(str_of("thinking").to_owned()),
            "tool_use" => {
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("a tool");
                let input = block
                    .get("input")
                    .map(|i| serde_json::to_string_pretty(i).unwrap_or_default())
                    .unwrap_or_default();
                text.push(format!("*Used {name}:*\n\n{}", fenced("json", &input)));
            }
            "tool_result" => {
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("a tool");
                let content = match block.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                if !content.trim().is_empty() {
                    text.push(format!("*From {name}:*\n\n{}", quoted(&content)));
                }
            }
            "image" => text.push("*[image: not included in the export]*".to_owned()),
            other if !other.is_empty() => {
                text.push(format!(
                    "*[{}: not included in the export]*",
                    other.replace('_', " ")
                ));
            }
            _ => {}
        }
    }
    text.retain(|t| !t.trim().is_empty());
    thinking.retain(|t| !t.trim().is_empty());
    (text.join("\n\n"), thinking.join("\n\n"))
}
