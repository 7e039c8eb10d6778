//! The three wire formats: each protocol's events for a reply, and the faults injected into it.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::body::Event;
use crate::FakeConfig;

/// The bytes of each fault in one protocol's framing.
struct Faults {
    /// The protocol's error event.
    error: Bytes,
    /// An event whose data is not JSON.
    malformed: Bytes,
    /// What the protocol sends to keep a quiet connection alive.
    keep_alive: Bytes,
    /// The start of a line that never ends.
    endless_start: Bytes,
}

impl Faults {
    /// OpenAI and Gemini: bare `data:` events and SSE comments.
    fn plain(error: Bytes) -> Self {
        Self {
            error,
            malformed: Bytes::from_static(b"data: {not json\n\n"),
            keep_alive: Bytes::from_static(b": keep-alive\n\n"),
            endless_start: Bytes::from_static(b"data: {\"pad\":\""),
        }
    }

    /// Anthropic: named events, `ping` to keep alive.
    fn anthropic(error: Bytes) -> Self {
        Self {
            error,
            malformed: Bytes::from_static(b"event: content_block_delta\ndata: {not json\n\n"),
            keep_alive: Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n"),
            endless_start: Bytes::from_static(b"event: content_block_delta\ndata: {\"pad\":\""),
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The token events of a reply, cut short by the first fault configured for this point (each
/// `*_after: Some(K)` applies after K tokens, K < `tokens`). Returns the events and whether the
/// reply reached its natural end.
fn token_events(
    config: &FakeConfig,
    mut event: impl FnMut(usize) -> Bytes,
    faults: Faults,
) -> (Vec<Event>, bool) {
    let mut events = Vec::new();
    for i in 0..config.token_count() {
        let at = Some(i);
        let fault = if config.break_after == at {
            Some(vec![Event::Break])
        } else if config.error_after == at {
            Some(vec![Event::Other(faults.error.clone())])
        } else if config.stall_after == at {
            Some(vec![Event::Stall])
        } else if config.malformed_after == at {
            // The body ends right after the bad event (a client stops reading there anyway).
            Some(vec![Event::Other(faults.malformed.clone()), Event::Break])
        } else if config.endless_line_after == at {
            Some(vec![Event::EndlessLine(faults.endless_start.clone())])
        } else if config.keepalive_after == at {
            Some(vec![Event::KeepAlive {
                bytes: faults.keep_alive.clone(),
                interval: Duration::from_millis(config.keepalive_interval_ms),
            }])
        } else {
            None
        };
        if let Some(fault) = fault {
            events.extend(fault);
            return (events, false);
        }
        events.push(Event::Token(event(i)));
    }
    (events, true)
}

pub(crate) fn openai_events(
    config: &FakeConfig,
    model: &str,
    prompt_tokens: u32,
    include_usage: bool,
) -> Vec<Event> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    };
    let mut events = vec![Event::Other(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ))];
    let error = data(
        &json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}),
    );
    events.extend(thinking_events(config, |t| {
        chunk(
            json!({"content": null, "reasoning_content": t}),
            Value::Null,
        )
    }));
    let (tokens, whole) = token_events(
        config,
        |i| chunk(json!({"content": config.token_text(i)}), Value::Null),
        Faults::plain(error),
    );
    events.extend(tokens);
    if !whole {
        return events;
    }
    let finish = if config.hit_token_limit {
        "length"
    } else {
        "stop"
    };
    events.push(Event::Other(chunk(json!({}), json!(finish))));
    if include_usage {
        let input = prompt_tokens.saturating_add(config.cached_tokens);
        let reasoning = reasoning_tokens(config, true);
        let completion = count(config.token_count()).saturating_add(reasoning);
        events.push(Event::Other(data(&json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": input,
                "completion_tokens": completion,
                "total_tokens": input.saturating_add(completion),
                "prompt_tokens_details": {"cached_tokens": config.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
            },
        }))));
    }
    events.push(Event::Other(Bytes::from_static(b"data: [DONE]\n\n")));
    events
}

fn anthropic_event(value: &Value) -> Bytes {
    let name = value["type"].as_str().unwrap_or("unknown");
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

pub(crate) fn anthropic_events(
    config: &FakeConfig,
    model: &str,
    prompt_tokens: u32,
    thinking_asked: bool,
) -> Vec<Event> {
    let start = json!({"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": null, "stop_sequence": null,
        "usage": {
            "input_tokens": prompt_tokens,
            "cache_creation_input_tokens": config.cache_write_tokens,
            "cache_read_input_tokens": config.cached_tokens,
            "output_tokens": 1,
        },
    }});
    let mut events = vec![Event::Other(anthropic_event(&start))];
    // A thinking block comes first, signed at its end; the text block follows it.
    let mut text_index = 0;
    if thinking_asked && config.thinking.is_some() {
        events.push(Event::Other(anthropic_event(
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        )));
        events.extend(thinking_events(config, |t| {
            anthropic_event(
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": t}}),
            )
        }));
        for end in [
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "ZmFrZS1zaWduYXR1cmU="}}),
            json!({"type": "content_block_stop", "index": 0}),
        ] {
            events.push(Event::Other(anthropic_event(&end)));
        }
        text_index = 1;
    }
    events.push(Event::Other(anthropic_event(
        &json!({"type": "content_block_start", "index": text_index, "content_block": {"type": "text", "text": ""}}),
    )));
    events.push(Event::Other(anthropic_event(&json!({"type": "ping"}))));
    let error = anthropic_event(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let (tokens, whole) = token_events(
        config,
        |i| {
            anthropic_event(
                &json!({"type": "content_block_delta", "index": text_index, "delta": {"type": "text_delta", "text": config.token_text(i)}}),
            )
        },
        Faults::anthropic(error),
    );
    events.extend(tokens);
    if !whole {
        return events;
    }
    let output =
        count(config.token_count()).saturating_add(reasoning_tokens(config, thinking_asked));
    for end in [
        json!({"type": "content_block_stop", "index": text_index}),
        json!({"type": "message_delta", "delta": {"stop_reason": if config.hit_token_limit { "max_tokens" } else { "end_turn" }, "stop_sequence": null}, "usage": {"output_tokens": output}}),
        json!({"type": "message_stop"}),
    ] {
        events.push(Event::Other(anthropic_event(&end)));
    }
    events
}

pub(crate) fn gemini_events(
    config: &FakeConfig,
    model: &str,
    prompt_tokens: u32,
    thinking_asked: bool,
) -> Vec<Event> {
    let prompt = prompt_tokens.saturating_add(config.cached_tokens);
    let thoughts = reasoning_tokens(config, thinking_asked);
    let chunk = |part: Value, finish: Option<&str>, sent: usize| {
        let mut candidate = json!({"content": {"parts": [part], "role": "model"}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        let candidates = count(sent);
        data(&json!({
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": prompt,
                "cachedContentTokenCount": config.cached_tokens,
                "candidatesTokenCount": candidates,
                "thoughtsTokenCount": thoughts,
                "totalTokenCount": prompt.saturating_add(candidates).saturating_add(thoughts),
            },
            "modelVersion": model,
            "responseId": "fake",
        }))
    };
    let error = data(
        &json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
    );
    let mut events = Vec::new();
    if thinking_asked {
        events.extend(thinking_events(config, |t| {
            chunk(json!({"text": t, "thought": true}), None, 0)
        }));
    }
    let (tokens, whole) = token_events(
        config,
        |i| chunk(json!({"text": config.token_text(i)}), None, i + 1),
        Faults::plain(error),
    );
    events.extend(tokens);
    if whole {
        events.push(Event::Other(chunk(
            json!({"text": ""}),
            Some(if config.hit_token_limit {
                "MAX_TOKENS"
            } else {
                "STOP"
            }),
            config.token_count(),
        )));
    }
    events
}

/// Hidden reasoning tokens billed for a reply: the configured count, plus the streamed thinking
/// tokens when they are sent.
fn reasoning_tokens(config: &FakeConfig, thinking_sent: bool) -> u32 {
    let streamed = if thinking_sent {
        config.thinking.as_ref().map_or(0, |t| count(t.len()))
    } else {
        0
    };
    config.reasoning_tokens.saturating_add(streamed)
}

/// The configured thinking tokens, each paced like a text token.
fn thinking_events(config: &FakeConfig, event: impl Fn(&str) -> Bytes) -> Vec<Event> {
    config
        .thinking
        .iter()
        .flatten()
        .map(|t| Event::Token(event(t)))
        .collect()
}
