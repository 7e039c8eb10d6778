use rill::model::{MessageStatus, Outcome, TurnEvent};
use uuid::Uuid;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_answers_with_no_key_and_no_network() {
    let app = TestApp::start_local().await;
    let events = app.turn(None, "Say hello in one short sentence.").await;
    let TurnEvent::Started { model, .. } = &events[0].event else {
        panic!("not Started")
    };
    assert_eq!(
        model, "local/smollm2-135m",
        "with no provider configured the local model is the default"
    );
    let text = text_of(&events);
    assert!(!text.trim().is_empty());
    let Outcome {
        status,
        usage,
        usage_estimated,
        ..
    } = finished(&events);
    assert_eq!(*status, MessageStatus::Complete);
    assert!(!usage_estimated, "real token counts");
    assert!(usage.is_some_and(|u| u.input_tokens > 10 && u.output_tokens > 0));
    assert_eq!(
        last_reply(&app, conversation_of(&events)).await,
        ("complete".to_owned(), text)
    );
    assert!(
        app.fake.requests().is_empty(),
        "nothing went over the network"
    );
    // The picker says the built-in model cannot see images (an image sent to it is refused).
    let menu: rill::model::ModelMenu = app
        .post_json("list_models", serde_json::json!({}))
        .await
        .json()
        .await
        .expect("the menu");
    assert_eq!(
        menu.groups[0].models[0].note.as_deref(),
        Some("SmolLM2-135M-Instruct, on this server, no key; cannot see images")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_local_generation_and_keeps_the_text() {
    let app = TestApp::start_local().await;
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(
        app.send(
            turn_id,
            None,
            "Write a long story about a lighthouse keeper.",
        )
        .await,
    );
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&rill::model::TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
        .count()
        < 3
    {
        events.push(reader.next().await.expect("still streaming"));
    }
    assert_eq!(app.stop(turn_id).await.status(), 200);
    while let Some(event) = reader.next().await {
        events.push(event);
    }
    let Outcome { status, .. } = finished(&events);
    assert_eq!(*status, MessageStatus::Stopped);
    assert_eq!(
        last_reply(&app, conversation_of(&events)).await,
        ("stopped".to_owned(), text_of(&events))
    );
    // The generation thread is free again: a new turn's first text comes without queueing (it
    // is stopped there: how long the model then goes on is not what this tests).
    let next_id = Uuid::new_v4();
    let mut next = EventReader::new(
        app.send(next_id, Some(conversation_of(&events)), "Thanks.")
            .await,
    );
    loop {
        match next.next().await.map(|e| e.event) {
            Some(TurnEvent::Delta { .. }) => break,
            Some(TurnEvent::Queued { .. }) => panic!("the next turn was queued"),
            Some(TurnEvent::Finished(outcome)) => panic!("ended before any text: {outcome:?}"),
            Some(_) => {}
            None => panic!("the stream ended before any text"),
        }
    }
    assert_eq!(app.stop(next_id).await.status(), 200);
}

/// Digits are one token each for SmolLM2, three times the usual estimate: only an exact count
/// keeps this conversation inside a small context, by the same rule as every model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_longer_than_the_context_leaves_out_its_oldest_turns() {
    let app = TestApp::with(Setup {
        local: true,
        local_context: Some(1024),
        ..Setup::default()
    })
    .await;
    let numbers = "3141592653".repeat(45);
    let first = app
        .turn(None, &format!("Remember these digits: {numbers}"))
        .await;
    assert_eq!(finished(&first).status, MessageStatus::Complete);
    assert_eq!(finished(&first).left_out, 0);
    let conversation = conversation_of(&first);
    let second = app
        .turn(Some(conversation), &format!("And these: {numbers}"))
        .await;
    let outcome = finished(&second);
    assert_eq!(
        outcome.status,
        MessageStatus::Complete,
        "{:?}",
        outcome.error
    );
    assert_eq!(outcome.left_out, 2, "the first question and its reply");
    let usage = outcome.usage.expect("usage");
    assert!(usage.input_tokens < 1024 - 64, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_local_queue_says_busy_instead_of_making_the_reply_wait() {
    let app = TestApp::with(Setup {
        local: true,
        local_queue: Some(0),
        ..Setup::default()
    })
    .await;
    let mut generating = EventReader::new(
        app.send(Uuid::new_v4(), None, "Tell me a long story about the sea.")
            .await,
    );
    generating.started().await;
    first_text(&mut generating).await;
    // Nothing may wait behind the reply being generated: the next is refused, in words.
    let refused = app.turn(None, "Hello").await;
    let outcome = finished(&refused);
    assert_eq!(outcome.status, MessageStatus::Failed);
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("busy"), "{error}");
    assert_eq!(
        finished(&generating.read_to_end().await).status,
        MessageStatus::Complete,
        "the reply being generated is not disturbed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_share_the_local_model_in_turn_and_one_cannot_fill_its_queue() {
    let app = TestApp::with(Setup {
        local: true,
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    for name in ["ann", "ben", "cai"] {
        app.add_user(name, false).await;
    }
    let ann = app.signed_in("ann").await;
    let ben = app.signed_in("ben").await;
    let cai = app.signed_in("cai").await;
    // Ann's first reply is generating…
    let first_id = Uuid::new_v4();
    let first = ann
        .send(
            first_id,
            None,
            "Write a long story about a lighthouse keeper.",
        )
        .await;
    assert_eq!(first.status(), 200);
    let mut first = EventReader::new(first);
    first_text(&mut first).await;
    // …when she asks twice more, then Ben and Cai once each. Each request is seen queued before
    // the next is sent, so the order they arrived in is known.
    let ann_second = queued(&ann).await;
    let refused = ann.turn(None, "Say hello.").await;
    let outcome = finished(&refused);
    assert_eq!(outcome.status, MessageStatus::Failed, "{outcome:?}");
    let words = outcome.error.clone().unwrap_or_default();
    assert!(
        words.contains("one waiting for the built-in model"),
        "{words}"
    );
    let ben_first = queued(&ben).await;
    let cai_first = queued(&cai).await;
    // Stopping Ann's first frees the model for the waiting: Ben and Cai, who arrived after Ann's
    // second, are served before it because Ann was served last.
    assert_eq!(
        ann.post("stop_turn", serde_json::json!({"turn_id": first_id}))
            .await
            .status(),
        200
    );
    assert_eq!(
        finished(&first.read_to_end().await).status,
        MessageStatus::Stopped
    );
    let finish_order = std::sync::Mutex::new(Vec::new());
    let finish = |who: &'static str, reader: EventReader| {
        let finish_order = &finish_order;
        async move {
            let events = reader.read_to_end().await;
            let outcome = finished(&events);
            assert_eq!(
                outcome.status,
                MessageStatus::Complete,
                "{who}: {outcome:?}"
            );
            finish_order.lock().expect("lock").push(who);
        }
    };
    futures::future::join3(
        finish("ann", ann_second),
        finish("ben", ben_first),
        finish("cai", cai_first),
    )
    .await;
    let order = finish_order.lock().expect("lock").clone();
    assert_eq!(order.last(), Some(&"ann"), "{order:?}");
}

/// Sends "Say hello." and reads its turn until the built-in model says it waits in the queue.
async fn queued(person: &Person) -> EventReader {
    let response = person.send(Uuid::new_v4(), None, "Say hello.").await;
    assert_eq!(response.status(), 200);
    let mut reader = EventReader::new(response);
    loop {
        match reader.next().await.map(|e| e.event) {
            Some(TurnEvent::Queued { .. }) => return reader,
            Some(TurnEvent::Finished(outcome)) => panic!("ended before it was queued: {outcome:?}"),
            Some(TurnEvent::Delta { .. }) => panic!("generated without waiting"),
            Some(_) => {}
            None => panic!("the stream ended before it was queued"),
        }
    }
}

/// Reads a turn until its first text; panics if it ends before any.
async fn first_text(reader: &mut EventReader) {
    loop {
        match reader.next().await.map(|e| e.event) {
            Some(TurnEvent::Delta { .. }) => return,
            Some(TurnEvent::Finished(outcome)) => panic!("ended before any text: {outcome:?}"),
            Some(_) => {}
            None => panic!("the stream ended before any text"),
        }
    }
}
