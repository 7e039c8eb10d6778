//! A conversation as the page's resource carries it: the little the first screen reads at once
//! (`Glance`: the tab's title, the header's model, whether a reply is being written), and the
//! conversation itself, which only the conversation's WASM file reads (`on_demand::show`). So the
//! main module holds no deserializer of a conversation, its messages and their outcomes: a
//! conversation's page fetches that file before it hydrates anyway, and `/` shows none
//! (docs/decisions.md, "Smaller first load").
//!
//! In the page the server sends, the value is two lines of JSON: the glance (or the error), then
//! the conversation, kept as text until it is shown. A conversation fetched in the browser (a
//! link followed) was read by the server function's client, in that file, and is kept as read.

use std::sync::Arc;

use leptos::prelude::ArcResource;
use leptos::server::codee::{Decoder, Encoder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::{ConversationView, MessageStatus};

/// What the page's resource holds: the conversation to show (`None` for a new chat).
pub type Answer = Result<Option<Loaded>, ApiError>;

/// The page's resource of the conversation on screen, read with [`Lines`].
pub type Resource = ArcResource<Answer, Lines>;

/// A conversation loaded for the page, cheap to clone (the header and the list each take one).
#[derive(Clone, Debug)]
pub struct Loaded {
    pub glance: Glance,
    whole: Arc<Whole>,
}

/// What the first screen reads before the conversation's file is in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Glance {
    pub id: Uuid,
    pub title: String,
    pub model: String,
    /// A reply is still being written (the model picker waits for it).
    pub streaming: bool,
}

#[derive(Debug)]
enum Whole {
    /// JSON, as the server sent it with the page.
    Text(String),
    Read(ConversationView),
}

/// The conversation sent with the page could not be read (never seen from a working server).
#[derive(Debug, Clone, Copy)]
pub struct Unreadable;

impl Loaded {
    pub fn new(view: ConversationView) -> Self {
        let glance = Glance {
            id: view.id,
            title: view.title.clone(),
            model: view.model.clone(),
            streaming: view
                .messages
                .iter()
                .any(|m| m.outcome.status == MessageStatus::Streaming),
        };
        Self {
            glance,
            whole: Arc::new(Whole::Read(view)),
        }
    }

    /// The whole conversation. Call it from the conversation's file only: reading the text
    /// brings the conversation's deserializer with it.
    pub fn read(&self) -> Result<ConversationView, Unreadable> {
        match &*self.whole {
            // From bytes, as the server functions read their answers: one deserializer.
            Whole::Text(json) => serde_json::from_slice(json.as_bytes()).map_err(|_| Unreadable),
            Whole::Read(view) => Ok(view.clone()),
        }
    }
}

/// The resource's codec: the glance (or the error) as JSON on the first line, then, for a
/// conversation, the conversation's JSON on the second (serde_json writes no raw line breaks).
pub struct Lines;

impl Encoder<Answer> for Lines {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(answer: &Answer) -> Result<String, serde_json::Error> {
        let glance = answer
            .as_ref()
            .map(|loaded| loaded.as_ref().map(|l| &l.glance));
        let mut text = serde_json::to_string(&glance)?;
        if let Ok(Some(loaded)) = answer {
            text.push('\n');
            match &*loaded.whole {
                Whole::Text(json) => text.push_str(json),
                Whole::Read(view) => text.push_str(&serde_json::to_string(view)?),
            }
        }
        Ok(text)
    }
}

impl Decoder<Answer> for Lines {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(text: &str) -> Result<Answer, serde_json::Error> {
        let (head, whole) = text.split_once('\n').unwrap_or((text, ""));
        let glance: Result<Option<Glance>, ApiError> = serde_json::from_slice(head.as_bytes())?;
        Ok(glance.map(|glance| {
            glance.map(|glance| Loaded {
                glance,
                whole: Arc::new(Whole::Text(whole.to_owned())),
            })
        }))
    }
}

/// Like `ArcResource::new` with [`Lines`]: runs `fetcher` on the server and sends its value with
/// the page.
#[track_caller]
pub fn resource<S, Fut>(
    source: impl Fn() -> S + Send + Sync + 'static,
    fetcher: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Resource
where
    S: PartialEq + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    ArcResource::new_with_options(source, fetcher, false)
}

#[cfg(test)]
mod tests {
    use leptos::server::codee::{Decoder, Encoder};
    use uuid::Uuid;

    use super::{Answer, Glance, Lines, Loaded};
    use crate::error::ApiError;
    use crate::model::{ConversationView, Totals};

    fn conversation() -> ConversationView {
        ConversationView {
            id: Uuid::from_u128(7),
            title: "Line one\nline two « ✓ »".into(),
            model: "fake/fake-model".into(),
            system_prompt: "Be brief.\n".into(),
            system_prompt_revision: 0,
            system_prompts: Vec::new(),
            messages: Vec::new(),
            older_before: Some(40),
            older_totals: Totals::default(),
        }
    }

    fn round_trip(answer: &Answer) -> Answer {
        let text = <Lines as Encoder<Answer>>::encode(answer).unwrap_or_default();
        <Lines as Decoder<Answer>>::decode(&text).unwrap_or(Err(ApiError::Internal))
    }

    #[test]
    fn a_conversation_travels_as_its_glance_and_its_text() {
        let sent = Ok(Some(Loaded::new(conversation())));
        let Ok(Some(received)) = round_trip(&sent) else {
            panic!("the conversation did not arrive");
        };
        assert_eq!(
            received.glance,
            Glance {
                id: Uuid::from_u128(7),
                title: "Line one\nline two « ✓ »".into(),
                model: "fake/fake-model".into(),
                streaming: false,
            }
        );
        assert_eq!(received.read().ok(), Some(conversation()));
        // Sent on again as it came (the text is not read to be written).
        let again = round_trip(&Ok(Some(received)));
        assert_eq!(
            again.ok().flatten().and_then(|l| l.read().ok()),
            Some(conversation())
        );
    }

    #[test]
    fn no_conversation_and_errors_travel_on_one_line() {
        assert!(matches!(round_trip(&Ok(None)), Ok(None)));
        let gone = Err(ApiError::NotFound("no such conversation".into()));
        assert_eq!(round_trip(&gone).err(), gone.err());
        let broken = <Lines as Decoder<Answer>>::decode("{\"Ok\":");
        assert!(broken.is_err());
    }

    #[test]
    fn a_damaged_conversation_is_unreadable_not_a_panic() {
        let text = "{\"Ok\":{\"id\":\"00000000-0000-0000-0000-000000000007\",\"title\":\"\",\"model\":\"m\",\"streaming\":false}}\n{\"id\":";
        let loaded = <Lines as Decoder<Answer>>::decode(text);
        let Ok(Ok(Some(loaded))) = loaded else {
            panic!("the glance did not read");
        };
        assert!(loaded.read().is_err());
    }
}
