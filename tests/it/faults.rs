//! One test per provider fault, each bounded in time: every fault ends the turn with the right
//! status, a message in words (no URL, no raw body, no backtrace), and stored text equal to the
//! text shown. Run with `--nocapture` to see how long each fault took to reach the reader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_provider::{expected_text, FakeConfig, FakeProvider};
use futures::StreamExt;
use llm::{ChatRequest, EventStream, Provider, ProviderEvent};
use rill::model::{MessageStatus, Outcome, TurnEnvelope};
use rill::server::config::TurnSettings;
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

/// Runs one turn against a fake with `fault`; returns the app, the events and how long the turn
/// took to end.
async fn faulty_turn(
    fault: FakeConfig,
    turns: TurnSettings,
    model: Option<&str>,
) -> (TestApp, Vec<TurnEnvelope>, Duration) {
    let app = TestApp::with(Setup {
        fake: fault,
        turns: Some(turns),
        ..Setup::default()
    })
    .await;
    let started = Instant::now();
    let reader = EventReader::new(app.send_to(Uuid::new_v4(), None, "Hello", model).await);
    // Heartbeats keep each line's wait short, so the turn as a whole has a bound too: a bound
    // that failed to fire (an idle limit, a retry cap) fails the test instead of waiting on it.
    let events = tokio::time::timeout(FAULT_BOUND, reader.read_to_end())
        .await
        .expect("the fault ended the turn within the bound");
    (app, events, started.elapsed())
}

/// The longest any fault may take to reach the reader (the slowest, a 429 retried twice after
/// its one-second `retry-after`, takes about 3 s).
const FAULT_BOUND: Duration = Duration::from_secs(30);

/// The turn failed with a message containing `phrase`, said in words, and the stored reply is
/// exactly what was shown.
async fn assert_failed(app: &TestApp, events: &[TurnEnvelope], phrase: &str) -> String {
    let outcome = finished(events);
    assert_eq!(outcome.status, MessageStatus::Failed, "{outcome:?}");
    let error = outcome.error.clone().unwrap_or_default();
    assert!(
        error.to_lowercase().contains(&phrase.to_lowercase()),
        "{error:?} should say {phrase:?}"
    );
    for internal in ["http://", "\n", "backtrace", ".rs:", "{\""] {
        assert!(
            !error.contains(internal),
            "{error:?} shows internals ({internal})"
        );
    }
    let stored = last_reply(app, conversation_of(events)).await;
    assert_eq!(stored, ("failed".to_owned(), text_of(events)));
    error
}

fn report(fault: &str, took: Duration) {
    eprintln!(
        "fault {fault}: reached the reader in {} ms",
        took.as_millis()
    );
}

fn quick_idle() -> TurnSettings {
    TurnSettings {
        provider_idle: Duration::from_secs(1),
        ..test_turns()
    }
}

#[tokio::test]
async fn http_500_is_retried_then_reported() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            fail_status: Some(500),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_failed(&app, &events, "500").await;
    assert_eq!(
        app.fake.requests().len(),
        3,
        "the first try and two retries"
    );
    report("HTTP 500 (after 2 retries)", took);
}

#[tokio::test]
async fn a_transient_failure_that_clears_is_retried_into_a_whole_reply() {
    let (app, events, _) = faulty_turn(
        FakeConfig {
            tokens: 12,
            fail_status: Some(503),
            fail_times: Some(1),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    assert_eq!(text_of(&events), expected_text(12), "no text twice");
    assert_eq!(app.fake.requests().len(), 2);
}

#[tokio::test]
async fn a_429_with_a_sane_retry_after_waits_and_retries() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            tokens: 5,
            fail_status: Some(429),
            retry_after: Some("1".into()),
            fail_times: Some(1),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    assert_eq!(app.fake.requests().len(), 2);
    assert!(
        took >= Duration::from_millis(900),
        "the server's wait was honoured: {took:?}"
    );
    report("429, Retry-After: 1 (then success)", took);
}

#[tokio::test]
async fn a_429_with_an_absurd_retry_after_fails_at_once_and_says_when_to_try_again() {
    for absurd in [
        "1e20",
        "86400",
        "-5",
        "NaN",
        "Wed, 21 Oct 2099 07:28:00 GMT",
    ] {
        let (app, events, took) = faulty_turn(
            FakeConfig {
                fail_status: Some(429),
                retry_after: Some(absurd.into()),
                ..FakeConfig::default()
            },
            test_turns(),
            None,
        )
        .await;
        let outcome = finished(&events);
        assert_eq!(
            outcome.status,
            MessageStatus::Failed,
            "Retry-After: {absurd}"
        );
        let error = outcome.error.clone().unwrap_or_default();
        assert!(error.contains("rate limited"), "{error}");
        if matches!(absurd, "1e20" | "86400" | "Wed, 21 Oct 2099 07:28:00 GMT") {
            assert!(error.contains("try again"), "{error}");
            assert_eq!(
                app.fake.requests().len(),
                1,
                "a wait that long is not waited"
            );
        }
        report(&format!("429, Retry-After: {absurd}"), took);
    }
}

#[tokio::test]
async fn x_should_retry_false_is_respected() {
    let (app, events, _) = faulty_turn(
        FakeConfig {
            fail_status: Some(503),
            should_retry: Some(false),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_failed(&app, &events, "503").await;
    assert_eq!(app.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_some_tokens_keeps_them() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            tokens: 20,
            break_after: Some(7),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_failed(&app, &events, "lost").await;
    assert_eq!(text_of(&events), expected_text(7));
    assert_eq!(app.fake.requests().len(), 1, "text was shown, so no retry");
    report("connection dropped after 7 tokens", took);
}

#[tokio::test]
async fn a_stall_after_some_tokens_fails_after_the_idle_limit() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            tokens: 20,
            stall_after: Some(5),
            ..FakeConfig::default()
        },
        quick_idle(),
        None,
    )
    .await;
    assert_failed(&app, &events, "sent nothing").await;
    assert_eq!(text_of(&events), expected_text(5));
    assert_eq!(app.fake.requests().len(), 1, "a timeout is not retried");
    eventually("the stalled connection is closed", || async {
        !app.fake.disconnects().is_empty()
    })
    .await;
    report("stall after 5 tokens (idle limit 1 s)", took);
}

#[tokio::test]
async fn a_stall_before_any_byte_fails_after_the_idle_limit_without_retrying() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            tokens: 20,
            stall_after: Some(0),
            ..FakeConfig::default()
        },
        quick_idle(),
        Some("claude/claude-fake"),
    )
    .await;
    assert_failed(&app, &events, "sent nothing").await;
    assert_eq!(app.fake.requests().len(), 1, "a timeout is not retried");
    report("stall before the first token (idle limit 1 s)", took);
}

#[tokio::test]
async fn a_malformed_event_after_some_tokens_keeps_them() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            tokens: 20,
            malformed_after: Some(6),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_failed(&app, &events, "malformed").await;
    assert_eq!(text_of(&events), expected_text(6));
    report("malformed event after 6 tokens", took);
}

#[tokio::test]
async fn an_error_event_mid_stream_is_reported_in_each_protocol() {
    for model in [
        "fake/fake-model",
        "claude/claude-fake",
        "gemini/gemini-fake",
    ] {
        let (app, events, took) = faulty_turn(
            FakeConfig {
                tokens: 10,
                error_after: Some(4),
                ..FakeConfig::default()
            },
            test_turns(),
            Some(model),
        )
        .await;
        assert_failed(&app, &events, "").await;
        assert_eq!(text_of(&events), expected_text(4), "{model}");
        assert_eq!(app.fake.requests().len(), 1, "{model}: no retry after text");
        report(&format!("error event after 4 tokens ({model})"), took);
    }
}

#[tokio::test]
async fn an_endless_line_is_cut_at_the_event_bound() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            tokens: 20,
            endless_line_after: Some(3),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    assert_failed(&app, &events, "larger than").await;
    assert_eq!(text_of(&events), expected_text(3));
    eventually("the endless stream is closed", || async {
        !app.fake.disconnects().is_empty()
    })
    .await;
    report("endless SSE line after 3 tokens", took);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_key_goes_nowhere_else() {
    let elsewhere = FakeProvider::start(FakeConfig::default())
        .await
        .expect("second fake");
    for model in [
        "claude/claude-fake",
        "gemini/gemini-fake",
        "fake/fake-model",
    ] {
        let (app, events, took) = faulty_turn(
            FakeConfig {
                redirect_to: Some(format!("{}/messages", elsewhere.base_url())),
                ..FakeConfig::default()
            },
            test_turns(),
            Some(model),
        )
        .await;
        assert_failed(&app, &events, "redirect").await;
        assert_eq!(app.fake.requests().len(), 1, "{model}: not retried");
        report(&format!("redirect to another port ({model})"), took);
    }
    assert!(
        elsewhere.calls().is_empty(),
        "nothing, and no key, reached the other port"
    );
}

#[tokio::test]
async fn keep_alives_count_as_life_but_the_total_bound_still_ends_the_turn() {
    let turns = TurnSettings {
        provider_idle: Duration::from_secs(1),
        max_duration: Duration::from_secs(4),
        ..test_turns()
    };
    for model in ["fake/fake-model", "claude/claude-fake"] {
        let (app, events, took) = faulty_turn(
            FakeConfig {
                tokens: 20,
                keepalive_after: Some(4),
                keepalive_interval_ms: 300,
                ..FakeConfig::default()
            },
            turns.clone(),
            Some(model),
        )
        .await;
        // Silent but for keep-alives well past the idle limit: ended by the total bound.
        let error = assert_failed(&app, &events, "took longer than 4 seconds").await;
        assert!(
            took >= Duration::from_secs(3),
            "{model}: {took:?} ({error})"
        );
        assert_eq!(text_of(&events), expected_text(4));
        report(
            &format!("keep-alive-only trickle ({model}, total bound 4 s)"),
            took,
        );
    }
}

#[tokio::test]
async fn a_huge_error_body_is_not_read_whole_nor_shown() {
    let (app, events, took) = faulty_turn(
        FakeConfig {
            fail_status: Some(400),
            error_body_bytes: Some(50 * 1024 * 1024),
            ..FakeConfig::default()
        },
        test_turns(),
        None,
    )
    .await;
    let error = assert_failed(&app, &events, "400").await;
    assert!(error.len() < 400, "{error}");
    report("HTTP 400 with a 50 MB error body", took);
}

#[tokio::test]
async fn a_reply_past_the_size_bound_keeps_what_fits() {
    let turns = TurnSettings {
        max_reply_chars: 40,
        ..test_turns()
    };
    let (app, events, _) = faulty_turn(
        FakeConfig {
            tokens: 200,
            ..FakeConfig::default()
        },
        turns,
        None,
    )
    .await;
    assert_failed(&app, &events, "grew past 40 characters").await;
    assert!(text_of(&events).chars().count() <= 40);
    eventually("the provider is hung up on", || async {
        !app.fake.disconnects().is_empty()
    })
    .await;
}

/// A provider that panics inside its stream after a few tokens: a stand-in for any bug.
struct Panicking;

impl Provider for Panicking {
    fn stream_chat(&self, _request: ChatRequest) -> EventStream {
        Box::pin(futures::stream::iter(0..).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if i == 3 {
                panic!("injected fault");
            }
            Ok(ProviderEvent::TextDelta(format!("t{i} ")))
        }))
    }
}

#[tokio::test]
async fn a_panic_in_a_turn_ends_it_for_every_reader_and_stores_it() {
    let app = TestApp::with(Setup {
        extra_models: vec![test_model("bug/panics", Arc::new(Panicking))],
        ..Setup::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut first = EventReader::new(app.send_to(turn_id, None, "Hi", Some("bug/panics")).await);
    let started = first.next().await.expect("Started");
    let second = EventReader::new(
        app.post_json(
            "turn_events",
            json!({"turn_id": turn_id, "run": 1, "after_seq": 0}),
        )
        .await,
    );
    let mut events = vec![started];
    events.extend(first.read_to_end().await);
    let watched = second.read_to_end().await;
    assert_eq!(
        watched, events,
        "both readers saw the same turn, to its end"
    );
    let error = assert_failed(&app, &events, "internal error").await;
    assert!(error.contains("kept"), "{error}");
    assert_eq!(text_of(&events), "t0 t1 t2 ");
    // Stop tells the truth about a turn that already ended.
    let stop = app.stop(turn_id).await;
    assert_eq!(stop.status(), 200);
    let outcome: Outcome = stop.json().await.expect("outcome");
    assert_eq!(outcome.status, MessageStatus::Failed);
    // The server is fine: the next turn works.
    let next = app
        .turn_on("fake/fake-model", Some(conversation_of(&events)), "Again")
        .await;
    assert_eq!(finished(&next).status, MessageStatus::Complete);
}
