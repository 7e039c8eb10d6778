//! Search results as the sidebar shows them: each names a conversation and, when the words were
//! found in a message rather than the title, that message and a snippet of it. The matched words
//! come as ranges of plain text ([`Marked`]), never as HTML: the page puts text and `<mark>`
//! elements together itself.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;

/// The longest search a person may type, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Words (or quoted phrases) in one search at most.
pub const MAX_SEARCH_TERMS: usize = 16;
/// Results of one search at most.
pub const SEARCH_RESULTS: usize = 20;

/// Text with some of it marked: `marks` are byte ranges of `text`, in order, not overlapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marked {
    pub text: String,
    pub marks: Vec<(u32, u32)>,
}

impl Marked {
    /// The text in pieces, each with whether it is marked. Ranges that do not fit the text (out
    /// of order, past its end, inside a character) are left unmarked rather than trusted.
    pub fn pieces(&self) -> Vec<(&str, bool)> {
        let mut pieces = Vec::new();
        let mut at = 0usize;
        for &(start, end) in &self.marks {
            let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
                continue;
            };
            if start < at || end <= start {
                continue;
            }
            let (Some(before), Some(marked)) =
                (self.text.get(at..start), self.text.get(start..end))
            else {
                continue;
            };
            if !before.is_empty() {
                pieces.push((before, false));
            }
            pieces.push((marked, true));
            at = end;
        }
        if let Some(rest) = self.text.get(at..).filter(|rest| !rest.is_empty()) {
            pieces.push((rest, false));
        }
        pieces
    }
}

/// One result: a conversation, and where in it the words were found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub conversation_id: Uuid,
    /// The conversation's title, its matched words marked when the title matched.
    pub title: Marked,
    /// The message the words were found in (`None`: they were found in the title).
    pub message: Option<FoundMessage>,
}

/// A message a search found, with a snippet of its text around the matched words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoundMessage {
    pub id: Uuid,
    pub role: Role,
    pub snippet: Marked,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(text: &str, marks: &[(u32, u32)]) -> Marked {
        Marked {
            text: text.to_owned(),
            marks: marks.to_vec(),
        }
    }

    #[test]
    fn pieces_follow_the_marks() {
        assert_eq!(
            marked("a résumé here", &[(2, 10)]).pieces(),
            vec![("a ", false), ("résumé", true), (" here", false)]
        );
        assert_eq!(
            marked("xy", &[(0, 1), (1, 2)]).pieces(),
            vec![("x", true), ("y", true)]
        );
        assert_eq!(marked("", &[]).pieces(), Vec::<(&str, bool)>::new());
    }

    #[test]
    fn marks_that_do_not_fit_are_not_trusted() {
        // Inside "é" (bytes 1..3), past the end, backwards, overlapping.
        assert_eq!(marked("aé", &[(0, 2)]).pieces(), vec![("aé", false)]);
        assert_eq!(marked("ab", &[(1, 9)]).pieces(), vec![("ab", false)]);
        assert_eq!(marked("abc", &[(2, 1)]).pieces(), vec![("abc", false)]);
        assert_eq!(
            marked("abcd", &[(0, 2), (1, 3)]).pieces(),
            vec![("ab", true), ("cd", false)]
        );
    }
}
