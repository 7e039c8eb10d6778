//! The chat core on Postgres (issue 28): a whole conversation driven through the real endpoints
//! of an app storing on a Postgres database of its own (send and stream, Stop, Continue,
//! Regenerate, Edit, a branch switch, a reload, the spending ledger), expecting what SQLite
//! gives.

use fake_provider::{expected_text, FakeConfig};
use rill::model::{ConversationView, MessageStatus, Role, TurnEvent};
use rill::server::db::{self, Engine};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

fn texts(view: &ConversationView) -> Vec<String> {
    view.messages.iter().map(|m| m.content.clone()).collect()
}

async fn alternative(
    app: &TestApp,
    conversation: Uuid,
    text: &str,
    to: Uuid,
) -> Vec<rill::model::TurnEnvelope> {
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": text,
                   "model": null, "alternative_to": to}),
        )
        .await;
    assert_eq!(response.status(), 200);
    EventReader::new(response).read_to_end().await
}

#[tokio::test]
async fn a_whole_conversation_runs_on_postgres_through_the_endpoints() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            tokens: 300,
            token_delay_ms: 5,
            ..FakeConfig::default()
        },
        postgres: true,
        ..Setup::default()
    })
    .await;
    assert_eq!(app.state.db.engine(), Engine::Postgres);

    // A reply streamed, then stopped part way.
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(app.send(turn_id, None, "Tell a story").await);
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&rill::model::TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
        .count()
        < 5
    {
        events.push(reader.next().await.expect("streaming"));
    }
    // A second tab follows the running reply from the database's record of it.
    let conversation = conversation_of(&events);
    let streaming = app.stored(conversation).await;
    assert_eq!(
        streaming.messages[1].outcome.status,
        MessageStatus::Streaming
    );
    assert_eq!(app.stop(turn_id).await.status(), 200);
    events.extend(reader.read_to_end().await);
    assert_eq!(finished(&events).status, MessageStatus::Stopped);
    let shown = text_of(&events);
    let view = app.stored(conversation).await;
    assert_eq!(texts(&view), ["Tell a story", shown.as_str()]);
    assert_eq!(view.messages[1].outcome.status, MessageStatus::Stopped);

    // Continue: the same reply goes on from its text, as its second run.
    app.fake.set_config(FakeConfig {
        tokens: 6,
        ..FakeConfig::default()
    });
    let events = EventReader::new(app.continue_reply(turn_id, 1).await)
        .read_to_end()
        .await;
    let whole = format!("{shown}{}", expected_text(6));
    assert_eq!(text_of(&events), whole);
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    let view = app.stored(conversation).await;
    assert_eq!(texts(&view), ["Tell a story", whole.as_str()]);
    assert_eq!(view.messages[1].run, 2);
    let continued = finished(&events).clone();

    // A second turn, then Regenerate it and Edit the first question: a tree of turns.
    app.fake.set_config(FakeConfig {
        tokens: 2,
        ..FakeConfig::default()
    });
    let reply = expected_text(2);
    let second = app.turn(Some(conversation), "Q2").await;
    assert_eq!(finished(&second).status, MessageStatus::Complete);
    let view = app.stored(conversation).await;
    let (q1, q2) = (view.messages[0].turn_id, view.messages[2].turn_id);
    alternative(&app, conversation, "Q2", q2).await;
    let view = app.stored(conversation).await;
    assert_eq!(
        texts(&view),
        ["Tell a story", whole.as_str(), "Q2", reply.as_str()]
    );
    let q2b = view.messages[2].turn_id;
    assert_eq!(view.messages[2].alternatives, [q2, q2b]);
    alternative(&app, conversation, "Edited", q1).await;
    let view = app.stored(conversation).await;
    assert_eq!(texts(&view), ["Edited", reply.as_str()]);
    assert_eq!(view.messages[0].alternatives.len(), 2);
    // The next question follows the edited branch, and its history is that branch's.
    app.turn(Some(conversation), "Q3").await;
    let requests = app.fake.requests();
    let sent: Vec<&str> = requests.last().expect("a request")["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(sent, ["Edited", reply.as_str(), "Q3"]);

    // Back to the first branch: it opens at its newest end, and stays chosen.
    let switched = app
        .post_json(
            "switch_branch",
            json!({"conversation_id": conversation, "turn_id": q1}),
        )
        .await;
    assert_eq!(switched.status(), 200);
    let view: ConversationView = switched.json().await.expect("view");
    assert_eq!(
        texts(&view),
        ["Tell a story", whole.as_str(), "Q2", reply.as_str()]
    );
    assert_eq!(texts(&app.stored(conversation).await), texts(&view));
    let stored = app.stored(conversation).await;
    assert_eq!(stored.messages[1].outcome.usage, continued.usage);
    assert_eq!(
        stored
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count(),
        2
    );

    // The list, a rename, the system prompt, the spending ledger.
    let list = db::list_conversations(&app.state.db, &db::Owner("local".into()), None)
        .await
        .expect("the list");
    assert_eq!(list.len(), 1);
    assert!(db::set_system_prompt(
        &app.state.db,
        &db::Owner("local".into()),
        conversation,
        "Be brief"
    )
    .await
    .expect("a prompt")
    .is_some());
    let runs = db::usage::open_runs(&app.state.db, None)
        .await
        .expect("runs");
    assert!(runs.is_empty(), "every run settled: {runs:?}");
    let month = rill::server::clock::month_of(db::now_ms());
    let spent = db::usage::month_spent(&app.state.db, &db::Owner("local".into()), &month)
        .await
        .expect("spent");
    assert!(spent > 0.0, "the runs were charged: {spent}");
}
