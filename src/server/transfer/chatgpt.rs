//! ChatGPT's data export (`conversations.json`, or `conversations-000.json`, `-001.json`, … in
//! newer archives): each conversation a `mapping` of message nodes, each node with its `parent`
//! and `children`, and `current_node` the end of the branch shown. Rill keeps the tree: a
//! question (a `user` node) and the answer after it (the `assistant` and `tool` nodes up to the
//! next question) make a turn, and every path through the tree is a branch. Hidden nodes (the
//! empty system root, memory and context updates) are left out; custom instructions become the
//! system prompt; images, audio and files are shown as placeholders (the export holds only
//! pointers to them); reasoning summaries become the reply's thinking.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::convert::{seconds_to_ms, Builder, ConvertError};
use super::tree::{self, Piece};
use crate::server::export_format::Conversation;

#[derive(Deserialize)]
struct Export {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    update_time: Option<f64>,
    mapping: HashMap<String, Node>,
    #[serde(default)]
    current_node: Option<String>,
    #[serde(default)]
    default_model_slug: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    children: Vec<String>,
}

#[derive(Deserialize)]
struct Message {
    author: Author,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct Author {
    role: String,
    #[serde(default)]
    name: Option<String>,
}

/// Whether a conversation of an array looks like ChatGPT's.
pub fn recognises(value: &Value) -> bool {
    value.get("mapping").is_some_and(Value::is_object)
}

/// One conversation of ChatGPT's export in Rill's format.
pub fn convert(value: Value) -> Result<Conversation, ConvertError> {
    let export: Export = serde_json::from_value(value).map_err(ConvertError::shape)?;
    let source = export
        .conversation_id
        .or(export.id)
        .ok_or(ConvertError::Missing("its `id`"))?;
    let created = export.create_time.map_or(0, seconds_to_ms);
    let updated = export.update_time.map_or(created, seconds_to_ms);
    let mut builder = Builder::new(
        source,
        export.title.unwrap_or_default(),
        export
            .default_model_slug
            .as_deref()
            .map(model_id)
            .unwrap_or_else(|| "chatgpt/unknown".to_owned()),
        created,
        updated,
    );
    // The mapping as the tree every import walks: its ids as indices, children the mapping
    // names but does not hold left out.
    let ids: Vec<&String> = export.mapping.keys().collect();
    let index_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let nodes: Vec<tree::Node> = ids
        .iter()
        .filter_map(|id| export.mapping.get(*id))
        .map(|node| tree::Node {
            piece: node.message.as_ref().map_or(Piece::Nothing, piece_of),
            at: node
                .message
                .as_ref()
                .and_then(|m| m.create_time)
                .map_or(updated, seconds_to_ms),
            children: node
                .children
                .iter()
                .filter_map(|c| index_of.get(c.as_str()).copied())
                .collect(),
        })
        .collect();
    let roots: Vec<usize> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| {
            export.mapping.get(**id).is_some_and(|node| {
                node.parent
                    .as_ref()
                    .is_none_or(|p| !export.mapping.contains_key(p))
            })
        })
        .map(|(i, _)| i)
        .collect();
    let [root] = roots.as_slice() else {
        return Err(ConvertError::Invalid(format!(
            "its message tree has {} roots where one was expected",
            roots.len()
        )));
    };
    let branches = tree::add_branches(&mut builder, &nodes, *root)?;
    let current = export
        .current_node
        .as_deref()
        .and_then(|n| index_of.get(n).copied());
    builder.build(tree::current_turn(&nodes, &branches, current))
}

/// `gpt-4o` → `chatgpt/gpt-4o`: where an imported reply came from, as Rill names models.
fn model_id(slug: &str) -> String {
    format!("chatgpt/{slug}")
}

fn piece_of(message: &Message) -> Piece {
    let hidden = message
        .metadata
        .as_ref()
        .and_then(|m| m.get("is_visually_hidden_from_conversation"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let content = message.content.as_ref();
    let kind = content
        .and_then(|c| c.get("content_type"))
        .and_then(Value::as_str)
        .unwrap_or("text");
    if kind == "user_editable_context" {
        let instructions = ["user_profile", "user_instructions"]
            .iter()
            .filter_map(|k| content.and_then(|c| c.get(*k)).and_then(Value::as_str))
            .filter(|t| !t.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        return if instructions.is_empty() {
            Piece::Nothing
        } else {
            Piece::Instructions(instructions)
        };
    }
    if hidden {
        return Piece::Nothing;
    }
    let model = message
        .metadata
        .as_ref()
        .and_then(|m| m.get("model_slug"))
        .and_then(Value::as_str)
        .map(model_id);
    match message.author.role.as_str() {
        "user" => {
            let text = content.map(text_of).unwrap_or_default();
            Piece::Question(text)
        }
        "assistant" => match kind {
            "thoughts" => Piece::Answer {
                text: String::new(),
                thinking: thoughts(content),
                model,
            },
            "reasoning_recap" | "model_editable_context" => Piece::Nothing,
            "code" => {
                let code = content
                    .and_then(|c| c.get("text"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let language = content
                    .and_then(|c| c.get("language"))
                    .and_then(Value::as_str)
                    .filter(|l| *l != "unknown")
                    .unwrap_or("");
                Piece::Answer {
                    text: fenced(language, code),
                    thinking: String::new(),
                    model,
                }
            }
            _ => Piece::Answer {
                text: content.map(text_of).unwrap_or_default(),
                thinking: String::new(),
                model,
            },
        },
        "tool" => {
            let name = message.author.name.as_deref().unwrap_or("a tool");
            let text = content.map(text_of).unwrap_or_default();
            let shown = if text.trim().is_empty() {
                String::new()
            } else if kind == "execution_output" {
                format!("*Output:*\n\n{}", fenced("", &text))
            } else {
                format!("*From {name}:*\n\n{}", quoted(&text))
            };
            Piece::Answer {
                text: shown,
                thinking: String::new(),
                model: None,
            }
        }
        // A system message in the middle of a tree (not hidden): part of the context, shown as
        // the system prompt.
        "system" => {
            let text = content.map(text_of).unwrap_or_default();
            if text.trim().is_empty() {
                Piece::Nothing
            } else {
                Piece::Instructions(text)
            }
        }
        _ => Piece::Nothing,
    }
}

/// The text of a `content`: its `parts` (strings, and placeholders for images, audio and
/// files), or its `text`, or a browsing result.
fn text_of(content: &Value) -> String {
    if let Some(parts) = content.get("parts").and_then(Value::as_array) {
        return parts
            .iter()
            .filter_map(part_text)
            .filter(|t| !t.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    for key in ["text", "result", "summary"] {
        if let Some(text) = content.get(key).and_then(Value::as_str) {
            return text.to_owned();
        }
    }
    String::new()
}

/// One part: a string, or an object shown as a placeholder (its own transcription for audio).
fn part_text(part: &Value) -> Option<String> {
    if let Some(text) = part.as_str() {
        return Some(text.to_owned());
    }
    let kind = part.get("content_type").and_then(Value::as_str)?;
    Some(match kind {
        "audio_transcription" => part
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        "image_asset_pointer" => {
            let size = match (
                part.get("width").and_then(Value::as_u64),
                part.get("height").and_then(Value::as_u64),
            ) {
                (Some(w), Some(h)) => format!(", {w}×{h}"),
                _ => String::new(),
            };
            format!("*[image{size}: not included in the export]*")
        }
        "audio_asset_pointer" | "real_time_user_audio_video_asset_pointer" => {
            "*[audio: not included in the export]*".to_owned()
        }
        other => format!(
            "*[{}: not included in the export]*",
            other.replace('_', " ")
        ),
    })
}

/// Reasoning summaries (`thoughts`), as the reply's thinking.
fn thoughts(content: Option<&Value>) -> String {
    content
        .and_then(|c| c.get("thoughts"))
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|t| {
                    let summary = t.get("summary").and_then(Value::as_str).unwrap_or_default();
                    let body = t.get("content").and_then(Value::as_str).unwrap_or_default();
                    let text = [summary, body]
                        .into_iter()
                        .filter(|s| !s.trim().is_empty())
                        .collect::<Vec<_>>()
                        .join("\n");
                    (!text.is_empty()).then_some(text)
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .unwrap_or_default()
}

/// `text` as a fenced code block whose fence no line of it closes.
pub(super) fn fenced(language: &str, text: &str) -> String {
    let longest = text
        .lines()
        .map(|l| l.trim_start().chars().take_while(|c| *c == '`').count())
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{language}\n{}\n{fence}", text.trim_end())
}

/// `text` as a block quote.
pub(super) fn quoted(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
