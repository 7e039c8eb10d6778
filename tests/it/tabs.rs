//! One conversation open in several tabs: each sees the turns the others start, live; a
//! conversation writes one reply at a time; Stop from any tab stops it for all; streams carry
//! heartbeats and the headers proxies need.

use std::time::{Duration, Instant};

use fake_provider::{expected_text, FakeConfig};
use rill::model::{MessageStatus, Outcome, StreamLine, TurnEnvelope, TurnEvent};
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// Reads a watched conversation until the announced turn `turn_id` finishes; returns its events.
async fn read_turn(tab: &mut EventReader, turn_id: Uuid) -> Vec<TurnEnvelope> {
    let mut following = false;
    let mut events = Vec::new();
    loop {
        match tab
            .next_line()
            .await
            .expect("the conversation stream stays open")
        {
            StreamLine::Turn { reply, .. } => following = reply.turn_id == turn_id,
            StreamLine::Event(event) if following => {
                let done = matches!(event.event, TurnEvent::Finished(_));
                events.push(event);
                if done {
                    return events;
                }
            }
            StreamLine::Event(_) | StreamLine::Heartbeat | StreamLine::Title { .. } => {}
        }
    }
}

#[tokio::test]
async fn a_second_tab_sees_a_turn_started_in_the_first_live_and_identically() {
    let app = TestApp::start(FakeConfig {
        tokens: 40,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    let first = app.turn(None, "First").await;
    let conversation = conversation_of(&first);
    let second_turn = Uuid::new_v4();
    // Tab B shows the conversation (it has everything up to the first turn)…
    let mut tab_b = app.watch(conversation, None).await;
    match tab_b.next_line().await.expect("the stored turn") {
        StreamLine::Turn { user, reply } => {
            assert_eq!(user.content, "First");
            assert_eq!(reply.content, expected_text(40));
            assert_eq!(reply.outcome.status, MessageStatus::Complete);
        }
        other => panic!("expected the stored turn, got {other:?}"),
    }
    // …and tab A sends the next one.
    let mut tab_a = EventReader::new(app.send(second_turn, Some(conversation), "Second").await);
    let (seen_by_a, seen_by_b) = tokio::join!(
        async {
            let mut events = Vec::new();
            while let Some(event) = tab_a.next().await {
                events.push(event);
            }
            events
        },
        read_turn(&mut tab_b, second_turn)
    );
    assert_eq!(seen_by_b, seen_by_a, "the same events, in the same order");
    assert_eq!(text_of(&seen_by_b), expected_text(40));
    // Tab B's stream stays open for the next turn, with heartbeats meanwhile.
    assert_eq!(
        tab_b.next_line().await,
        Some(StreamLine::Heartbeat),
        "a quiet conversation stream carries heartbeats"
    );
}

#[tokio::test]
async fn a_send_into_a_conversation_that_is_streaming_is_refused_and_changes_nothing() {
    let app = TestApp::start(FakeConfig {
        tokens: 200,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut tab_a = EventReader::new(app.send(turn_id, None, "Long one").await);
    let conversation = tab_a.started().await;
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "Me too"}),
        )
        .await;
    assert_eq!(response.status(), 409);
    let body = response.text().await.unwrap_or_default();
    assert!(body.contains("already being written"), "{body}");
    assert_eq!(
        app.count("messages").await,
        2,
        "nothing stored for the refused send"
    );
    let rest = tab_a.read_to_end().await;
    assert_eq!(finished(&rest).status, MessageStatus::Complete);
    assert_eq!(app.fake.requests().len(), 1);
}

#[tokio::test]
async fn stop_in_one_tab_stops_the_reply_in_both_and_cuts_the_upstream() {
    let app = TestApp::start(FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut tab_a = EventReader::new(app.send(turn_id, None, "Talk for a long time").await);
    let conversation_id = tab_a.started().await;
    let mut tab_b = app.watch(conversation_id, None).await;
    // Tab B follows the running turn; once it has seen text, it presses Stop.
    let mut seen_by_b = Vec::new();
    loop {
        if let StreamLine::Event(event) = tab_b.next_line().await.expect("open") {
            let delta = matches!(event.event, TurnEvent::Delta { .. });
            seen_by_b.push(event);
            if delta && seen_by_b.len() > 5 {
                break;
            }
        }
    }
    let pressed = Instant::now();
    let stop = app.stop(turn_id).await;
    let answered = pressed.elapsed();
    assert_eq!(stop.status(), 200);
    let outcome: Outcome = stop.json().await.expect("outcome");
    assert_eq!(outcome.status, MessageStatus::Stopped);
    let disconnect = app
        .fake
        .wait_for_disconnect(Duration::from_secs(5))
        .await
        .expect("the upstream was closed");
    let upstream_closed = disconnect.at.map(|at| at.duration_since(pressed));
    eprintln!(
        "Stop with a second tab watching: upstream closed {upstream_closed:?} after the press, stop answered in {answered:?}"
    );
    let seen_by_a: Vec<TurnEnvelope> = {
        let mut events = vec![];
        while let Some(e) = tab_a.next().await {
            events.push(e);
        }
        events
    };
    assert_eq!(finished(&seen_by_a).status, MessageStatus::Stopped);
    let rest_b = read_turn_rest(&mut tab_b).await;
    seen_by_b.extend(rest_b);
    assert_eq!(finished(&seen_by_b).status, MessageStatus::Stopped);
    assert_eq!(
        text_of(&seen_by_b),
        text_of(&seen_by_a),
        "both tabs end with the same text"
    );
    assert_eq!(
        last_reply(&app, conversation_id).await,
        ("stopped".to_owned(), text_of(&seen_by_b))
    );
}

/// The rest of the turn being followed on a conversation stream, to its `Finished`.
async fn read_turn_rest(tab: &mut EventReader) -> Vec<TurnEnvelope> {
    let mut events = Vec::new();
    loop {
        if let StreamLine::Event(event) = tab.next_line().await.expect("open") {
            let done = matches!(event.event, TurnEvent::Finished(_));
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

#[tokio::test]
async fn a_page_that_missed_turns_while_away_gets_them_first() {
    let app = TestApp::start(FakeConfig {
        tokens: 4,
        ..FakeConfig::default()
    })
    .await;
    let first = app.turn(None, "One").await;
    let conversation = conversation_of(&first);
    let one: (String,) = sql("SELECT turn_id FROM messages WHERE content = 'One'")
        .fetch_one(&app.state.db)
        .await;
    app.turn(Some(conversation), "Two").await;
    app.turn(Some(conversation), "Three").await;
    // The page has turn One; it comes back and asks from there.
    let mut tab = app
        .watch(conversation, Some(Uuid::parse_str(&one.0).expect("id")))
        .await;
    let mut questions = Vec::new();
    for _ in 0..3 {
        match tab.next_line().await.expect("a turn") {
            StreamLine::Turn { user, .. } => questions.push(user.content),
            other => panic!("expected turns first, got {other:?}"),
        }
    }
    assert_eq!(questions, ["One", "Two", "Three"]);
}

#[tokio::test]
async fn an_unknown_conversation_stream_is_404() {
    let app = TestApp::start(FakeConfig::default()).await;
    let response = app
        .post_json(
            "conversation_events",
            json!({"conversation_id": Uuid::new_v4(), "from_turn": null}),
        )
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn turn_streams_carry_heartbeats_while_the_provider_thinks_and_say_not_to_buffer() {
    let app = TestApp::start(FakeConfig {
        tokens: 3,
        first_token_delay_ms: 1_600,
        ..FakeConfig::default()
    })
    .await;
    let response = app.send(Uuid::new_v4(), None, "Take your time").await;
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(
        response
            .headers()
            .get("x-accel-buffering")
            .and_then(|v| v.to_str().ok()),
        Some("no")
    );
    let mut reader = EventReader::new(response);
    let mut lines = Vec::new();
    while let Some(line) = reader.next_line().await {
        lines.push(line);
    }
    let heartbeats = lines
        .iter()
        .take_while(|l| {
            !matches!(
                l,
                StreamLine::Event(TurnEnvelope {
                    event: TurnEvent::Delta { .. },
                    ..
                })
            )
        })
        .filter(|l| **l == StreamLine::Heartbeat)
        .count();
    assert!(
        heartbeats >= 2,
        "heartbeats before the first token: {heartbeats} in {lines:?}"
    );
}

#[tokio::test]
async fn a_reader_of_a_turn_that_left_memory_gets_it_whole_from_the_start() {
    let app = TestApp::forgetting(FakeConfig {
        tokens: 10,
        ..FakeConfig::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let events = EventReader::new(app.send(turn_id, None, "Hi").await)
        .read_to_end()
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A reader that had seen up to event 7 of the live log comes back after the log was dropped.
    let replay = EventReader::new(
        app.post_json(
            "turn_events",
            json!({"turn_id": turn_id, "run": 1, "after_seq": 7}),
        )
        .await,
    )
    .read_to_end()
    .await;
    assert!(
        matches!(replay[0].event, TurnEvent::Started { .. }),
        "{replay:?}"
    );
    assert_eq!(text_of(&replay), text_of(&events));
    assert_eq!(finished(&replay), finished(&events));
}

#[tokio::test]
async fn ended_turns_and_unwatched_conversations_are_let_go() {
    let app = TestApp::forgetting(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    })
    .await;
    let mut conversations = Vec::new();
    for _ in 0..5 {
        conversations.push(conversation_of(&app.turn(None, "Hi").await));
    }
    let tab = app.watch(conversations[0], None).await;
    eventually("ended turns are let go", || async {
        app.state.turns.held().0 == 0
    })
    .await;
    assert_eq!(
        app.state.turns.held().1,
        1,
        "only the watched conversation is held"
    );
    drop(tab);
    // The next sweep (any turn ending, or a page opening a conversation) lets it go too.
    app.turn(None, "Again").await;
    eventually("the unwatched conversation is let go", || async {
        app.state.turns.held() == (0, 0)
    })
    .await;
}

#[tokio::test]
async fn many_sends_at_once_into_one_conversation_start_one_turn_and_refuse_the_rest_cleanly() {
    let app = TestApp::start(FakeConfig {
        tokens: 30,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "First").await);
    let answers = futures::future::join_all((0..20).map(|i| {
        app.post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": format!("At once {i}")}),
        )
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    for answer in answers.into_iter().filter(|a| a.status() == 200) {
        let events = EventReader::new(answer).read_to_end().await;
        assert_eq!(finished(&events).status, MessageStatus::Complete);
    }
    assert_eq!(app.count("messages").await, 4);
}

#[tokio::test]
async fn a_reply_left_streaming_with_nothing_writing_it_does_not_block_its_conversation() {
    let app = TestApp::forgetting(FakeConfig {
        tokens: 5,
        ..FakeConfig::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let events = EventReader::new(app.send(turn_id, None, "Hi").await)
        .read_to_end()
        .await;
    let conversation = conversation_of(&events);
    eventually("the turn left memory", || async {
        app.state.turns.held().0 == 0
    })
    .await;
    // As if its end could not be stored: the row says streaming, and nothing writes it.
    sql("UPDATE messages SET status = 'streaming' WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    // A reader gets an end (interrupted), not a stream that never finishes…
    let replay = EventReader::new(
        app.post_json(
            "turn_events",
            json!({"turn_id": turn_id, "run": 1, "after_seq": 0}),
        )
        .await,
    )
    .read_to_end()
    .await;
    assert_eq!(finished(&replay).status, MessageStatus::Interrupted);
    // …and the conversation takes the next message.
    sql("UPDATE messages SET status = 'streaming' WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    let next = app.turn(Some(conversation), "Still there?").await;
    assert_eq!(finished(&next).status, MessageStatus::Complete);
}

#[tokio::test]
async fn a_send_whose_connection_drops_while_it_is_stored_still_ends_and_can_be_resent() {
    let app = TestApp::start(FakeConfig {
        tokens: 8,
        ..FakeConfig::default()
    })
    .await;
    // Hold the server's writes so that storing the message waits.
    let blocker = app.hold_writes().await;
    let turn_id = Uuid::new_v4();
    let body = json!({"turn_id": turn_id, "conversation_id": null, "text": "Hello"});
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        app.http
            .post(format!("{}/api/send_message", app.base_url))
            .json(&body)
            .send(),
    )
    .await;
    assert!(dropped.is_err(), "the send was still waiting for the lock");
    blocker.release().await;
    // The page sends the same turn again: it gets the turn, to its end.
    let events = EventReader::new(app.send(turn_id, None, "Hello").await)
        .read_to_end()
        .await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    assert_eq!(text_of(&events), expected_text(8));
    assert_eq!(app.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_send_repeated_while_the_first_is_being_stored_gets_the_same_answer() {
    let app = TestApp::start(FakeConfig {
        tokens: 500,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    // The conversation is busy with a long reply…
    let mut running = EventReader::new(app.send(Uuid::new_v4(), None, "Long").await);
    let conversation = running.started().await;
    // …and the writes are held, so the next send waits while it is being stored.
    let blocker = app.hold_writes().await;
    let turn_id = Uuid::new_v4();
    let body = json!({"turn_id": turn_id, "conversation_id": conversation, "text": "Me too"});
    let first = app.post_json("send_message", body.clone());
    let again = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.post_json("send_message", body.clone()).await
    };
    let unlock = async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        blocker.release().await;
    };
    let (first, again, ()) = tokio::join!(first, again, unlock);
    assert_eq!(first.status(), 409);
    assert_eq!(
        again.status(),
        409,
        "the repeated send is refused the same way"
    );
    drop(running);
}
