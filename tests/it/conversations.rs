use fake_provider::{expected_text, FakeConfig};
use rill::server::db;

use crate::support::*;

#[tokio::test]
async fn the_page_renders_a_stored_conversation_on_the_server() {
    let app = TestApp::start(FakeConfig {
        tokens: 12,
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "What is Rill?").await;
    let conversation = conversation_of(&events);

    let page = app
        .http
        .get(format!("{}/c/{conversation}", app.base_url))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("What is Rill?"),
        "the user message is in the HTML"
    );
    assert!(
        html.contains("fäke 日本語 reply 🌍"),
        "the reply is in the HTML"
    );
    assert!(
        html.contains(&format!("href=\"/c/{conversation}\"")),
        "the sidebar lists it"
    );
    assert!(expected_text(12).contains("fäke 日本語 reply 🌍"));
}

#[tokio::test]
async fn replies_cut_short_by_a_crash_are_kept_and_marked_interrupted_at_start_up() {
    let app = TestApp::start(FakeConfig::default()).await;
    let events = app.turn(None, "Hi").await;
    let conversation = conversation_of(&events);
    // Simulate a crash mid-reply: a reply left `streaming` with some text.
    assert_eq!(app.crash_mid_reply("partial").await, 1);
    assert_eq!(
        last_reply(&app.pool, conversation).await,
        ("interrupted".to_owned(), "partial".to_owned())
    );
}

#[tokio::test]
async fn conversations_are_scoped_to_their_owner() {
    let app = TestApp::start(FakeConfig::default()).await;
    let conversation = conversation_of(&app.turn(None, "Mine").await);
    let stranger = db::Owner("someone-else".into());
    assert!(db::get_conversation(&app.state.db, &stranger, conversation)
        .await
        .expect("query")
        .is_none());
    assert!(db::list_conversations(&app.state.db, &stranger)
        .await
        .expect("query")
        .is_empty());
    assert!(
        !db::set_system_prompt(&app.state.db, &stranger, conversation, "x")
            .await
            .expect("query")
    );
    let owner = db::Owner("local".into());
    assert_eq!(
        db::list_conversations(&app.state.db, &owner)
            .await
            .expect("query")
            .len(),
        1
    );
}

#[tokio::test]
async fn unknown_conversations_are_404() {
    let app = TestApp::start(FakeConfig::default()).await;
    let response = app
        .post_json(
            "get_conversation",
            serde_json::json!({"id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(response.status(), 404);
}
