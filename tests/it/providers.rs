//! Hosted providers through the whole app: each wire format, usage and cost as stored and shown,
//! the model picker's menu, and switching models mid-conversation.

use fake_provider::{expected_text, FakeConfig, Protocol};
use rill::model::{MessageStatus, ModelMenu, Outcome, TurnEvent, Usage};
use rill::server::pricing;
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

fn finished_usage(events: &[rill::model::TurnEnvelope]) -> (MessageStatus, Usage, bool, f64) {
    let Outcome {
        status,
        usage,
        usage_estimated,
        cost_usd,
        ..
    } = finished(events);
    (
        *status,
        usage.expect("usage reported"),
        *usage_estimated,
        cost_usd.expect("a priced model has a cost"),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// The usage and cost columns of the conversation's last reply.
async fn stored_figures(
    app: &TestApp,
    conversation_id: Uuid,
) -> (i64, i64, i64, i64, i64, bool, f64) {
    sql("SELECT input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                usage_estimated, cost_usd
         FROM messages WHERE conversation_id = $1 AND role = 'assistant'
         ORDER BY position DESC LIMIT 1")
    .bind(conversation_id)
    .fetch_one(&app.state.db)
    .await
}

#[tokio::test]
async fn anthropic_streams_and_its_cache_usage_is_priced_without_double_counting() {
    let app = TestApp::start(FakeConfig {
        tokens: 30,
        split_bytes: Some(5),
        cached_tokens: 1_000,
        cache_write_tokens: 200,
        ..FakeConfig::default()
    })
    .await;
    let events = app
        .turn_on("claude/claude-fake", None, "Hello Claude")
        .await;
    assert_eq!(text_of(&events), expected_text(30));
    let (status, usage, estimated, cost) = finished_usage(&events);
    assert_eq!(status, MessageStatus::Complete);
    assert!(!estimated);
    // The fake counts "Hello Claude" as 2 words + 4 framing tokens of plain input.
    let plain_input = 6;
    assert_eq!(
        usage,
        Usage {
            input_tokens: plain_input + 1_000 + 200,
            cached_input_tokens: 1_000,
            cache_write_tokens: 200,
            output_tokens: 30,
            reasoning_tokens: 0,
        }
    );
    let expected =
        (f64::from(plain_input) * 3.0 + 1_000.0 * 0.3 + 200.0 * 3.75 + 30.0 * 15.0) / 1e6;
    assert!(close(cost, expected), "{cost} != {expected}");
    assert_eq!(
        stored_figures(&app, conversation_of(&events)).await,
        (1_206, 1_000, 200, 30, 0, false, cost)
    );

    let call = &app.fake.calls()[0];
    assert_eq!(call.protocol, Protocol::Anthropic);
    assert_eq!(call.key.as_deref(), Some("ant-key"));
    let body = &app.fake.requests()[0];
    assert_eq!(body["model"], json!("claude-fake"));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Hello Claude"}])
    );
    assert!(
        body.get("system").is_none(),
        "no empty system prompt is sent"
    );
}

#[tokio::test]
async fn openai_cached_and_reasoning_tokens_are_priced_once() {
    let app = TestApp::start(FakeConfig {
        tokens: 20,
        cached_tokens: 512,
        reasoning_tokens: 100,
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn(None, "Think hard").await;
    let (_, usage, _, cost) = finished_usage(&events);
    let plain_input = 6;
    assert_eq!(usage.input_tokens, plain_input + 512);
    assert_eq!(usage.cached_input_tokens, 512);
    assert_eq!((usage.output_tokens, usage.reasoning_tokens), (120, 100));
    let expected = (f64::from(plain_input) * 1.0 + 512.0 * 0.5 + 120.0 * 2.0) / 1e6;
    assert!(close(cost, expected), "{cost} != {expected}");
}

#[tokio::test]
async fn a_recorded_openai_reasoning_stream_replays_to_the_same_figures() {
    let app = TestApp::start(FakeConfig {
        replay: Some(include_str!("../../crates/llm/tests/fixtures/openai_reasoning.sse").into()),
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn(None, "Greet the world").await;
    assert_eq!(text_of(&events), "Grüße, 世界 🌍");
    let (_, usage, estimated, cost) = finished_usage(&events);
    assert!(!estimated);
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens
        ),
        (2_000, 1_536, 900, 832)
    );
    assert!(close(cost, pricing::cost(&FAKE_PRICE, &usage)));
    assert!(close(
        cost,
        (464.0 * 1.0 + 1_536.0 * 0.5 + 900.0 * 2.0) / 1e6
    ));
}

#[tokio::test]
async fn gemini_streams_and_thinking_tokens_count_as_output() {
    let app = TestApp::start(FakeConfig {
        tokens: 15,
        reasoning_tokens: 40,
        split_bytes: Some(7),
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn_on("gemini/gemini-fake", None, "Hi Gemini").await;
    assert_eq!(text_of(&events), expected_text(15));
    let (status, usage, _, cost) = finished_usage(&events);
    assert_eq!(status, MessageStatus::Complete);
    assert_eq!((usage.output_tokens, usage.reasoning_tokens), (55, 40));
    assert!(close(cost, (6.0 * 1.0 + 55.0 * 2.0) / 1e6));
    let call = &app.fake.calls()[0];
    assert_eq!(
        call.path,
        "/v1beta/models/gemini-fake:streamGenerateContent"
    );
    assert_eq!(call.key.as_deref(), Some("goog-key"));
}

#[tokio::test]
async fn switching_models_mid_conversation_replays_the_history_in_the_new_format() {
    let app = TestApp::start(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    })
    .await;
    let first = app.turn(None, "First question").await;
    let conversation = conversation_of(&first);
    let second = app
        .turn_on("claude/claude-fake", Some(conversation), "Second question")
        .await;
    let TurnEvent::Started { model, .. } = &second[0].event else {
        panic!("not Started")
    };
    assert_eq!(model, "claude/claude-fake");
    let calls = app.fake.calls();
    assert_eq!(
        calls.iter().map(|c| c.protocol).collect::<Vec<_>>(),
        [Protocol::OpenAi, Protocol::Anthropic]
    );
    assert_eq!(
        app.fake.requests()[1]["messages"],
        json!([
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": expected_text(3)},
            {"role": "user", "content": "Second question"},
        ])
    );
    // The choice is stored on the conversation: the next turn without a pick stays on it.
    app.turn(Some(conversation), "Third question").await;
    assert_eq!(app.fake.calls()[2].protocol, Protocol::Anthropic);
    let (model,): (String,) = sql("SELECT model FROM conversations WHERE id = $1")
        .bind(conversation)
        .fetch_one(&app.state.db)
        .await;
    assert_eq!(model, "claude/claude-fake");
    // Each reply keeps the model that wrote it.
    let models: Vec<(String,)> = sql(
        "SELECT model FROM messages WHERE conversation_id = $1 AND role = 'assistant' ORDER BY position",
    )
    .bind(conversation)
    .fetch_all(&app.state.db)
    .await;
    assert_eq!(
        models.into_iter().map(|(m,)| m).collect::<Vec<_>>(),
        [
            "fake/fake-model",
            "claude/claude-fake",
            "claude/claude-fake"
        ]
    );
}

#[tokio::test]
async fn a_stopped_turn_keeps_the_reported_prompt_figures_and_estimates_the_rest() {
    let app = TestApp::start(FakeConfig {
        tokens: 500,
        token_delay_ms: 10,
        cached_tokens: 1_000,
        ..FakeConfig::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(
        app.send_to(
            turn_id,
            None,
            "Tell me everything",
            Some("claude/claude-fake"),
        )
        .await,
    );
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e: &rill::model::TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
    {
        events.push(reader.next().await.expect("streaming"));
    }
    assert_eq!(app.stop(turn_id).await.status(), 200);
    events.extend(reader.read_to_end().await);
    let (status, usage, estimated, cost) = finished_usage(&events);
    assert_eq!(status, MessageStatus::Stopped);
    assert!(estimated, "the provider reported no final usage");
    // Anthropic reported the prompt exactly (message_start) before Stop: 3 words + 4 plain and
    // 1,000 cached; only the output is estimated from the text shown.
    let shown = Usage::estimate([], &text_of(&events));
    assert_eq!(
        usage,
        Usage {
            input_tokens: 7 + 1_000,
            cached_input_tokens: 1_000,
            output_tokens: shown.output_tokens.max(1),
            ..Usage::default()
        }
    );
    assert!(close(cost, pricing::cost(&CLAUDE_PRICE, &usage)));
    let stored = stored_figures(&app, conversation_of(&events)).await;
    assert!(stored.5, "stored as estimated");
}

#[tokio::test]
async fn an_overload_mid_reply_fails_the_turn_clearly_without_retrying_or_duplicating() {
    let app = TestApp::start(FakeConfig {
        tokens: 10,
        error_after: Some(4),
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn_on("claude/claude-fake", None, "Hello").await;
    let Outcome { status, error, .. } = finished(&events);
    assert_eq!(*status, MessageStatus::Failed);
    let error = error.as_deref().unwrap_or_default();
    assert!(error.contains("overloaded"), "{error}");
    assert_eq!(text_of(&events), expected_text(4), "text shown once, kept");
    assert_eq!(
        app.fake.requests().len(),
        1,
        "no retry after text was shown"
    );
}

#[tokio::test]
async fn the_model_menu_groups_configured_providers_with_prices() {
    let app = TestApp::start(FakeConfig::default()).await;
    let response = app.post_json("list_models", serde_json::json!({})).await;
    assert_eq!(response.status(), 200);
    let menu: ModelMenu = response.json().await.expect("menu");
    let groups: Vec<(&str, Vec<&str>)> = menu
        .groups
        .iter()
        .map(|g| {
            (
                g.provider.as_str(),
                g.models.iter().map(|m| m.id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("fake", vec!["fake/fake-model"]),
            ("claude", vec!["claude/claude-fake"]),
            ("gemini", vec!["gemini/gemini-fake"]),
        ],
        "the fake's own model list (GET /models) names fake-model"
    );
    assert_eq!(menu.default_model, "fake/fake-model");
    assert_eq!(menu.groups[1].models[0].price, Some(CLAUDE_PRICE));
    assert!(!menu.prices_as_of.is_empty());

    let bad = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "hi", "model": "nobody/nothing"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap_or_default()
        .contains("unknown model"));
    assert_eq!(app.count("conversations").await, 0);
}

#[tokio::test]
async fn a_compatible_server_that_lists_no_models_is_left_out_with_a_notice() {
    // The fake answers GET /models with a 404, and the test config names no models for it.
    let app = TestApp::start(FakeConfig {
        fail_status: Some(404),
        ..FakeConfig::default()
    })
    .await;
    let menu: ModelMenu = app
        .post_json("list_models", serde_json::json!({}))
        .await
        .json()
        .await
        .expect("menu");
    assert!(menu.groups.iter().all(|g| g.provider != "fake"));
    assert_eq!(menu.default_model, "claude/claude-fake");
    assert!(
        menu.notices.iter().any(
            |n| n.starts_with("fake: could not list the server's models")
                && n.contains("RILL_OPENAI_COMPAT_MODELS")
        ),
        "{:?}",
        menu.notices
    );
}
