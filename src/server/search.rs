//! Search as a person types it: free text turned into an FTS5 query that cannot fail to parse,
//! and the index's marked snippets turned into text ranges ([`Marked`]).
//!
//! Every word becomes a quoted FTS5 string (so `AND`, `NEAR`, `*`, `(`, `:` and stray quotes are
//! just text) and, from two characters on, a prefix query (`"pyth"*` finds "python" while it is
//! being typed); text in double quotes is a phrase, matched as written. All terms must match.

use std::collections::HashMap;

use uuid::Uuid;

use crate::error::ApiError;
use crate::model::search::{
    FoundMessage, Marked, SearchHit, MAX_SEARCH_CHARS, MAX_SEARCH_TERMS, SEARCH_RESULTS,
};
use crate::model::ConversationView;
use crate::server::db::branches::{self, SwitchBranch};
use crate::server::db::search::Marking;
use crate::server::db::{self, Db, Owner};

/// Where the index marks a matched word's start and end in a snippet: control characters that a
/// person's text does not hold in practice (and if it does, only their own snippet shows it
/// marked oddly: the ranges are checked against the text, and the text is never HTML).
pub const MARK_START: char = '\u{2}';
pub const MARK_END: char = '\u{3}';

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SearchInputError {
    #[error("a search is at most {MAX_SEARCH_CHARS} characters")]
    TooLong,
    #[error("a search is at most {MAX_SEARCH_TERMS} words or phrases")]
    TooManyTerms,
}

/// The FTS5 query for what a person typed; `None` when it has nothing to search for (empty, or
/// only punctuation).
pub fn fts_query(typed: &str) -> Result<Option<String>, SearchInputError> {
    if typed.chars().count() > MAX_SEARCH_CHARS {
        return Err(SearchInputError::TooLong);
    }
    let mut terms = Vec::new();
    // Text between double quotes is one phrase; an unclosed quote runs to the end.
    for (i, part) in typed.split('"').enumerate() {
        if i % 2 == 1 {
            terms.extend(phrase(part));
        } else {
            terms.extend(part.split_whitespace().filter_map(word));
        }
    }
    if terms.len() > MAX_SEARCH_TERMS {
        return Err(SearchInputError::TooManyTerms);
    }
    Ok((!terms.is_empty()).then(|| terms.join(" ")))
}

/// Whether the index's tokenizer would find a word in this text (unicode61 keeps letters and
/// numbers; everything else separates words).
fn has_word(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

/// A word, as a prefix query from two characters on (one character would match a great many
/// words and only shows the person is still typing).
fn word(text: &str) -> Option<String> {
    has_word(text).then(|| {
        let prefix = if text.chars().filter(|c| c.is_alphanumeric()).count() >= 2 {
            "*"
        } else {
            ""
        };
        format!("\"{text}\"{prefix}")
    })
}

/// A phrase: its words in order. (The text cannot hold a double quote: it was split on them.)
fn phrase(text: &str) -> Option<String> {
    has_word(text).then(|| format!("\"{}\"", text.trim()))
}

/// A snippet or title as the index marked it: the markers taken out, their places kept as
/// ranges. A marker without its pair is dropped.
pub fn marked(raw: &str) -> Marked {
    let mut text = String::with_capacity(raw.len());
    let mut marks = Vec::new();
    let mut open: Option<usize> = None;
    for c in raw.chars() {
        match c {
            MARK_START => open = Some(text.len()),
            MARK_END => {
                if let Some(start) = open.take().filter(|&start| start < text.len()) {
                    if let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(text.len()))
                    {
                        marks.push((start, end));
                    }
                }
            }
            c => text.push(c),
        }
    }
    Marked { text, marks }
}

/// Message matches read for one search: more than are shown, since a conversation shows at
/// most [`PER_CONVERSATION`] of them.
const MESSAGE_MATCHES_READ: u32 = 60;
/// Titles shown at most, above the messages.
const TITLES_SHOWN: u32 = 5;
/// Messages of one conversation shown at most: one conversation full of a word should not hide
/// the others.
const PER_CONVERSATION: usize = 2;

/// What the owner's conversations hold of `typed`: titles that match first, then messages, best
/// first (bm25 among the newest that match), at most [`SEARCH_RESULTS`]; snippets only for the
/// messages shown.
pub async fn search(db: &Db, owner: &Owner, typed: &str) -> Result<Vec<SearchHit>, ApiError> {
    let Some(query) = fts_query(typed).map_err(|e| ApiError::BadRequest(e.to_string()))? else {
        return Ok(Vec::new());
    };
    let Some(docs) = db::search::owner_docs(db, owner).await? else {
        return Ok(Vec::new());
    };
    // Apart, on two connections of the pool.
    let (titles, messages) = tokio::try_join!(
        db::search::titles(db, owner, docs, &query, TITLES_SHOWN),
        db::search::messages(db, owner, docs, &query, MESSAGE_MATCHES_READ),
    )?;
    // Which messages are shown is settled first: only they get a snippet.
    let mut per_conversation: HashMap<Uuid, usize> = HashMap::new();
    let shown: Vec<_> = messages
        .into_iter()
        .filter(|m| {
            let count = per_conversation.entry(m.conversation_id).or_default();
            let keep = *count < PER_CONVERSATION;
            if keep {
                *count += 1;
            }
            keep
        })
        .take(SEARCH_RESULTS.saturating_sub(titles.len()))
        .collect();
    let texts: Vec<(&str, Marking)> = titles
        .iter()
        .map(|t| (t.title.as_str(), Marking::Whole))
        .chain(shown.iter().map(|m| (m.content.as_str(), Marking::Snippet)))
        .collect();
    let mut marks = db::search::mark(db, &query, &texts).await?.into_iter();
    let mut hits = Vec::with_capacity(texts.len());
    for t in titles {
        // A title renamed since it matched is shown as it is now, unmarked.
        let title = match marks.next().flatten() {
            Some(raw) => marked(&raw),
            None => Marked {
                text: t.title,
                marks: Vec::new(),
            },
        };
        hits.push(SearchHit {
            conversation_id: t.conversation_id,
            title,
            message: None,
        });
    }
    for (m, mark) in shown.into_iter().zip(marks) {
        // A message whose text no longer matches (purged since) is not shown.
        let Some(raw) = mark else { continue };
        hits.push(SearchHit {
            conversation_id: m.conversation_id,
            title: Marked {
                text: m.title,
                marks: Vec::new(),
            },
            message: Some(FoundMessage {
                id: m.message_id,
                role: m.role,
                snippet: marked(&raw),
            }),
        });
    }
    Ok(hits)
}

/// The conversation as the page shows it, opened at a message a search found: the branch on
/// screen moves to the message's branch if it is on another (as choosing that version would),
/// and the page's list reaches back to it.
pub async fn open_at(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<ConversationView, ApiError> {
    let no_such = || ApiError::NotFound("no such message".into());
    let turn = db::search::turn_of(db, owner, conversation_id, message_id)
        .await?
        .ok_or_else(no_such)?;
    if !db::search::on_branch_on_screen(db, owner, conversation_id, turn).await? {
        match branches::switch_branch(db, owner, conversation_id, turn).await? {
            SwitchBranch::Switched => {}
            SwitchBranch::NoSuchTurn => return Err(no_such()),
            SwitchBranch::Busy => {
                return Err(ApiError::Conflict(
                    "that message is on another version of the conversation, and a reply is \
                     being written; open it when the reply has finished"
                        .into(),
                ))
            }
        }
    }
    // Further back than a page may read at once: the newest window (the page shows earlier
    // messages as the person scrolls up).
    match db::get_conversation_through(db, owner, conversation_id, turn).await? {
        Some(view) => Ok(view),
        None => db::get_conversation(db, owner, conversation_id, None)
            .await?
            .ok_or_else(no_such),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_prefixes_and_all_must_match() {
        assert_eq!(
            fts_query("pyth  lists").expect("accepted").as_deref(),
            Some("\"pyth\"* \"lists\"*")
        );
        assert_eq!(fts_query("a").expect("accepted").as_deref(), Some("\"a\""));
    }

    #[test]
    fn quotes_make_a_phrase() {
        assert_eq!(
            fts_query("say \"hello  world\" now")
                .expect("accepted")
                .as_deref(),
            Some("\"say\"* \"hello  world\" \"now\"*")
        );
        // Unclosed: the phrase runs to the end.
        assert_eq!(
            fts_query("\"to be").expect("accepted").as_deref(),
            Some("\"to be\"")
        );
    }

    #[test]
    fn query_syntax_is_only_text() {
        assert_eq!(
            fts_query("NOT a* OR (b:c) NEAR")
                .expect("accepted")
                .as_deref(),
            Some("\"NOT\"* \"a*\" \"OR\"* \"(b:c)\"* \"NEAR\"*")
        );
        assert_eq!(fts_query("*** \"\" ( ) -").expect("accepted"), None);
        assert_eq!(fts_query("   ").expect("accepted"), None);
    }

    #[test]
    fn too_much_is_refused_in_words() {
        assert_eq!(
            fts_query(&"x".repeat(MAX_SEARCH_CHARS + 1)),
            Err(SearchInputError::TooLong)
        );
        assert!(fts_query(&"é".repeat(MAX_SEARCH_CHARS)).is_ok());
        assert_eq!(
            fts_query(&"w ".repeat(MAX_SEARCH_TERMS + 1)),
            Err(SearchInputError::TooManyTerms)
        );
    }

    #[test]
    fn markers_become_ranges() {
        let m = marked("a \u{2}résumé\u{3} and \u{2}b\u{3}");
        assert_eq!(m.text, "a résumé and b");
        assert_eq!(m.marks, vec![(2, 10), (15, 16)]);
        // Unpaired or empty markers are dropped.
        let m = marked("\u{3}x\u{2}\u{3}y\u{2}");
        assert_eq!(m.text, "xy");
        assert!(m.marks.is_empty());
    }
}
