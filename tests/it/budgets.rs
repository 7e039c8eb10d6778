//! Budgets as a ledger: replies sent at once cannot together pass a budget (each reserves its
//! worst case before its provider request), a run is billed to the month it ran in (a Continue
//! in a new month counts there), a model with no price is refused to people with a budget, and
//! the site's monthly cap holds for everyone together.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fake_provider::FakeConfig;
use llm::{ChatRequest, EventStream, Provider, ProviderEvent};
use rill::model::{MessageStatus, Price};
use rill::server::config::TurnSettings;
use rill::server::pricing::PriceEntry;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// 2026-01-31T23:59:00Z.
const LAST_MINUTE_OF_JANUARY: i64 = 1_769_903_940_000;
/// 2026-02-01T00:00:30Z.
const FIRST_MINUTE_OF_FEBRUARY: i64 = 1_769_904_030_000;

/// $100 per million input tokens, $2,000 per million output: a 100-token reply costs $0.20.
fn dear() -> (String, PriceEntry) {
    (
        "fake/fake-model".to_owned(),
        Price {
            input: 100.0,
            cached_input: None,
            cache_write: None,
            output: 2_000.0,
        }
        .into(),
    )
}

/// Accounts mode, the fake answering 100 tokens 5 ms apart at [`dear`] prices, replies capped at
/// 100 tokens.
async fn dear_app(clock: Option<Arc<TestClock>>, fake: FakeConfig) -> TestApp {
    TestApp::with(Setup {
        access: accounts_mode(),
        fake,
        turns: Some(TurnSettings {
            max_output_tokens: 100,
            ..test_turns()
        }),
        prices: vec![dear()],
        clock,
        ..Setup::default()
    })
    .await
}

fn hundred_tokens() -> FakeConfig {
    FakeConfig {
        tokens: 100,
        token_delay_ms: 5,
        ..FakeConfig::default()
    }
}

async fn set_budget(app: &TestApp, user_id: &str, budget: f64) {
    sql("UPDATE users SET monthly_budget_usd = $1 WHERE id = $2")
        .bind(budget)
        .bind(user_id)
        .execute(&app.state.db)
        .await;
}

/// (month, state, cost or reservation) of every run of the owner, in order.
async fn ledger(app: &TestApp, owner: &str) -> Vec<(String, String, f64)> {
    sql(
        "SELECT month, state, CASE state WHEN 'reserved' THEN reserved_usd ELSE cost_usd END
           FROM spending WHERE owner = $1 ORDER BY id",
    )
    .bind(owner)
    .fetch_all(&app.state.db)
    .await
}

fn outcome(events: &[rill::model::TurnEnvelope]) -> rill::model::Outcome {
    finished(events).clone()
}

/// A refusal: a failed reply whose words say why.
fn assert_refused(outcome: &rill::model::Outcome, because: &str) {
    assert_eq!(outcome.status, MessageStatus::Failed, "{outcome:?}");
    let words = outcome.error.as_deref().unwrap_or("");
    assert!(words.contains(because), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_sent_at_once_stay_within_the_budget() {
    let app = dear_app(None, hundred_tokens()).await;
    let id = app.add_user("bob", false).await;
    set_budget(&app, &id, 0.50).await;
    let bob = app.signed_in("bob").await;
    // Eight at once, each a new conversation: each could cost $0.20.
    let questions: Vec<String> = (0..8).map(|i| format!("Question {i}")).collect();
    let sends = questions.iter().map(|q| bob.turn(None, q));
    let outcomes: Vec<_> = futures::future::join_all(sends)
        .await
        .iter()
        .map(|events| outcome(events))
        .collect();
    let completed = outcomes
        .iter()
        .filter(|o| o.status == MessageStatus::Complete)
        .count();
    let refused: Vec<&String> = outcomes
        .iter()
        .filter(|o| o.status == MessageStatus::Failed)
        .filter_map(|o| o.error.as_ref())
        .collect();
    assert_eq!(completed + refused.len(), 8);
    assert!(
        refused.iter().all(|e| e.contains("budget of $0.50")),
        "{refused:?}"
    );
    let spent: f64 = outcomes.iter().filter_map(|o| o.cost_usd).sum();
    let runs = ledger(&app, &id).await;
    let reservation = runs.iter().map(|(_, _, usd)| *usd).fold(0.0, f64::max);
    let ledger_total: f64 = runs.iter().map(|(_, _, usd)| usd).sum();
    println!(
        "8 sends at once into a $0.50 budget: {completed} answered, {} refused, ${spent:.4} spent \
         (ledger ${ledger_total:.4}; a reservation is at most ${reservation:.4})",
        refused.len()
    );
    assert!(completed >= 1, "the budget lets the first ones through");
    assert!(
        runs.iter().all(|(_, state, _)| state == "settled"),
        "{runs:?}"
    );
    assert!(
        (ledger_total - spent).abs() < 1e-9,
        "{ledger_total} vs {spent}"
    );
    assert!(
        spent <= 0.50 + reservation,
        "spent ${spent} against a $0.50 budget"
    );
    // And no provider request was made for a refused one.
    assert_eq!(app.fake.calls().len(), completed);
}

#[tokio::test]
async fn a_run_is_billed_to_the_month_it_ran_in() {
    let clock = TestClock::at(LAST_MINUTE_OF_JANUARY);
    let app = dear_app(
        Some(clock.clone()),
        FakeConfig {
            tokens: 100,
            token_delay_ms: 20,
            ..FakeConfig::default()
        },
    )
    .await;
    let id = app.add_user("jan", false).await;
    set_budget(&app, &id, 0.30).await;
    let jan = app.signed_in("jan").await;
    // January: a reply stopped after a few tokens…
    let turn_id = Uuid::new_v4();
    let response = jan.send(turn_id, None, "Tell me a long story").await;
    assert_eq!(response.status(), 200);
    let mut reader = EventReader::new(response);
    let conversation = reader.started().await;
    for _ in 0..5 {
        reader.next().await;
    }
    assert_eq!(
        jan.post("stop_turn", json!({"turn_id": turn_id}))
            .await
            .status(),
        200
    );
    let stopped = reader.read_to_end().await;
    assert_eq!(outcome(&stopped).status, MessageStatus::Stopped);
    // …and a whole one ($0.20): January is nearly spent, so a third is refused.
    assert_eq!(
        outcome(&jan.turn(None, "Another").await).status,
        MessageStatus::Complete
    );
    let refused = outcome(&jan.turn(None, "One more").await);
    assert_refused(&refused, "budget");
    // February: the stopped reply is continued, and that run is February's.
    clock.set(FIRST_MINUTE_OF_FEBRUARY);
    let continued = EventReader::new(
        jan.post("continue_reply", json!({"turn_id": turn_id, "from_run": 1}))
            .await,
    )
    .read_to_end()
    .await;
    assert_eq!(outcome(&continued).status, MessageStatus::Complete);
    let runs = ledger(&app, &id).await;
    let months: Vec<&str> = runs.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(months, ["2026-01", "2026-01", "2026-02"], "{runs:?}");
    let february: f64 = runs
        .iter()
        .filter(|(m, _, _)| m == "2026-02")
        .map(|(_, _, usd)| usd)
        .sum();
    assert!(february > 0.0);
    let report: Value = jan
        .post("monthly_usage", json!({"user_id": null}))
        .await
        .json()
        .await
        .expect("report");
    assert_eq!(report["month"], "2026-02");
    let shown = report["month_cost_usd"].as_f64().expect("cost");
    assert!((shown - february).abs() < 1e-9, "{shown} vs {february}");
    // The reply itself shows both runs together.
    let view: Value = jan
        .post("get_conversation", json!({"id": conversation}))
        .await
        .json()
        .await
        .expect("conversation");
    let reply_cost = view["messages"][1]["outcome"]["cost_usd"]
        .as_f64()
        .expect("cost");
    let both: f64 = runs[0].2 + runs[2].2;
    assert!((reply_cost - both).abs() < 1e-9, "{reply_cost} vs {both}");
}

/// A model no price table knows, counting the requests it gets.
struct Unpriced(Arc<AtomicUsize>);

impl Provider for Unpriced {
    fn stream_chat(&self, _request: ChatRequest) -> EventStream {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(futures::stream::iter([Ok(ProviderEvent::TextDelta(
            "Hello.".into(),
        ))]))
    }
}

#[tokio::test]
async fn a_model_with_no_price_is_refused_to_people_with_a_budget() {
    let requests = Arc::new(AtomicUsize::new(0));
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        extra_models: vec![test_model(
            "elsewhere/unpriced",
            Arc::new(Unpriced(requests.clone())),
        )],
        ..Setup::default()
    })
    .await;
    let id = app.add_user("una", false).await;
    let una = app.signed_in("una").await;
    let free = una_turn(&una, "elsewhere/unpriced").await;
    assert_eq!(
        free.status,
        MessageStatus::Complete,
        "no budget: anything goes"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    set_budget(&app, &id, 5.0).await;
    let refused = una_turn(&una, "elsewhere/unpriced").await;
    assert_refused(&refused, "has no price");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "refused before any request"
    );
}

async fn una_turn(person: &Person, model: &str) -> rill::model::Outcome {
    let response = person
        .post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Hi", "model": model}),
        )
        .await;
    assert_eq!(response.status(), 200);
    outcome(&EventReader::new(response).read_to_end().await)
}

#[tokio::test]
async fn the_sites_monthly_cap_holds_for_everyone_together() {
    let app = dear_app(None, hundred_tokens()).await;
    app.add_user("root", true).await;
    app.add_user("ann", false).await;
    app.add_user("ben", false).await;
    let root = app.signed_in("root").await;
    let set = root
        .post(
            "set_site_settings",
            json!({"settings": {"open_signup": false, "default_budget_usd": null, "monthly_cap_usd": 0.30}}),
        )
        .await;
    assert_eq!(set.status(), 200);
    // Open sign-up without a budget for newcomers is refused in words.
    let open = root
        .post(
            "set_site_settings",
            json!({"settings": {"open_signup": true, "default_budget_usd": null}}),
        )
        .await;
    assert_eq!(open.status(), 400);
    assert!(open
        .text()
        .await
        .expect("body")
        .contains("needs a monthly budget"));
    let ann = app.signed_in("ann").await;
    let ben = app.signed_in("ben").await;
    assert_eq!(
        outcome(&ann.turn(None, "Hello").await).status,
        MessageStatus::Complete
    );
    // Ben has no budget of his own, but the site has spent $0.20 of $0.30.
    let refused = outcome(&ben.turn(None, "Hello").await);
    assert_refused(&refused, "spending limit its admins set");
    let overview: Value = root
        .post("admin_overview", json!({}))
        .await
        .json()
        .await
        .expect("overview");
    let spent = overview["site_month_cost_usd"].as_f64().expect("spent");
    assert!(spent > 0.19 && spent <= 0.30, "{spent}");
    // Settled ledger rows only: nothing is left reserved.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let open: i64 = sql("SELECT COUNT(*) FROM spending WHERE state = 'reserved'")
        .scalar(&app.state.db)
        .await;
    assert_eq!(open, 0);
}
