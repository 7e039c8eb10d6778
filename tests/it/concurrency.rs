//! Many people at once: every send streams to its end and is stored, also while other replies
//! are being written and checkpointed. (How far this goes is measured by `examples/bench_turns`,
//! not asserted here.)

use fake_provider::{expected_text, FakeConfig};
use futures::future::join_all;
use rill::model::{MessageStatus, TurnEvent};
use uuid::Uuid;

use crate::support::*;

/// Sends `n` messages at once, each starting a conversation, and reads every turn to its end.
async fn burst(app: &TestApp, n: usize) -> Vec<Vec<rill::model::TurnEnvelope>> {
    join_all((0..n).map(|i| async move {
        let response = app
            .post_json(
                "send_message",
                serde_json::json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": format!("Hello {i}")}),
            )
            .await;
        assert_eq!(response.status(), 200, "send {i} failed: {:?}", response.text().await);
        EventReader::new(response).read_to_end().await
    }))
    .await
}

async fn assert_all_stored_complete(
    app: &TestApp,
    turns: &[Vec<rill::model::TurnEnvelope>],
    text: &str,
) {
    for events in turns {
        assert_eq!(finished(events).status, MessageStatus::Complete);
        assert_eq!(text_of(events), text);
        assert_eq!(
            last_reply(&app.pool, conversation_of(events)).await,
            ("complete".to_owned(), text.to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_at_once_all_stream_to_the_end_and_are_stored() {
    let app = TestApp::start(FakeConfig {
        tokens: 24,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let turns = burst(&app, 200).await;
    assert_all_stored_complete(&app, &turns, &expected_text(24)).await;
    assert_eq!(app.count("messages").await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_at_once_while_fifty_replies_are_being_written() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    // Fifty long replies, each streaming (and checkpointed every 250 ms) before the burst.
    let mut long = Vec::new();
    for _ in 0..50 {
        let mut reader = EventReader::new(app.send(Uuid::new_v4(), None, "A long one").await);
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|e: &rill::model::TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
        {
            seen.push(reader.next().await.expect("streaming"));
        }
        long.push((reader, seen));
    }
    app.fake.set_config(FakeConfig {
        tokens: 24,
        token_delay_ms: 5,
        ..FakeConfig::default()
    });
    let (burst_turns, long_turns) = tokio::join!(
        burst(&app, 200),
        join_all(long.into_iter().map(|(reader, mut seen)| async move {
            seen.extend(reader.read_to_end().await);
            seen
        }))
    );
    assert_all_stored_complete(&app, &burst_turns, &expected_text(24)).await;
    assert_all_stored_complete(&app, &long_turns, &expected_text(300)).await;
}
