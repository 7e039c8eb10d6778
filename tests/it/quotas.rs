//! What one person may write: changes per minute through the API (not only sends), system
//! prompt revisions kept only while replies use them or they are recent, and a storage quota
//! refused in words before anything is stored — counted by the database's triggers, which must
//! agree with the data after every kind of change.

use fake_provider::FakeConfig;
use rill::server::config::LimitSettings;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// What `storage_used` should hold for `owner`, counted from the data itself.
async fn recounted(app: &TestApp, owner: &str) -> i64 {
    sql("SELECT CAST(COALESCE(SUM(octet_length(c.title)
           + COALESCE((SELECT SUM(CASE WHEN m.status = 'streaming' THEN 0
                                       ELSE octet_length(m.content) + octet_length(m.thinking) END)
                         FROM messages m WHERE m.conversation_id = c.id), 0)
           + COALESCE((SELECT SUM(octet_length(p.text))
                         FROM system_prompts p WHERE p.conversation_id = c.id), 0)), 0) AS BIGINT)
           FROM conversations c WHERE c.owner = $1 AND c.deleted_at IS NULL")
    .bind(owner)
    .scalar(&app.state.db)
    .await
}

async fn counted(app: &TestApp, owner: &str) -> i64 {
    sql("SELECT COALESCE(MAX(bytes), 0) FROM storage_used WHERE owner = $1")
        .bind(owner)
        .scalar(&app.state.db)
        .await
}

#[tokio::test]
async fn the_storage_count_follows_every_kind_of_change() {
    let app = TestApp::start(FakeConfig {
        tokens: 20,
        ..FakeConfig::default()
    })
    .await;
    let first = conversation_of(&app.turn(None, "Hello there").await);
    app.turn(Some(first), "And again").await;
    let check = |when: &'static str| {
        let app = &app;
        async move {
            assert_eq!(
                counted(app, "local").await,
                recounted(app, "local").await,
                "{when}"
            );
        }
    };
    check("after two turns").await;
    app.post_json(
        "rename_conversation",
        json!({"id": first, "title": "Renamed"}),
    )
    .await;
    app.post_json(
        "set_system_prompt",
        json!({"id": first, "system_prompt": "Be brief."}),
    )
    .await;
    check("after a rename and a system prompt").await;
    // A stopped reply, continued: counted as it ends, not while it is written.
    let second = conversation_of(&app.turn(None, "Another conversation").await);
    check("after a second conversation").await;
    app.post_json("delete_conversation", json!({"id": second}))
        .await;
    check("after a delete").await;
    app.post_json("restore_conversation", json!({"id": second}))
        .await;
    check("after an undo").await;
    app.post_json("delete_conversation", json!({"id": second}))
        .await;
    rill::server::db::purge_deleted(&app.state.db, i64::MAX)
        .await
        .expect("purge");
    check("after a purge").await;
    assert!(counted(&app, "local").await > 0);
}

#[tokio::test]
async fn past_the_storage_quota_a_send_is_refused_in_words_and_deleting_makes_room() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            storage_quota_bytes: Some(20_000),
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let long = "word ".repeat(1_000);
    let mut conversations = Vec::new();
    let refused = loop {
        let response = app
            .post_json(
                "send_message",
                json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": long}),
            )
            .await;
        if response.status() != 200 {
            break response;
        }
        conversations.push(conversation_of(
            &EventReader::new(response).read_to_end().await,
        ));
        assert!(conversations.len() < 10, "the quota never refused");
    };
    assert_eq!(refused.status(), 507);
    let words = refused.text().await.expect("body");
    assert!(
        words.contains("of the 19.5 KB this server keeps"),
        "{words}"
    );
    let stored = app.count("conversations").await;
    assert_eq!(
        stored as usize,
        conversations.len(),
        "nothing of the refused send is stored"
    );
    // A system prompt past the quota is refused too; a short one still fits once room is made.
    let prompt = app
        .post_json(
            "set_system_prompt",
            json!({"id": conversations[0], "system_prompt": "x".repeat(10_000)}),
        )
        .await;
    assert_eq!(prompt.status(), 507);
    app.post_json("delete_conversation", json!({"id": conversations[0]}))
        .await;
    let again = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": long}),
        )
        .await;
    assert_eq!(again.status(), 200, "deleting made room");
    EventReader::new(again).read_to_end().await;
}

#[tokio::test]
async fn a_flood_of_system_prompt_changes_is_slowed_and_keeps_only_recent_revisions() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            writes_per_minute: 60,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Hello").await);
    let big = |i: usize| format!("{i} {}", "be terse ".repeat(1_700));
    let mut accepted: u64 = 0;
    let mut refused = None;
    let flood = std::time::Instant::now();
    for i in 0..200 {
        let response = app
            .post_json(
                "set_system_prompt",
                json!({"id": conversation, "system_prompt": big(i)}),
            )
            .await;
        if response.status() == 200 {
            accepted += 1;
        } else {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the flood is slowed");
    assert_eq!(refused.status(), 429);
    assert!(refused
        .text()
        .await
        .expect("body")
        .contains("too many changes in a short time"));
    // Sixty changes a minute (the send that began the conversation has a limit of its own): a
    // burst of sixty, then one more for each second the flood took (the allowance refills
    // evenly over the minute).
    let refilled = flood.elapsed().as_secs() + 1;
    assert!(
        (60..=60 + refilled).contains(&accepted),
        "{accepted} accepted in {:?}",
        flood.elapsed()
    );
    // Of 60 revisions, the latest ten are kept (the reply was written with none).
    let kept = app.count("system_prompts").await;
    assert!(kept <= 11, "{kept} revisions kept");
    let view: Value = app
        .post_json("get_conversation", json!({"id": conversation}))
        .await
        .json()
        .await
        .expect("view");
    let size = serde_json::to_vec(&view).expect("json").len();
    println!("60 system prompt changes of 15 KB: {kept} revisions kept, the conversation is {size} bytes");
    assert!(size < 200_000, "{size}");
    // Reading is not a change: the page still loads.
    let listed = app.post_json("list_conversations", json!({})).await;
    assert_eq!(listed.status(), 200);
}
