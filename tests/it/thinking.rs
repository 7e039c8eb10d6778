//! Thinking: reasoning a model streams before its answer, in each protocol's own shape, shown
//! live apart from the text, stored apart, never sent back as history, and billed as output.

use fake_provider::{expected_text, FakeConfig};
use rill::model::{MessageStatus, TurnEvent};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

const THOUGHTS: [&str; 5] = ["Let me ", "weigh ", "the größe ", "of 🌍", " first."];

fn thinking_app_config() -> Setup {
    Setup {
        fake: FakeConfig {
            tokens: 12,
            split_bytes: Some(5),
            thinking: Some(THOUGHTS.iter().map(|t| (*t).to_owned()).collect()),
            ..FakeConfig::default()
        },
        thinking_tokens: Some(2_048),
        ..Setup::default()
    }
}

/// Every string value anywhere in a request body.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(fields) => fields.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn each_protocol_streams_thinking_apart_stores_it_apart_and_never_sends_it_back() {
    let app = TestApp::with(thinking_app_config()).await;
    let whole_thinking: String = THOUGHTS.concat();
    for model in [
        "fake/fake-model",
        "claude/claude-fake",
        "gemini/gemini-fake",
    ] {
        app.fake.reset_log();
        let events = app.turn_on(model, None, "Which is larger?").await;
        assert_eq!(thinking_of(&events), whole_thinking, "{model}");
        assert_eq!(
            text_of(&events),
            expected_text(12),
            "{model}: no thinking in the text"
        );
        let first_thinking = events
            .iter()
            .position(|e| matches!(e.event, TurnEvent::Thinking { .. }));
        let first_text = events
            .iter()
            .position(|e| matches!(e.event, TurnEvent::Delta { .. }));
        assert!(
            first_thinking < first_text,
            "{model}: thinking streams first"
        );

        let outcome = finished(&events);
        assert_eq!(outcome.status, MessageStatus::Complete);
        let usage = outcome.usage.expect("usage");
        // Billed as the provider bills it: the thinking tokens inside the output tokens
        // (Anthropic reports no split of the two).
        let split = if model.starts_with("claude/") { 0 } else { 5 };
        assert_eq!(usage.reasoning_tokens, split, "{model}");
        assert_eq!(usage.output_tokens, 12 + 5, "{model}");
        let expected_cost = if model.starts_with("claude/") {
            (f64::from(usage.input_tokens) * 3.0 + 17.0 * 15.0) / 1e6
        } else {
            (f64::from(usage.input_tokens) * 1.0 + 17.0 * 2.0) / 1e6
        };
        let cost = outcome.cost_usd.expect("priced");
        assert!(
            (cost - expected_cost).abs() < 1e-12,
            "{model}: {cost} vs {expected_cost}"
        );

        let conversation = conversation_of(&events);
        let view = app.stored(conversation).await;
        let reply = view.messages.last().expect("reply");
        assert_eq!(reply.thinking, whole_thinking, "{model}: stored apart");
        assert_eq!(reply.content, expected_text(12), "{model}");

        // The next turn's history carries the answer, never the thinking.
        app.fake.reset_log();
        let next = app.turn_on(model, Some(conversation), "And why?").await;
        assert_eq!(finished(&next).status, MessageStatus::Complete);
        let request = app.fake.requests().pop().expect("a request");
        let sent = strings(&request).join("\n");
        assert!(
            sent.contains(&expected_text(12)),
            "{model}: the answer is history"
        );
        for thought in THOUGHTS {
            assert!(
                !sent.contains(thought.trim()),
                "{model}: {thought:?} was sent back"
            );
        }
    }
    // Each protocol was asked for thinking in its own field.
    app.fake.reset_log();
    app.turn_on("claude/claude-fake", None, "Hi").await;
    app.turn_on("gemini/gemini-fake", None, "Hi").await;
    let requests = app.fake.requests();
    assert_eq!(
        requests[0]["thinking"],
        json!({"type": "enabled", "budget_tokens": 2_048})
    );
    assert_eq!(
        requests[1]["generationConfig"]["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 2_048})
    );
}

#[tokio::test]
async fn a_model_not_configured_to_think_is_not_asked_and_shows_none() {
    let app = TestApp::with(Setup {
        thinking_tokens: None,
        ..thinking_app_config()
    })
    .await;
    for model in ["claude/claude-fake", "gemini/gemini-fake"] {
        let events = app.turn_on(model, None, "Hi").await;
        assert_eq!(thinking_of(&events), "", "{model}");
        assert_eq!(text_of(&events), expected_text(12));
    }
    let requests = app.fake.requests();
    assert!(requests[0].get("thinking").is_none());
    assert!(requests[1]["generationConfig"]
        .get("thinkingConfig")
        .is_none());
}

#[tokio::test]
async fn thinking_is_saved_while_it_streams_and_kept_by_stop_with_its_tokens_estimated() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            // Thinks, then goes quiet before the first token of text.
            stall_after: Some(0),
            ..thinking_app_config().fake
        },
        ..thinking_app_config()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(
        app.send_to(turn_id, None, "Think hard", Some("fake/fake-model"))
            .await,
    );
    let conversation = reader.started().await;
    let whole_thinking: String = THOUGHTS.concat();
    // The checkpoints store the thinking as it streams (a crash keeps it).
    eventually("the thinking is checkpointed", || async {
        let stored: Option<(String, String)> = sql(
            "SELECT status, thinking FROM messages WHERE conversation_id = $1 AND role = 'assistant'",
        )
        .bind(conversation)
        .fetch_optional(&app.state.db)
        .await;
        stored == Some(("streaming".into(), whole_thinking.clone()))
    })
    .await;
    assert_eq!(app.stop(turn_id).await.status(), 200);
    let events = reader.read_to_end().await;
    let outcome = finished(&events);
    assert_eq!(outcome.status, MessageStatus::Stopped);
    // Estimated at about four characters a token: the thinking was generated, so it is counted.
    let usage = outcome.usage.expect("estimated usage");
    assert!(outcome.usage_estimated);
    assert_eq!(
        usage.output_tokens,
        u32::try_from(whole_thinking.chars().count().div_ceil(4)).expect("small")
    );
    let view = app.stored(conversation).await;
    let reply = view.messages.last().expect("reply");
    assert_eq!(
        (reply.thinking.as_str(), reply.content.as_str()),
        (whole_thinking.as_str(), "")
    );
}
