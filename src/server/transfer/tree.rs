//! A conversation kept as a tree of messages (ChatGPT's `mapping`, Claude's
//! `parent_message_uuid`s) turned into Rill's turns: a question and the answer after it (the
//! messages up to the next question) make a turn, and every path from the root to a leaf is a
//! branch. Questions after one answer (edits) follow the turn it ends, stored once; answers after
//! one question (regenerations) are each a turn of their own with a copy of the question.

use std::collections::HashMap;

use super::convert::{Builder, ConvertError, OpenTurn};

/// What one message adds to a turn.
pub enum Piece {
    /// A question's text.
    Question(String),
    /// Part of an answer: its text and its thinking.
    Answer {
        text: String,
        thinking: String,
        model: Option<String>,
    },
    /// Instructions the conversation was held to: the system prompt.
    Instructions(String),
    /// Nothing to show.
    Nothing,
}

/// One message of the tree: what it adds, when, and the messages after it (by index, in the
/// order the source lists them).
pub struct Node {
    pub piece: Piece,
    pub at: i64,
    pub children: Vec<usize>,
}

/// Where the walk is: a node, the turn it follows when it starts one, and the answer being
/// gathered when it continues one.
struct Walk {
    node: usize,
    parent_turn: Option<String>,
    open: Option<OpenTurn>,
}

/// What walking the tree found.
pub struct Branches {
    /// The turn each leaf ends, by the leaf's index (a branch's last turn).
    pub turn_of_leaf: HashMap<usize, String>,
    /// Nodes reached from the root (fewer than all: some follow one another in a cycle).
    pub reached: usize,
}

/// Adds every branch under `root` to `builder`.
pub fn add_branches(
    builder: &mut Builder,
    nodes: &[Node],
    root: usize,
) -> Result<Branches, ConvertError> {
    let is_question =
        |i: &usize| matches!(nodes.get(*i), Some(n) if matches!(n.piece, Piece::Question(_)));
    // Depth first, without recursion: a hostile tree may be deep.
    let mut stack = vec![Walk {
        node: root,
        parent_turn: None,
        open: None,
    }];
    let mut visited = 0usize;
    let mut turn_of_leaf = HashMap::new();
    while let Some(Walk {
        node: index,
        mut parent_turn,
        mut open,
    }) = stack.pop()
    {
        visited += 1;
        let node = match nodes.get(index) {
            Some(node) if visited <= nodes.len() => node,
            _ => {
                return Err(ConvertError::Invalid(
                    "its message tree has a cycle".to_owned(),
                ))
            }
        };
        match &node.piece {
            Piece::Question(text) => {
                // A question straight after another (its answer missing) ends that one.
                if let Some(turn) = open.take() {
                    parent_turn = Some(builder.finish(turn));
                }
                open = Some(builder.start(text.clone(), parent_turn.clone(), node.at));
            }
            Piece::Answer {
                text,
                thinking,
                model,
            } => {
                let turn = open.get_or_insert_with(|| {
                    builder.start(String::new(), parent_turn.clone(), node.at)
                });
                turn.answer(text, thinking, model.clone(), node.at);
            }
            Piece::Instructions(text) => builder.instructions(text.clone(), node.at),
            Piece::Nothing => {}
        }
        if node.children.is_empty() {
            let turn = match open {
                Some(turn) => Some(builder.finish(turn)),
                None => parent_turn,
            };
            if let Some(turn) = turn {
                turn_of_leaf.insert(index, turn);
            }
            continue;
        }
        let asks = node.children.iter().any(is_question);
        let (question_parent, question_open) = match (&open, asks) {
            (Some(turn), true) => (Some(builder.finish(turn.clone())), None),
            _ => (parent_turn.clone(), open.clone()),
        };
        // Reversed onto the stack, so the source's first child is walked (and stored) first.
        for &child in node.children.iter().rev() {
            let (parent_turn, open) = if is_question(&child) {
                (question_parent.clone(), question_open.clone())
            } else {
                (parent_turn.clone(), open.clone())
            };
            stack.push(Walk {
                node: child,
                parent_turn,
                open,
            });
        }
    }
    Ok(Branches {
        turn_of_leaf,
        reached: visited,
    })
}

/// The turn the branch through `current` ends: `current` is a leaf in every export seen; from an
/// inner node, its first branch is taken.
pub fn current_turn(nodes: &[Node], branches: &Branches, current: Option<usize>) -> Option<String> {
    let mut current = current?;
    for _ in 0..nodes.len() {
        if let Some(turn) = branches.turn_of_leaf.get(&current) {
            return Some(turn.clone());
        }
        current = *nodes.get(current)?.children.first()?;
    }
    None
}
