use std::time::Duration;

use fake_provider::{expected_text, FakeConfig};
use rill::model::{MessageStatus, Outcome, TurnEvent};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn a_turn_streams_every_token_in_order_with_multibyte_text_intact() {
    // 3-byte pieces split SSE events and every multi-byte character (ö, 日本語, 🌍) across reads.
    let app = TestApp::start(FakeConfig {
        tokens: 40,
        token_delay_ms: 1,
        split_bytes: Some(3),
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "Hello").await;

    let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u32).collect::<Vec<_>>(),
        "events are numbered 1, 2, 3, …"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.event, TurnEvent::Delta { .. }))
            .count(),
        40,
        "one delta per token"
    );
    assert_eq!(text_of(&events), expected_text(40));
    let Outcome {
        status,
        usage,
        usage_estimated,
        ..
    } = finished(&events);
    assert_eq!(*status, MessageStatus::Complete);
    assert!(!usage_estimated);
    assert_eq!(
        usage.map(|u| u.output_tokens),
        Some(40),
        "usage comes from the provider's final chunk"
    );
    let Outcome { cost_usd, .. } = finished(&events);
    let input = usage.map_or(0, |u| u.input_tokens);
    let expected = (f64::from(input) * 1.0 + 40.0 * 2.0) / 1e6;
    assert!(
        cost_usd.is_some_and(|c| (c - expected).abs() < 1e-12),
        "priced from the table: {cost_usd:?} != {expected}"
    );

    let stored = last_reply(&app, conversation_of(&events)).await;
    assert_eq!(stored, ("complete".to_owned(), expected_text(40)));
}

#[tokio::test]
async fn every_turn_sends_the_whole_history_and_the_system_prompt_from_metadata() {
    let app = TestApp::start(FakeConfig {
        tokens: 3,
        ..Default::default()
    })
    .await;
    let first = app.turn(None, "First question").await;
    let conversation = conversation_of(&first);
    let response = app
        .post_json(
            "set_system_prompt",
            json!({"id": conversation, "system_prompt": "Be terse."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.turn(Some(conversation), "Second question").await;

    let requests = app.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0]["messages"],
        json!([{"role": "user", "content": "First question"}])
    );
    assert_eq!(
        requests[1]["messages"],
        json!([
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": expected_text(3)},
            {"role": "user", "content": "Second question"},
        ])
    );
    assert_eq!(requests[1]["stream"], json!(true));
    assert_eq!(requests[1]["stream_options"]["include_usage"], json!(true));
    assert_eq!(
        app.count("messages").await,
        4,
        "the system prompt is metadata, not a message"
    );
}

#[tokio::test]
async fn stop_closes_the_provider_connection_and_keeps_the_shown_text_as_stopped() {
    let app = TestApp::start(FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..Default::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(app.send(turn_id, None, "Tell me a long story").await);
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&rill::model::TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
        .count()
        < 5
    {
        events.push(reader.next().await.expect("the turn is still streaming"));
    }

    let stop = app.stop(turn_id).await;
    assert_eq!(stop.status(), 200);
    // Generous bound: this checks that the upstream closes, not how fast (benchmarks measure that).
    let disconnect = app
        .fake
        .wait_for_disconnect(Duration::from_secs(1))
        .await
        .expect("the provider saw the client go");
    assert!(disconnect.tokens_sent < 2_000);

    while let Some(event) = reader.next().await {
        events.push(event);
    }
    let Outcome {
        status,
        usage,
        usage_estimated,
        ..
    } = finished(&events);
    assert_eq!(*status, MessageStatus::Stopped);
    assert!(
        *usage_estimated,
        "a stopped turn has no provider usage, so it is estimated"
    );
    assert!(usage.is_some_and(|u| u.output_tokens > 0));
    let shown = text_of(&events);
    assert!(expected_text(2_000).starts_with(&shown));
    // Stop returned after the reply was stored: the database holds exactly what was shown.
    assert_eq!(
        last_reply(&app, conversation_of(&events)).await,
        ("stopped".to_owned(), shown)
    );
    assert_eq!(app.fake.completed(), 0);
}

#[tokio::test]
async fn a_repeated_turn_id_attaches_to_the_same_turn_instead_of_starting_another() {
    let app = TestApp::start(FakeConfig {
        tokens: 30,
        token_delay_ms: 5,
        ..Default::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    // Two concurrent sends of one turn id (a double click, a retried request)…
    let (a, b) = tokio::join!(
        app.send(turn_id, None, "Once"),
        app.send(turn_id, None, "Once")
    );
    let (a, b) = tokio::join!(
        EventReader::new(a).read_to_end(),
        EventReader::new(b).read_to_end()
    );
    assert_eq!(a, b, "both readers see the same turn");
    // …and one after it finished, answered from the database.
    let c = EventReader::new(app.send(turn_id, None, "Once").await)
        .read_to_end()
        .await;
    assert_eq!(text_of(&c), expected_text(30));
    assert_eq!(finished(&c), finished(&a));

    assert_eq!(app.fake.requests().len(), 1, "one provider call");
    assert_eq!(app.count("conversations").await, 1);
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn a_reader_can_reattach_after_the_last_event_it_saw() {
    let app = TestApp::start(FakeConfig {
        tokens: 20,
        token_delay_ms: 5,
        ..Default::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut first = EventReader::new(app.send(turn_id, None, "Hi").await);
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(first.next().await.expect("event"));
    }
    drop(first);
    let last_seq = seen.last().map_or(0, |e| e.seq);
    let rest = EventReader::new(
        app.post_json(
            "turn_events",
            json!({"turn_id": turn_id, "run": 1, "after_seq": last_seq}),
        )
        .await,
    )
    .read_to_end()
    .await;
    assert_eq!(rest.first().map(|e| e.seq), Some(last_seq + 1));
    seen.extend(rest);
    assert_eq!(text_of(&seen), expected_text(20));
}

#[tokio::test]
async fn a_reader_that_goes_away_without_stop_leaves_the_turn_to_complete() {
    let app = TestApp::start(FakeConfig {
        tokens: 30,
        token_delay_ms: 5,
        ..Default::default()
    })
    .await;
    let mut reader = EventReader::new(app.send(Uuid::new_v4(), None, "Hi").await);
    let started = reader.next().await.expect("Started");
    let TurnEvent::Started {
        conversation_id, ..
    } = started.event
    else {
        panic!("not Started")
    };
    drop(reader);

    let deadline = tokio::time::Instant::now() + WAIT;
    while last_reply(&app, conversation_id).await.0 == "streaming" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn did not complete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        last_reply(&app, conversation_id).await,
        ("complete".to_owned(), expected_text(30))
    );
    assert!(app.fake.disconnects().is_empty());
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let app = TestApp::start(FakeConfig::default()).await;
    let cases = [
        (
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "   "}),
            400,
            "empty",
        ),
        (
            json!({"turn_id": "not-a-uuid", "conversation_id": null, "text": "hi"}),
            400,
            "invalid request",
        ),
        (
            json!({"conversation_id": null, "text": "hi"}),
            400,
            "invalid request",
        ),
        (
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "x".repeat(40_000)}),
            400,
            "longer than",
        ),
        (
            json!({"turn_id": Uuid::new_v4(), "conversation_id": Uuid::new_v4(), "text": "hi"}),
            404,
            "no such conversation",
        ),
    ];
    for (body, status, message) in cases {
        let response = app.post_json("send_message", body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "for {body}");
        let text = response.text().await.expect("body");
        assert!(
            text.contains(message),
            "{text:?} should mention {message:?}"
        );
    }
    let garbage = app
        .http
        .post(format!("{}/api/send_message", app.base_url))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("sent");
    assert_eq!(garbage.status(), 400);
    assert_eq!(
        app.stop(Uuid::new_v4()).await.status(),
        404,
        "stopping an unknown turn"
    );

    assert_eq!(app.count("conversations").await, 0);
    assert_eq!(app.count("messages").await, 0);
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn provider_errors_end_the_turn_with_a_specific_message() {
    let app = TestApp::start(FakeConfig {
        fail_status: Some(401),
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "Hi").await;
    let Outcome { status, error, .. } = finished(&events);
    assert_eq!(*status, MessageStatus::Failed);
    let error = error.as_deref().unwrap_or_default();
    assert!(
        error.contains("API key") && error.contains("fake failure 401"),
        "{error}"
    );
    assert_eq!(last_reply(&app, conversation_of(&events)).await.0, "failed");
    assert_eq!(app.fake.requests().len(), 1, "a bad key is not retried");
}

#[tokio::test]
async fn a_connection_lost_mid_reply_keeps_the_text_and_says_so() {
    let app = TestApp::start(FakeConfig {
        tokens: 10,
        break_after: Some(4),
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "Hi").await;
    let Outcome { status, error, .. } = finished(&events);
    assert_eq!(*status, MessageStatus::Failed);
    assert!(
        error.as_deref().unwrap_or_default().contains("lost"),
        "{error:?}"
    );
    assert_eq!(text_of(&events), expected_text(4));
    assert_eq!(app.fake.requests().len(), 1, "text was shown, so no retry");
    assert_eq!(
        last_reply(&app, conversation_of(&events)).await,
        ("failed".to_owned(), expected_text(4))
    );
}

#[tokio::test]
async fn a_transient_failure_before_any_text_is_retried() {
    let app = TestApp::start(FakeConfig {
        fail_status: Some(503),
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "Hi").await;
    assert_eq!(
        app.fake.requests().len(),
        3,
        "the first try and two retries"
    );
    let Outcome { status, error, .. } = finished(&events);
    assert_eq!(*status, MessageStatus::Failed);
    assert!(
        error.as_deref().unwrap_or_default().contains("overloaded"),
        "{error:?}"
    );
}
