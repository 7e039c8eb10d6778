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

use super::convert::{seconds_to_ms, Builder, ConvertError, OpenTurn};
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

/// What one node adds to a turn.
enum Piece {
    /// A question's text.
    Question(String),
    /// Part of an answer: its text and its thinking.
    Answer {
        text: String,
        thinking: String,
        model: Option<String>,
    },
    /// Custom instructions: the system prompt.
    Instructions(String),
    /// Nothing to show.
    Nothing,
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
    let roots: Vec<&String> = export
        .mapping
        .iter()
        .filter(|(_, node)| {
            node.parent
                .as_ref()
                .is_none_or(|p| !export.mapping.contains_key(p))
        })
        .map(|(id, _)| id)
        .collect();
    let [root] = roots.as_slice() else {
        return Err(ConvertError::Invalid(format!(
            "its message tree has {} roots where one was expected",
            roots.len()
        )));
    };
    // Depth first, without recursion (a hostile tree may be deep): each entry is a node, the
    // turn it continues (or the turn it follows, when a question starts), and the state of the
    // answer being gathered.
    let mut stack = vec![Walk {
        node: (*root).clone(),
        parent_turn: None,
        open: None,
    }];
    let mut visited = 0usize;
    // The turn each leaf ends (a branch's last turn).
    let mut turn_of_leaf: HashMap<String, String> = HashMap::new();
    while let Some(Walk {
        node: node_id,
        parent_turn,
        open,
    }) = stack.pop()
    {
        visited += 1;
        if visited > export.mapping.len() {
            return Err(ConvertError::Invalid(
                "its message tree has a cycle".to_owned(),
            ));
        }
        let node = export.mapping.get(&node_id).ok_or_else(|| {
            ConvertError::Invalid(format!("node {node_id:?} is named but missing"))
        })?;
        let piece = node.message.as_ref().map_or(Piece::Nothing, piece_of);
        let time = node
            .message
            .as_ref()
            .and_then(|m| m.create_time)
            .map_or(updated, seconds_to_ms);
        // The turn being gathered after this node, if any.
        let mut open = open;
        let mut parent_turn = parent_turn;
        match piece {
            Piece::Question(text) => {
                // A question straight after another (its answer missing) ends that one.
                if let Some(turn) = open.take() {
                    parent_turn = Some(builder.finish(turn));
                }
                open = Some(builder.start(text, parent_turn.clone(), time));
            }
            Piece::Answer {
                text,
                thinking,
                model,
            } => {
                let turn = open
                    .get_or_insert_with(|| builder.start(String::new(), parent_turn.clone(), time));
                turn.answer(&text, &thinking, model, time);
            }
            Piece::Instructions(text) => builder.instructions(text, time),
            Piece::Nothing => {}
        }
        let children: Vec<&Node> = node
            .children
            .iter()
            .filter_map(|c| export.mapping.get(c))
            .collect();
        if children.is_empty() {
            // A leaf: the end of a branch.
            let turn = match open {
                Some(turn) => Some(builder.finish(turn)),
                None => parent_turn,
            };
            if let Some(turn) = turn {
                turn_of_leaf.insert(node_id, turn);
            }
            continue;
        }
        // Questions after an answer (one, or several: edits) follow the turn it ends, which is
        // stored once; answers after a question (several: regenerations) are each a turn of
        // their own with a copy of the question.
        let asks = children.iter().any(|c| is_question(c));
        let (question_parent, question_open) = match (&open, asks) {
            (Some(turn), true) => (Some(builder.finish(turn.clone())), None),
            _ => (parent_turn.clone(), open.clone()),
        };
        for child_id in node.children.iter().rev() {
            let Some(child) = export.mapping.get(child_id) else {
                continue;
            };
            let (parent_turn, open) = if is_question(child) {
                (question_parent.clone(), question_open.clone())
            } else {
                (parent_turn.clone(), open.clone())
            };
            stack.push(Walk {
                node: child_id.clone(),
                parent_turn,
                open,
            });
        }
    }
    // `current_node` is a leaf in every export seen; from an inner node, its first branch.
    let mut current = export.current_node;
    for _ in 0..export.mapping.len() {
        match current.as_ref().and_then(|n| export.mapping.get(n)) {
            Some(node) if !turn_of_leaf.contains_key(current.as_deref().unwrap_or_default()) => {
                current = node.children.first().cloned();
            }
            _ => break,
        }
    }
    let current = current.and_then(|node| turn_of_leaf.get(&node)).cloned();
    builder.build(current)
}

/// A node that starts a turn: a question the person could see.
fn is_question(node: &Node) -> bool {
    node.message
        .as_ref()
        .is_some_and(|m| matches!(piece_of(m), Piece::Question(_)))
}

struct Walk {
    node: String,
    parent_turn: Option<String>,
    open: Option<OpenTurn>,
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
