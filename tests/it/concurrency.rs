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
            last_reply(app, conversation_of(events)).await,
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

/// Connections from this process to `port` on 127.0.0.1 that are open (`/proc/net/tcp`: the
/// remote address and port are the third field, in hex; state `01` is established).
#[cfg(target_os = "linux")]
fn open_connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// A burst's provider connections are not all kept once it is over: at most
/// `llm::IDLE_CONNECTIONS_PER_HOST` stay for the next requests, the rest are closed as their
/// replies end (each kept one held about 25 KB until reqwest's idle timeout, 90 s or more).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_burst_only_a_few_idle_provider_connections_are_kept() {
    let app = TestApp::start(FakeConfig {
        tokens: 8,
        token_delay_ms: 20,
        ..FakeConfig::default()
    })
    .await;
    let port = app.fake.base_url()["http://127.0.0.1:".len()..]
        .trim_end_matches("/v1")
        .parse::<u16>()
        .expect("the fake's port");
    let turns = burst(&app, 120).await;
    assert_all_stored_complete(&app, &turns, &expected_text(8)).await;
    // A connection over the bound is closed once its reply's body has been read to the end.
    let kept = llm::IDLE_CONNECTIONS_PER_HOST;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut open = open_connections_to(port);
    while open > kept && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        open = open_connections_to(port);
    }
    assert!(
        open <= kept,
        "{open} connections to the provider still open after the burst (at most {kept} kept)"
    );
    assert!(
        open > 0,
        "the idle connections are kept for the next requests"
    );
}
