//! Continue: a stopped or interrupted reply goes on from its text, in the same reply, with its
//! figures adding up.

use fake_provider::{expected_text, FakeConfig};
use rill::model::{MessageStatus, Outcome, TurnEvent};
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// Sends a long reply and stops it after `deltas` deltas; returns the turn id, conversation and
/// the text shown.
async fn stopped_turn(app: &TestApp, model: &str, deltas: usize) -> (Uuid, Uuid, String) {
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(
        app.send_to(turn_id, None, "Tell a story", Some(model))
            .await,
    );
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&rill::model::TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
        .count()
        < deltas
    {
        events.push(reader.next().await.expect("streaming"));
    }
    assert_eq!(app.stop(turn_id).await.status(), 200);
    events.extend(reader.read_to_end().await);
    assert_eq!(finished(&events).status, MessageStatus::Stopped);
    (turn_id, conversation_of(&events), text_of(&events))
}

#[tokio::test]
async fn continue_goes_on_from_the_stopped_text_in_the_same_reply() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let (turn_id, conversation, shown) = stopped_turn(&app, "fake/fake-model", 5).await;
    let before: Outcome = app.stop(turn_id).await.json().await.expect("outcome");
    app.fake.set_config(FakeConfig {
        tokens: 6,
        ..FakeConfig::default()
    });
    let events = EventReader::new(app.continue_reply(&turn_id, 1).await)
        .read_to_end()
        .await;
    let TurnEvent::Started { run, .. } = &events[0].event else {
        panic!("not Started: {events:?}")
    };
    assert_eq!(*run, 2, "the reply's second run");
    // The run's log starts with the text so far, then the continuation.
    let whole = format!("{shown}{}", expected_text(6));
    assert_eq!(text_of(&events), whole);
    let outcome = finished(&events);
    assert_eq!(outcome.status, MessageStatus::Complete);
    let (b, a) = (before.usage.expect("usage"), outcome.usage.expect("usage"));
    assert_eq!(a.output_tokens, b.output_tokens + 6, "the figures add up");
    assert!(a.input_tokens > b.input_tokens);
    assert!(outcome.usage_estimated, "part of it was estimated");
    assert!(outcome.cost_usd > before.cost_usd);
    assert_eq!(
        last_reply(&app, conversation).await,
        ("complete".into(), whole)
    );
    assert_eq!(app.count("messages").await, 2, "no new message");
    // The model was asked to go on from the text: it is the last assistant message it was sent.
    let request = &app.fake.requests()[1];
    let messages = request["messages"].as_array().expect("messages");
    let partial = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .expect("the partial reply");
    assert_eq!(partial["content"], json!(shown));
}

#[tokio::test]
async fn anthropic_continues_by_prefilling_the_reply() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let (turn_id, _, shown) = stopped_turn(&app, "claude/claude-fake", 4).await;
    app.fake.set_config(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    });
    let events = EventReader::new(app.continue_reply(&turn_id, 1).await)
        .read_to_end()
        .await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    let request = &app.fake.requests()[1];
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .expect("messages");
    assert_eq!(last["role"], "assistant");
    assert_eq!(last["content"], json!(shown.trim_end()));
}

#[tokio::test]
async fn an_interrupted_reply_can_be_continued_after_a_restart() {
    let app = TestApp::start(FakeConfig {
        tokens: 5,
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn(None, "Hi").await;
    let conversation = conversation_of(&events);
    // As a kill would leave it: streaming with the last flushed text, then a restart.
    assert_eq!(app.crash_mid_reply("Hello wör").await, 1);
    let (turn_id,): (String,) = sql("SELECT turn_id FROM messages WHERE role = 'assistant'")
        .fetch_one(&app.state.db)
        .await;
    let events = EventReader::new(app.continue_reply(&turn_id, 1).await)
        .read_to_end()
        .await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    assert_eq!(
        last_reply(&app, conversation).await,
        ("complete".into(), format!("Hello wör{}", expected_text(5)))
    );
}

#[tokio::test]
async fn only_the_last_stopped_or_interrupted_reply_can_be_continued() {
    let app = TestApp::start(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    })
    .await;
    let first = app.turn(None, "One").await;
    let conversation = conversation_of(&first);
    let (first_turn,): (String,) = sql("SELECT turn_id FROM messages WHERE role = 'assistant'")
        .fetch_one(&app.state.db)
        .await;
    let complete = app.continue_reply(&first_turn, 1).await;
    assert_eq!(complete.status(), 409);
    assert!(complete
        .text()
        .await
        .unwrap_or_default()
        .contains("stopped, interrupted or cut at its length limit"));
    sql("UPDATE messages SET status = 'stopped' WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    app.turn(Some(conversation), "Two").await;
    let earlier = app.continue_reply(&first_turn, 1).await;
    assert_eq!(earlier.status(), 409);
    assert!(earlier
        .text()
        .await
        .unwrap_or_default()
        .contains("last reply"));
    let unknown = app.continue_reply(Uuid::new_v4(), 1).await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn asking_to_continue_twice_continues_once_and_the_second_ask_follows_it() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let (turn_id, conversation, shown) = stopped_turn(&app, "fake/fake-model", 3).await;
    app.fake.set_config(FakeConfig {
        tokens: 40,
        token_delay_ms: 5,
        ..FakeConfig::default()
    });
    // The page asked, lost the connection before any event, and asks again.
    let first = app.continue_reply(&turn_id, 1).await;
    assert_eq!(first.status(), 200);
    drop(first);
    let again = EventReader::new(app.continue_reply(&turn_id, 1).await)
        .read_to_end()
        .await;
    assert_eq!(finished(&again).status, MessageStatus::Complete);
    assert_eq!(text_of(&again), format!("{shown}{}", expected_text(40)));
    // And once it has ended, a third ask (from a page that saw run 1) gets the result too.
    let late = EventReader::new(app.continue_reply(&turn_id, 1).await)
        .read_to_end()
        .await;
    assert_eq!(text_of(&late), text_of(&again));
    assert_eq!(app.fake.requests().len(), 2, "one continuation");
    assert_eq!(
        last_reply(&app, conversation).await,
        ("complete".into(), text_of(&again))
    );
}

#[tokio::test]
async fn a_page_opened_during_a_continuation_sees_the_reply_being_written() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let (turn_id, conversation, _) = stopped_turn(&app, "fake/fake-model", 3).await;
    app.fake.set_config(FakeConfig {
        tokens: 200,
        token_delay_ms: 10,
        ..FakeConfig::default()
    });
    let mut first = EventReader::new(app.continue_reply(&turn_id, 1).await);
    first.started().await;
    let mut opened = app.watch(conversation, Some(turn_id)).await;
    match opened.next_line().await {
        Some(rill::model::StreamLine::Turn { reply, .. }) => {
            assert_eq!(reply.outcome.status, MessageStatus::Streaming);
            assert_eq!(reply.run, 2);
        }
        other => panic!("expected the running turn, got {other:?}"),
    }
}

#[tokio::test]
async fn two_continues_at_once_start_one_continuation_and_both_follow_it() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let (turn_id, _, shown) = stopped_turn(&app, "fake/fake-model", 3).await;
    app.fake.set_config(FakeConfig {
        tokens: 30,
        token_delay_ms: 5,
        ..FakeConfig::default()
    });
    let body = json!({"turn_id": turn_id, "from_run": 1});
    let (a, b) = tokio::join!(
        app.post_json("continue_reply", body.clone()),
        app.post_json("continue_reply", body.clone())
    );
    let (a, b) = tokio::join!(
        EventReader::new(a).read_to_end(),
        EventReader::new(b).read_to_end()
    );
    let whole = format!("{shown}{}", expected_text(30));
    assert_eq!(text_of(&a), whole);
    assert_eq!(text_of(&b), whole);
    assert_eq!(finished(&a).status, MessageStatus::Complete);
    assert_eq!(finished(&b).status, MessageStatus::Complete);
    assert_eq!(app.fake.requests().len(), 2, "one continuation");
}

#[tokio::test]
async fn a_reply_cut_at_its_length_limit_says_so_in_every_protocol_and_can_be_continued() {
    let app = TestApp::start(FakeConfig {
        tokens: 5,
        hit_token_limit: true,
        ..FakeConfig::default()
    })
    .await;
    for model in [
        "fake/fake-model",
        "claude/claude-fake",
        "gemini/gemini-fake",
    ] {
        let turn_id = Uuid::new_v4();
        let events = EventReader::new(
            app.send_to(turn_id, None, "Tell a story", Some(model))
                .await,
        )
        .read_to_end()
        .await;
        let outcome = finished(&events);
        assert_eq!(outcome.status, MessageStatus::Complete, "{model}");
        assert!(outcome.cut_at_limit, "{model}: the finish reason is kept");
        // Stored so, and a reload says the same.
        let view: rill::model::ConversationView = app
            .post_json("get_conversation", json!({"id": conversation_of(&events)}))
            .await
            .json()
            .await
            .expect("view");
        assert!(view.messages[1].outcome.cut_at_limit, "{model}");
        // Continue asks for more, and the next run ends naturally.
        app.fake.set_config(FakeConfig {
            tokens: 3,
            ..FakeConfig::default()
        });
        let more = EventReader::new(app.continue_reply(&turn_id, 1).await)
            .read_to_end()
            .await;
        let outcome = finished(&more);
        assert_eq!(outcome.status, MessageStatus::Complete, "{model}");
        assert!(!outcome.cut_at_limit, "{model}");
        app.fake.set_config(FakeConfig {
            tokens: 5,
            hit_token_limit: true,
            ..FakeConfig::default()
        });
    }
}
