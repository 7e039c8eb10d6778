//! A deterministic provider that needs no network or model: it answers with a fixed, clearly
//! labelled reply that quotes the last user message, one word at a time. Rill falls back to it only
//! when no other provider is configured.

use std::time::Duration;

use futures::StreamExt;

use crate::{
    approximate_tokens, saturating_sum, ChatRequest, EventStream, FinishReason, Provider,
    ProviderEvent, Role, Usage,
};

pub struct DevProvider {
    word_delay: Duration,
}

impl DevProvider {
    pub fn new(word_delay: Duration) -> Self {
        Self { word_delay }
    }
}

impl Provider for DevProvider {
    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let reply = reply_to(&request);
        let words: Vec<String> = split_keeping_spaces(&reply);
        let usage = Usage {
            input_tokens: saturating_sum(
                request
                    .system
                    .iter()
                    .chain(request.messages.iter().map(|m| &m.content))
                    .map(|text| approximate_tokens(text)),
            ),
            output_tokens: u32::try_from(words.len()).unwrap_or(u32::MAX),
            ..Usage::default()
        };
        let delay = self.word_delay;
        let deltas = futures::stream::iter(words).then(move |word| async move {
            tokio::time::sleep(delay).await;
            Ok(ProviderEvent::TextDelta(word))
        });
        let tail = futures::stream::iter([
            Ok(ProviderEvent::Finished(FinishReason::Stop)),
            Ok(ProviderEvent::Usage(usage)),
        ]);
        Box::pin(deltas.chain(tail))
    }
}

fn reply_to(request: &ChatRequest) -> String {
    let last = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map_or("", |m| m.content.trim());
    let turn = request
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .count();
    format!(
        "This is Rill's built-in development model, so this reply is canned rather than generated. \
         You said “{last}” (message {turn} of this conversation). Configure a provider — or fetch the \
         local model — and the same conversation continues with real answers. Streaming, Stop and \
         history all work the same way: ✓ délai, 速度, 🚀."
    )
}

/// Words with their trailing whitespace, so concatenating the pieces gives the text back.
fn split_keeping_spaces(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;

    #[tokio::test]
    async fn streams_words_that_rebuild_the_reply_then_finishes_with_usage() {
        let request = ChatRequest {
            model: "echo".into(),
            system: None,
            messages: vec![ChatMessage::text(Role::User, "hello there")],
            max_output_tokens: None,
            thinking_budget: None,
            requester: None,
        };
        let events: Vec<_> = DevProvider::new(Duration::ZERO)
            .stream_chat(request.clone())
            .collect()
            .await;
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                Ok(ProviderEvent::TextDelta(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, reply_to(&request));
        assert!(text.contains("“hello there”"));
        let n = events.len();
        assert_eq!(
            events[n - 2],
            Ok(ProviderEvent::Finished(FinishReason::Stop))
        );
        assert!(
            matches!(&events[n - 1], Ok(ProviderEvent::Usage(u)) if u.output_tokens as usize == n - 2)
        );
    }
}
