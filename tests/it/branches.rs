//! Editing a question or regenerating an answer: the conversation becomes a tree, the page shows
//! one branch, and the history sent to a provider follows that branch.

use fake_provider::{expected_text, FakeConfig};
use rill::model::{ConversationView, Role};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

async fn alternative(
    app: &TestApp,
    conversation: Uuid,
    text: &str,
    alternative_to: Uuid,
) -> Vec<rill::model::TurnEnvelope> {
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": text,
                   "model": null, "alternative_to": alternative_to}),
        )
        .await;
    assert_eq!(response.status(), 200);
    EventReader::new(response).read_to_end().await
}

fn texts(view: &ConversationView) -> Vec<String> {
    view.messages.iter().map(|m| m.content.clone()).collect()
}

fn sent(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn edits_and_regenerations_branch_the_conversation_and_the_history_follows_the_branch() {
    let app = TestApp::start(FakeConfig {
        tokens: 2,
        ..Default::default()
    })
    .await;
    let reply = expected_text(2);
    let first = app.turn(None, "Q1").await;
    let conversation = conversation_of(&first);
    app.turn(Some(conversation), "Q2").await;
    let view = app.stored(conversation).await;
    let (q1, q2) = (view.messages[0].turn_id, view.messages[2].turn_id);

    // Regenerate the last answer: a sibling of Q2's turn, with Q2's history and not its answer.
    alternative(&app, conversation, "Q2", q2).await;
    let requests = app.fake.requests();
    assert_eq!(sent(&requests[2]), ["Q1", reply.as_str(), "Q2"]);
    let view = app.stored(conversation).await;
    assert_eq!(texts(&view), ["Q1", reply.as_str(), "Q2", reply.as_str()]);
    let q2b = view.messages[2].turn_id;
    assert_ne!(q2b, q2);
    assert_eq!(view.messages[2].alternatives, [q2, q2b]);
    assert!(view.messages[0].alternatives.is_empty());

    // Edit the first question: a new branch from the start, sent alone.
    alternative(&app, conversation, "Q1, edited", q1).await;
    assert_eq!(sent(&app.fake.requests()[3]), ["Q1, edited"]);
    let view = app.stored(conversation).await;
    assert_eq!(texts(&view), ["Q1, edited", reply.as_str()]);
    let q1b = view.messages[0].turn_id;
    assert_eq!(view.messages[0].alternatives, [q1, q1b]);

    // A message now follows the edited branch.
    app.turn(Some(conversation), "Q3").await;
    assert_eq!(
        sent(&app.fake.requests()[4]),
        ["Q1, edited", reply.as_str(), "Q3"]
    );

    // Back to the first version: it opens at its newest end (the regenerated answer).
    let switched = app
        .post_json(
            "switch_branch",
            json!({"conversation_id": conversation, "turn_id": q1}),
        )
        .await;
    assert_eq!(switched.status(), 200);
    let view: ConversationView = switched.json().await.expect("view");
    assert_eq!(texts(&view), ["Q1", reply.as_str(), "Q2", reply.as_str()]);
    assert_eq!(view.messages[2].turn_id, q2b);
    assert_eq!(view.messages[2].alternatives, [q2, q2b]);
    // It stays chosen: a reload shows it, and the next message follows it.
    assert_eq!(texts(&app.stored(conversation).await), texts(&view));
    app.turn(Some(conversation), "Q4").await;
    assert_eq!(
        sent(&app.fake.requests()[5]),
        ["Q1", reply.as_str(), "Q2", reply.as_str(), "Q4"]
    );
    assert_eq!(
        app.stored(conversation)
            .await
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count(),
        3
    );
    // Nothing was deleted: 6 questions and 6 answers are stored.
    assert_eq!(app.count("messages").await, 12);
}

#[tokio::test]
async fn an_alternative_to_a_turn_of_another_conversation_is_refused() {
    let app = TestApp::start(FakeConfig::default()).await;
    let mine = conversation_of(&app.turn(None, "Mine").await);
    let other = conversation_of(&app.turn(None, "Other").await);
    let foreign_turn = app.stored(other).await.messages[0].turn_id;
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": mine, "text": "x",
                   "model": null, "alternative_to": foreign_turn}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let switched = app
        .post_json(
            "switch_branch",
            json!({"conversation_id": mine, "turn_id": foreign_turn}),
        )
        .await;
    assert_eq!(switched.status(), 404);
}
