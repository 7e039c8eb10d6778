use fake_provider::{expected_text, FakeConfig};
use rill::server::config::ConversationSettings;
use rill::server::db;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use crate::sql::sql;
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

/// Every app start builds a router, and finding the pages' routes once held back every
/// resource in the process: a page being rendered meanwhile stopped mid-body for good (seen as
/// rare hung tests). Pages render to the end however many routers are built beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_to_the_end_while_other_apps_start() {
    let app = TestApp::start(FakeConfig {
        tokens: 12,
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "What is Rill?").await);
    /// Stops the router builds when the test ends, also by a panic (they would stall the pages
    /// of other tests in this binary without the fix).
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let stop_building = Done(done.clone());
    let starts = std::thread::spawn({
        let (state, done) = (app.state.clone(), done.clone());
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let options = leptos::config::LeptosOptions::builder()
                .output_name("rill")
                .build();
            let mut built = 0u32;
            runtime.block_on(async {
                while !done.load(Ordering::Relaxed) && built < 5_000 {
                    drop(rill::server::http::router(state.clone(), options.clone()));
                    built += 1;
                }
            });
            built
        }
    });
    let pages = [
        (format!("/c/{conversation}"), "fäke 日本語 reply 🌍"),
        ("/".into(), "What is Rill?"),
        ("/usage".into(), "spent"),
    ];
    for (path, shown) in pages.iter().cycle().take(30) {
        let page = tokio::time::timeout(Duration::from_secs(60), async {
            let response = app
                .http
                .get(format!("{}{path}", app.base_url))
                .send()
                .await?;
            response.text().await
        })
        .await
        .unwrap_or_else(|_| panic!("{path} never finished"))
        .expect("the page");
        assert!(page.contains(shown), "{path} shows what it loaded");
    }
    drop(stop_building);
    assert!(starts.join().expect("the starts") > 0);
}

#[tokio::test]
async fn replies_cut_short_by_a_crash_are_kept_and_marked_interrupted_at_start_up() {
    let app = TestApp::start(FakeConfig::default()).await;
    let events = app.turn(None, "Hi").await;
    let conversation = conversation_of(&events);
    // Simulate a crash mid-reply: a reply left `streaming` with some text.
    assert_eq!(app.crash_mid_reply("partial").await, 1);
    assert_eq!(
        last_reply(&app, conversation).await,
        ("interrupted".to_owned(), "partial".to_owned())
    );
}

#[tokio::test]
async fn conversations_are_scoped_to_their_owner() {
    let app = TestApp::start(FakeConfig::default()).await;
    let conversation = conversation_of(&app.turn(None, "Mine").await);
    let stranger = db::Owner("someone-else".into());
    assert!(
        db::get_conversation(&app.state.db, &stranger, conversation, None)
            .await
            .expect("query")
            .is_none()
    );
    assert!(db::list_conversations(&app.state.db, &stranger, None)
        .await
        .expect("query")
        .is_empty());
    assert!(
        db::set_system_prompt(&app.state.db, &stranger, conversation, "x")
            .await
            .expect("query")
            .is_none()
    );
    let owner = db::Owner("local".into());
    assert_eq!(
        db::list_conversations(&app.state.db, &owner, None)
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

#[tokio::test]
async fn a_deleted_conversation_is_found_nowhere_can_be_undone_at_once_and_is_purged_later() {
    let app = TestApp::start(FakeConfig {
        tokens: 4,
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Secret plans").await);
    let owner = db::Owner("local".into());
    let spent = || async {
        sql("SELECT COALESCE(SUM(cost_usd), 0.0) FROM messages")
            .scalar::<f64>(&app.state.db)
            .await
    };
    let cost = spent().await;
    assert!(cost > 0.0);

    let id = json!({"id": conversation});
    assert_eq!(
        app.post_json("delete_conversation", id.clone())
            .await
            .status(),
        200
    );
    assert!(db::list_conversations(&app.state.db, &owner, None)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        app.post_json("get_conversation", id.clone()).await.status(),
        404
    );
    let send_into = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "more", "model": null}),
        )
        .await;
    assert_eq!(
        send_into.status(),
        404,
        "a deleted conversation takes no turn"
    );
    let follow = app
        .post_json(
            "conversation_events",
            json!({"conversation_id": conversation, "from_turn": null}),
        )
        .await;
    assert_eq!(follow.status(), 404);
    assert_eq!(
        app.post_json(
            "rename_conversation",
            json!({"id": conversation, "title": "x"})
        )
        .await
        .status(),
        404
    );

    // Undo, right after.
    assert_eq!(
        app.post_json("restore_conversation", id.clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        db::list_conversations(&app.state.db, &owner, None)
            .await
            .expect("list")
            .len(),
        1
    );

    // Deleted again and purged: the text is gone, the spending stays.
    assert_eq!(
        app.post_json("delete_conversation", id.clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        db::purge_deleted(&app.state.db, db::now_ms() + 1)
            .await
            .expect("purge"),
        1
    );
    let texts: Vec<(String,)> = sql(
        "SELECT content FROM messages UNION ALL SELECT thinking FROM messages
         UNION ALL SELECT COALESCE(html, '') FROM messages UNION ALL SELECT title FROM conversations",
    )
    .fetch_all(&app.state.db)
    .await;
    assert!(texts.iter().all(|(t,)| t.is_empty()), "left: {texts:?}");
    assert_eq!(spent().await, cost);
    assert_eq!(
        app.post_json("restore_conversation", id).await.status(),
        404
    );
    assert_eq!(
        db::purge_deleted(&app.state.db, db::now_ms() + 1)
            .await
            .expect("purge"),
        0
    );
}

#[tokio::test]
async fn deleting_a_conversation_stops_its_running_reply() {
    let app = TestApp::start(FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..Default::default()
    })
    .await;
    let mut reader = EventReader::new(app.send(Uuid::new_v4(), None, "Talk").await);
    reader.started().await;
    // Text is flowing: the provider request is open.
    while let Some(envelope) = reader.next().await {
        if matches!(envelope.event, rill::model::TurnEvent::Delta { .. }) {
            break;
        }
    }
    let conversation = {
        let conversations = db::list_conversations(&app.state.db, &db::Owner("local".into()), None)
            .await
            .expect("list");
        conversations[0].id
    };
    let deleted = app
        .post_json("delete_conversation", json!({"id": conversation}))
        .await;
    assert_eq!(deleted.status(), 200);
    let events = reader.read_to_end().await;
    assert_eq!(
        finished(&events).status,
        rill::model::MessageStatus::Stopped
    );
    eventually("the provider request is cut", || async {
        app.fake.disconnects().len() == 1
    })
    .await;
}

#[tokio::test]
async fn renaming_keeps_the_conversation_in_its_place_and_refuses_an_empty_title() {
    let app = TestApp::start(FakeConfig::default()).await;
    let older = conversation_of(&app.turn(None, "Older").await);
    app.turn(None, "Newer").await;
    let renamed = app
        .post_json(
            "rename_conversation",
            json!({"id": older, "title": "  Trip\n plans "}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(renamed.json::<String>().await.expect("title"), "Trip plans");
    let titles: Vec<String> =
        db::list_conversations(&app.state.db, &db::Owner("local".into()), None)
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.title)
            .collect();
    assert_eq!(titles, ["Newer", "Trip plans"]);
    let empty = app
        .post_json("rename_conversation", json!({"id": older, "title": " \n"}))
        .await;
    assert_eq!(empty.status(), 400);
}

#[tokio::test]
async fn each_reply_records_the_system_prompt_revision_it_was_written_with() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            tokens: 3,
            ..Default::default()
        },
        conversations: ConversationSettings {
            default_system_prompt: "Be kind.".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // The server's default applies to a new conversation.
    let conversation = conversation_of(&app.turn(None, "First").await);
    let set = |text: &'static str| {
        app.post_json(
            "set_system_prompt",
            json!({"id": conversation, "system_prompt": text}),
        )
    };
    assert_eq!(
        set("Be terse.")
            .await
            .json::<u32>()
            .await
            .expect("revision"),
        2
    );
    assert_eq!(
        set("Be terse.")
            .await
            .json::<u32>()
            .await
            .expect("revision"),
        2,
        "the same text is no new revision"
    );
    app.turn(Some(conversation), "Second").await;

    let requests = app.fake.requests();
    assert_eq!(
        requests[0]["messages"][0],
        json!({"role": "system", "content": "Be kind."})
    );
    assert_eq!(
        requests[1]["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    let view = app.stored(conversation).await;
    let revisions: Vec<Option<u32>> = view
        .messages
        .iter()
        .map(|m| m.system_prompt_revision)
        .collect();
    assert_eq!(revisions, [None, Some(1), None, Some(2)]);
    let texts: Vec<(u32, &str)> = view
        .system_prompts
        .iter()
        .map(|p| (p.revision, p.text.as_str()))
        .collect();
    assert_eq!(texts, [(1, "Be kind."), (2, "Be terse.")]);
    assert_eq!(view.system_prompt_revision, 2);

    // A page may start a conversation with a prompt of its own, instead of the default.
    let events = EventReader::new(
        app.post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Ahoy", "model": null,
                   "system_prompt": "Talk like a pirate."}),
        )
        .await,
    )
    .read_to_end()
    .await;
    assert!(matches!(
        events[0].event,
        rill::model::TurnEvent::Started {
            system_prompt_revision: Some(1),
            ..
        }
    ));
    assert_eq!(
        app.fake.requests()[2]["messages"][0],
        json!({"role": "system", "content": "Talk like a pirate."})
    );
}

#[tokio::test]
async fn a_long_conversation_opens_at_its_newest_messages_and_pages_back() {
    let app = TestApp::start(FakeConfig {
        tokens: 3,
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Question 1").await);
    for i in 2..=30 {
        app.turn(Some(conversation), &format!("Question {i}")).await;
    }
    let open = |before: Option<u32>| {
        let app = &app;
        async move {
            let view: rill::model::ConversationView = app
                .post_json(
                    "get_conversation",
                    json!({"id": conversation, "before": before}),
                )
                .await
                .json()
                .await
                .expect("a conversation");
            view
        }
    };
    let newest = open(None).await;
    assert_eq!(newest.messages.len() as i64, db::WINDOW_MESSAGES);
    assert_eq!(
        newest.messages[0].content, "Question 11",
        "whole turns, newest"
    );
    let before = newest.older_before.expect("older messages exist");
    let older = open(Some(before)).await;
    assert_eq!(older.messages.len(), 20);
    assert_eq!(older.messages[0].content, "Question 1");
    assert_eq!(older.older_before, None, "nothing before the first");
    let questions: Vec<String> = older
        .messages
        .iter()
        .chain(&newest.messages)
        .filter(|m| m.role == rill::model::Role::User)
        .map(|m| m.content.clone())
        .collect();
    let expected: Vec<String> = (1..=30).map(|i| format!("Question {i}")).collect();
    assert_eq!(questions, expected, "the pages join without gap or overlap");
    // The window's totals and the older ones' add up to the whole conversation's.
    let output = |view: &rill::model::ConversationView| -> u64 {
        view.messages
            .iter()
            .filter_map(|m| m.outcome.usage)
            .map(|u| u64::from(u.output_tokens))
            .sum()
    };
    assert_eq!(newest.older_totals.output_tokens, output(&older));
    assert_eq!(older.older_totals.output_tokens, 0);
    assert_eq!(newest.older_totals.output_tokens + output(&newest), 30 * 3);
}

#[tokio::test]
async fn a_reply_built_to_blow_up_opens_in_bounded_size_and_is_rendered_once() {
    // 128 tables of 512 columns whose rows are padded to the header: 394 KB of text that once
    // rendered to 304 MB of HTML.
    let table = format!(
        "|{}\n|{}\n{}",
        "a|".repeat(512),
        "-|".repeat(512),
        "x\n".repeat(500)
    );
    let bomb = vec![table; 128].join("\n");
    let script: Vec<String> = bomb
        .as_bytes()
        .chunks(4096)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let app = TestApp::start(FakeConfig {
        tokens: script.len(),
        script: Some(script),
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Make me tables").await);
    let opened = std::time::Instant::now();
    let response = app
        .post_json("get_conversation", json!({"id": conversation}))
        .await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("body");
    println!(
        "a 394 KB table bomb opens as {} bytes in {:?}",
        body.len(),
        opened.elapsed()
    );
    assert!(body.len() < 2 * 1024 * 1024, "{} bytes", body.len());
    let view: rill::model::ConversationView = serde_json::from_slice(&body).expect("json");
    assert!(view.messages[1].html.contains("unrendered-note"));
    // Rendered when the reply ended, and kept: the stored rendering is what was sent.
    let (stored, version): (String, i64) =
        sql("SELECT html, html_version FROM messages WHERE role = 'assistant'")
            .fetch_one(&app.state.db)
            .await;
    assert_eq!(stored, view.messages[1].html);
    assert_eq!(version, rill::server::render::RENDERER_VERSION);
}

#[tokio::test]
async fn the_conversation_list_comes_a_page_at_a_time() {
    let app = TestApp::start(FakeConfig {
        tokens: 1,
        ..Default::default()
    })
    .await;
    let page = rill::model::CONVERSATIONS_PAGE;
    for i in 0..page + 5 {
        app.turn(None, &format!("Conversation {i}")).await;
    }
    let list = |after: serde_json::Value| {
        let app = &app;
        async move {
            let listed: Vec<rill::model::ConversationSummary> = app
                .post_json("list_conversations", json!({"after": after}))
                .await
                .json()
                .await
                .expect("a list");
            listed
        }
    };
    let first = list(json!(null)).await;
    assert_eq!(first.len(), page);
    let last = first.last().expect("a last one");
    let rest = list(json!({"updated_at": last.updated_at, "id": last.id})).await;
    assert_eq!(rest.len(), 5);
    let mut all: Vec<Uuid> = first.iter().chain(&rest).map(|c| c.id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), page + 5, "no conversation twice, none missing");
    assert!(
        rest.iter().any(|c| c.title == "Conversation 0"),
        "the oldest come last"
    );
}

#[tokio::test]
async fn the_conversation_list_is_read_again_down_to_where_it_ended() {
    let app = TestApp::start(FakeConfig {
        tokens: 1,
        ..Default::default()
    })
    .await;
    let page = rill::model::CONVERSATIONS_PAGE;
    for i in 0..page + 5 {
        app.turn(None, &format!("Conversation {i}")).await;
    }
    let list = |body: serde_json::Value| {
        let app = &app;
        async move {
            let listed: Vec<rill::model::ConversationSummary> = app
                .post_json("list_conversations", body)
                .await
                .json()
                .await
                .expect("a list");
            listed
        }
    };
    let first = list(json!({})).await;
    let tenth = &first[9];
    let through = json!({"through": {"updated_at": tenth.updated_at, "id": tenth.id}});
    let again = list(through.clone()).await;
    assert_eq!(
        again.iter().map(|c| c.id).collect::<Vec<_>>(),
        first[..10].iter().map(|c| c.id).collect::<Vec<_>>(),
        "the same ten, down to the tenth and no further"
    );

    // A new conversation comes on top, and the list still ends where it did.
    app.turn(None, "A newer one").await;
    let again = list(through.clone()).await;
    assert_eq!(again.len(), 11);
    assert_eq!(again[0].title, "A newer one");
    assert_eq!(again[10].id, tenth.id);
    // One deleted goes, and none from beyond the end takes its place.
    app.post_json("delete_conversation", json!({"id": first[3].id}))
        .await;
    let again = list(through).await;
    assert_eq!(again.len(), 10);
    assert!(again.iter().all(|c| c.id != first[3].id));
    assert_eq!(again[9].id, tenth.id);
}
