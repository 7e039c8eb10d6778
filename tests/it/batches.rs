//! Turn starts in batches (group commit, `db/batch.rs`): sends that arrive while the writer is
//! busy begin together in one transaction, each its own turn, and a turn refused inside a batch
//! fails alone, in words, while the others in its batch go on.
//!
//! Each test holds the server's writes back while its sends arrive (`TestApp::hold_writes`: on
//! SQLite its one writer connection, on Postgres a lock on the tables a turn writes), so that
//! they all wait for the batch writer at once, then lets them go.

use fake_provider::{expected_text, FakeConfig};
use futures::future::join_all;
use rill::model::{MessageStatus, SendRequest};
use rill::server::db::{self, BeginTurn, NewTurn, Owner};
use rill::server::input::ValidSend;
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// Waits until `n` writes wait for the batch writer (for the connection the test holds).
async fn until_waiting(app: &TestApp, n: usize) {
    eventually(
        &format!("{n} writes waiting for the batch writer"),
        || async { app.state.db.pending_writes() >= n },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_waiting_for_the_writer_begin_in_one_transaction_each_its_own() {
    let app = TestApp::start(FakeConfig::default()).await;
    let owner = Owner("local".into());
    let sends: Vec<ValidSend> = (0..100)
        .map(|i| {
            let request = SendRequest {
                turn_id: Uuid::new_v4(),
                conversation_id: None,
                text: format!("question {i}"),
                model: None,
                system_prompt: None,
                alternative_to: None,
                attachments: Vec::new(),
            };
            ValidSend::new(request, |_| true, "").expect("a valid send")
        })
        .collect();
    let writer = app.hold_writes().await;
    let begun = tokio::spawn({
        let database = app.state.db.clone();
        let owner = owner.clone();
        let sends = sends.clone();
        async move {
            join_all(sends.iter().map(|send| {
                db::begin_turn(
                    &database,
                    &owner,
                    NewTurn {
                        send,
                        default_model: "fake/fake-model",
                        quota_bytes: None,
                    },
                )
            }))
            .await
        }
    });
    until_waiting(&app, 100).await;
    let before = app.state.db.batches();
    writer.release().await;
    let begun = begun.await.expect("the sends");
    // Perhaps the first alone (taken before the others arrived), then all the others.
    assert!(
        app.state.db.batches() - before <= 2,
        "100 turns took {} transactions",
        app.state.db.batches() - before
    );
    let mut conversations = std::collections::HashSet::new();
    for (send, begun) in sends.iter().zip(begun) {
        let Ok(BeginTurn::Started(record)) = begun else {
            panic!("a turn did not begin");
        };
        assert_eq!(record.turn_id(), send.turn_id());
        assert_eq!(record.user.content, send.text());
        conversations.insert(record.conversation_id);
    }
    assert_eq!(conversations.len(), 100, "each send its own conversation");
    assert_eq!(app.count("messages").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sends_at_once_all_begin_each_its_own_turn() {
    let app = TestApp::start(FakeConfig {
        tokens: 8,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let writer = app.hold_writes().await;
    let turn_ids: Vec<Uuid> = (0..150).map(|_| Uuid::new_v4()).collect();
    let sends = join_all(turn_ids.iter().enumerate().map(|(i, turn_id)| {
        let app = &app;
        async move {
            let response = app.send(*turn_id, None, &format!("Hello {i}")).await;
            EventReader::new(response).read_to_end().await
        }
    }));
    let waiting = async {
        until_waiting(&app, 150).await;
        writer.release().await;
    };
    let (turns, ()) = tokio::join!(sends, waiting);
    let mut conversations = std::collections::HashSet::new();
    for (turn_id, events) in turn_ids.iter().zip(&turns) {
        assert_eq!(finished(events).status, MessageStatus::Complete);
        assert_eq!(text_of(events), expected_text(8));
        let conversation = conversation_of(events);
        conversations.insert(conversation);
        let stored: (String,) =
            sql("SELECT conversation_id FROM messages WHERE turn_id = $1 AND role = 'assistant'")
                .bind(*turn_id)
                .fetch_one(&app.state.db)
                .await;
        assert_eq!(stored.0, conversation.to_string());
    }
    assert_eq!(conversations.len(), 150);
    assert_eq!(app.count("messages").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_turn_in_a_batch_fails_alone_with_words() {
    let app = TestApp::start(FakeConfig {
        tokens: 8,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let open = conversation_of(&app.turn(None, "first").await);
    let deleted = conversation_of(&app.turn(None, "to delete").await);
    let gone = app
        .post_json("delete_conversation", json!({"id": deleted}))
        .await;
    assert_eq!(gone.status(), 200);

    let writer = app.hold_writes().await;
    let send = |conversation: Option<Uuid>, text: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "send_message",
                json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": text}),
            )
            .await
        }
    };
    // Two into the same conversation (one of them finds the other's reply streaming) and new
    // conversations around them; then one into the deleted conversation, once the others wait.
    // (On Postgres the writes are held by a lock that reads pass, and a refusal only reads: it
    // could end in a batch of its own before the others arrived.)
    let sends = join_all([
        send(None, "new one"),
        send(Some(open), "second question"),
        send(Some(open), "second question again"),
        send(None, "new two"),
    ]);
    let into_deleted = async {
        until_waiting(&app, 4).await;
        send(Some(deleted), "into the deleted one").await
    };
    let waiting = async {
        until_waiting(&app, 5).await;
        writer.release().await;
    };
    let (responses, into_deleted, ()) = tokio::join!(sends, into_deleted, waiting);
    let mut answers = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        if status == 200 {
            let events = EventReader::new(response).read_to_end().await;
            assert_eq!(finished(&events).status, MessageStatus::Complete);
            answers.push((status, text_of(&events)));
        } else {
            answers.push((status, response.text().await.expect("the body")));
        }
    }
    assert_eq!(answers[0], (200, expected_text(8)));
    assert_eq!(answers[3], (200, expected_text(8)));
    assert_eq!(into_deleted.status(), 404);
    let words = into_deleted.text().await.expect("the body");
    assert!(words.contains("no such conversation"), "{words}");
    // One of the two into `open` began; the other was told why not.
    let mut into_open = [&answers[1], &answers[2]];
    into_open.sort();
    assert_eq!(*into_open[0], (200, expected_text(8)));
    assert_eq!(into_open[1].0, 409);
    assert!(
        into_open[1].1.contains("a reply is already being written"),
        "{:?}",
        into_open[1]
    );
    // Stored: the two new conversations' turns and one more in `open`, nothing of the refused.
    assert_eq!(app.count("messages").await, 4 + 6);
    let kept: (i64,) = sql(
        "SELECT COUNT(*) FROM messages WHERE content IN ('second question', 'second question again')
           AND role = 'user'",
    )
    .fetch_one(&app.state.db)
    .await;
    assert_eq!(kept.0, 1);
}
