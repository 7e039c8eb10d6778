//! How a resource's value travels inside the page the server renders: JSON, read in the browser
//! by the same code that reads the server functions' answers.
//!
//! Leptos' default codec reads a resource with `serde_json::from_str`, and the server functions
//! read their answers with `serde_json::from_slice`. Each is its own copy of the deserializer of
//! every type read both ways (a conversation, the model menu, the conversation list…), so the
//! browser's module held two of each. Reading both from bytes keeps one (docs/decisions.md,
//! "Smaller first load").

use std::fmt::Debug;
use std::future::Future;

use leptos::prelude::ArcResource;
use leptos::server::codee::{Decoder, Encoder};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// JSON, read from bytes.
pub struct Json;

impl<T: Serialize> Encoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, serde_json::Error> {
        serde_json::to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(text: &str) -> Result<T, serde_json::Error> {
        serde_json::from_slice(text.as_bytes())
    }
}

/// A resource as the pages use them (`ArcResource::new`, with [`Json`]).
pub type Resource<T> = ArcResource<T, Json>;

/// Like `ArcResource::new`: runs `fetcher` on the server and sends its value with the page.
#[track_caller]
pub fn resource<T, S, Fut>(
    source: impl Fn() -> S + Send + Sync + 'static,
    fetcher: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Resource<T>
where
    T: Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
    S: PartialEq + Clone + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    ArcResource::new_with_options(source, fetcher, false)
}

#[cfg(test)]
mod tests {
    use leptos::server::codee::{Decoder, Encoder};

    use super::Json;
    use crate::model::{ConversationSummary, ModelMenu};

    #[test]
    fn a_resource_value_reads_back_as_it_was_written() {
        let summary = ConversationSummary {
            id: uuid::Uuid::from_u128(7),
            title: "Café « naïve » ✓".into(),
            updated_at: 1_733_400_000,
        };
        let text = <Json as Encoder<ConversationSummary>>::encode(&summary).unwrap_or_default();
        let back: Result<ConversationSummary, _> = <Json as Decoder<_>>::decode(&text);
        assert_eq!(back.ok(), Some(summary));
        let broken: Result<ModelMenu, _> = <Json as Decoder<_>>::decode("{\"groups\":");
        assert!(broken.is_err());
    }
}
