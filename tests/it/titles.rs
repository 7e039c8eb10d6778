//! Titles from the first exchange: asked of the conversation's model after the first reply,
//! counted against the budget as a title, told to the pages following the conversation; the
//! first words stay when the provider fails or the budget is spent; a rename always wins.

use std::time::Duration;

use fake_provider::FakeConfig;
use rill::model::accounts::UsageReport;
use rill::model::{ConversationSummary, StreamLine};
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::{accounts_mode, conversation_of, eventually, EventReader, Setup, TestApp};

async fn titled(fake: FakeConfig) -> TestApp {
    TestApp::with(Setup {
        fake,
        model_titles: true,
        ..Setup::default()
    })
    .await
}

async fn title_of(app: &TestApp, conversation: Uuid) -> (String, String) {
    sql("SELECT title, title_source FROM conversations WHERE id = $1")
        .bind(conversation)
        .fetch_one(&app.state.db)
        .await
}

/// Waits until the conversation's title run is settled in the ledger (the title task is done
/// with the provider); returns its status.
async fn title_run_settled(app: &TestApp) -> String {
    eventually("the title's run is settled", || async {
        sql("SELECT COUNT(*) FROM spending WHERE purpose = 'title' AND state = 'settled'")
            .scalar::<i64>(&app.state.db)
            .await
            > 0
    })
    .await;
    sql("SELECT status FROM spending WHERE purpose = 'title'")
        .scalar(&app.state.db)
        .await
}

#[tokio::test]
async fn the_first_reply_names_the_conversation_once_with_a_small_request_billed_as_a_title() {
    let app = titled(FakeConfig {
        tokens: 4,
        title: Some("Where rivers end".into()),
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Where do rivers go?").await);
    eventually("the model's title", || async {
        title_of(&app, conversation).await.0 == "Where rivers end"
    })
    .await;
    assert_eq!(title_of(&app, conversation).await.1, "model");
    let asked = app.fake.title_requests();
    assert_eq!(asked.len(), 1);
    let request = asked[0].to_string();
    assert!(
        request.contains("Where do rivers go?"),
        "the question: {request}"
    );
    assert!(request.contains("Hello wörld"), "the reply: {request}");
    assert_eq!(asked[0]["max_tokens"], 24, "a small cap");
    assert_eq!(
        app.fake.requests().len(),
        1,
        "the chat's own requests are the reply's"
    );

    // Billed like a reply, as a title.
    assert_eq!(title_run_settled(&app).await, "complete");
    let cost: f64 = sql("SELECT cost_usd FROM spending WHERE purpose = 'title'")
        .scalar(&app.state.db)
        .await;
    assert!(cost > 0.0);
    let report: UsageReport = app
        .post_json("monthly_usage", json!({"user_id": null}))
        .await
        .json()
        .await
        .expect("report");
    let titles: Vec<_> = report.rows.iter().filter(|r| r.titles).collect();
    assert_eq!(titles.len(), 1, "{:?}", report.rows);
    assert_eq!(titles[0].replies, 1);
    assert!(
        (report.month_cost_usd - report.rows.iter().map(|r| r.cost_usd).sum::<f64>()).abs() < 1e-12
    );

    // The list has it; later turns ask nothing more.
    let listed: Vec<ConversationSummary> = app
        .post_json("list_conversations", json!({}))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed[0].title, "Where rivers end");
    app.turn(Some(conversation), "And lakes?").await;
    let second = conversation_of(&app.turn(None, "A second conversation").await);
    eventually("the second title", || async {
        title_of(&app, second).await.1 == "model"
    })
    .await;
    assert_eq!(app.fake.title_requests().len(), 2, "one per conversation");
}

#[tokio::test]
async fn a_page_following_the_conversation_hears_its_new_title() {
    let app = titled(FakeConfig {
        tokens: 2,
        title: Some("Named by the model".into()),
        title_delay_ms: 300,
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "Name this").await;
    let conversation = conversation_of(&events);
    let mut page = app.watch(conversation, None).await;
    loop {
        match page.next_line().await.expect("the stream stays open") {
            StreamLine::Title { title } => {
                assert_eq!(title, "Named by the model");
                break;
            }
            StreamLine::Turn { .. } | StreamLine::Heartbeat | StreamLine::Event(_) => {}
        }
    }
    // A page that opens later is told the title as its stream opens.
    let response = app
        .post_json(
            "conversation_events",
            json!({"conversation_id": conversation, "from_turn": null}),
        )
        .await;
    match EventReader::new(response).next_line().await {
        Some(StreamLine::Title { title }) => assert_eq!(title, "Named by the model"),
        other => panic!("expected the title, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_title_request_leaves_the_first_words_and_the_reply_alone() {
    let app = titled(FakeConfig {
        tokens: 3,
        title_fail_status: Some(500),
        ..Default::default()
    })
    .await;
    let events = app.turn(None, "What is the tallest tree?").await;
    let conversation = conversation_of(&events);
    assert_eq!(title_run_settled(&app).await, "failed");
    assert_eq!(
        title_of(&app, conversation).await,
        ("What is the tallest tree?".to_owned(), "words".to_owned())
    );
    assert_eq!(
        app.stored(conversation).await.messages[1].outcome.status,
        rill::model::MessageStatus::Complete
    );
}

#[tokio::test]
async fn the_built_in_model_writes_the_title_when_the_provider_fails() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            tokens: 3,
            title_fail_status: Some(500),
            ..Default::default()
        },
        model_titles: true,
        local: true,
        fake_beside_local: true,
        ..Setup::default()
    })
    .await;
    let question = "Which planet has the most moons?";
    let conversation = conversation_of(&app.turn_on("fake/fake-model", None, question).await);
    // The provider's run fails; the local model's (run 2) is asked next and settled.
    eventually("the local model's title run is settled", || async {
        sql("SELECT COUNT(*) FROM spending WHERE purpose = 'title' AND state = 'settled'")
            .scalar::<i64>(&app.state.db)
            .await
            == 2
    })
    .await;
    let runs: Vec<(String, String)> =
        sql("SELECT model, status FROM spending WHERE purpose = 'title' ORDER BY run")
            .fetch_all(&app.state.db)
            .await;
    assert_eq!(
        runs,
        [
            ("fake/fake-model".to_owned(), "failed".to_owned()),
            ("local/smollm2-135m".to_owned(), "complete".to_owned())
        ]
    );
    let (title, source) = title_of(&app, conversation).await;
    assert_eq!(source, "model", "{title:?}");
    assert!(!title.is_empty() && title != question, "{title:?}");
}

#[tokio::test]
async fn a_budget_spent_by_the_reply_leaves_the_first_words_and_asks_nothing() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            tokens: 6,
            token_delay_ms: 50,
            title: Some("Never asked".into()),
            ..Default::default()
        },
        access: accounts_mode(),
        model_titles: true,
        ..Setup::default()
    })
    .await;
    let id = app.add_user("bea", false).await;
    let bea = app.signed_in("bea").await;
    let mut reply = EventReader::new(bea.send(Uuid::new_v4(), None, "Spend it all").await);
    let conversation = reply.started().await;
    // The reply was admitted; while it is written the month's budget runs out.
    sql("UPDATE users SET monthly_budget_usd = 0.000001 WHERE id = $1")
        .bind(&id)
        .execute(&app.state.db)
        .await;
    while reply.next().await.is_some() {}
    // Its title would be reserved right after the reply is stored: give the task its moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.fake.title_requests().is_empty(),
        "no request over the budget"
    );
    assert_eq!(
        title_of(&app, conversation).await,
        ("Spend it all".to_owned(), "words".to_owned())
    );
    let titles: i64 = sql("SELECT COUNT(*) FROM spending WHERE purpose = 'title'")
        .scalar(&app.state.db)
        .await;
    assert_eq!(titles, 0, "nothing held or spent for it");
}

#[tokio::test]
async fn a_rename_made_while_the_title_is_asked_is_never_overwritten() {
    let app = titled(FakeConfig {
        tokens: 2,
        title: Some("The model's idea".into()),
        title_delay_ms: 400,
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Plans for Sunday").await);
    eventually("the title is being asked", || async {
        !app.fake.title_requests().is_empty()
    })
    .await;
    let renamed = app
        .post_json(
            "rename_conversation",
            json!({"id": conversation, "title": "My own name"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    // The late title arrives and is paid for, but the person's name stays.
    assert_eq!(title_run_settled(&app).await, "complete");
    assert_eq!(
        title_of(&app, conversation).await,
        ("My own name".to_owned(), "person".to_owned())
    );
}
