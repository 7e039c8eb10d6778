//! Groups and their budgets (issue 29): admins make and change groups (nobody else can), a
//! group's budget shared by its members refuses a turn before any provider request with words
//! that say which budget and what is left — members sending at once included — warnings at 80
//! and 90 % reach the composer's status, the usage page and the webhook (once per threshold,
//! retried after a failure), a group's models hold on every path, and group totals reach the
//! usage report and its CSV; a group's month is what was spent in it, whoever joins or leaves
//! later. Runs on either engine (`RILL_TEST_ENGINE=postgres`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_provider::FakeConfig;
use rill::model::{MessageStatus, Price};
use rill::server::config::{LimitSettings, TurnSettings};
use rill::server::pricing::PriceEntry;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

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

/// Accounts mode at [`dear`] prices, the fake answering `tokens` tokens, replies capped there.
async fn dear_app(tokens: u32, limits: Option<LimitSettings>) -> TestApp {
    TestApp::with(Setup {
        access: accounts_mode(),
        fake: FakeConfig {
            tokens: usize::try_from(tokens).expect("tokens"),
            token_delay_ms: 2,
            ..FakeConfig::default()
        },
        turns: Some(TurnSettings {
            max_output_tokens: tokens,
            ..test_turns()
        }),
        prices: vec![dear()],
        limits,
        ..Setup::default()
    })
    .await
}

/// Makes a group through the admin page's function; returns its id.
async fn make_group(admin: &Person, name: &str, budget: Option<f64>) -> String {
    let (status, id) = admin
        .call(
            "create_group",
            json!({"name": name, "monthly_budget_usd": budget}),
        )
        .await;
    assert_eq!(status, 200, "{id}");
    id.as_str().expect("the group's id").to_owned()
}

async fn groups(admin: &Person) -> Vec<Value> {
    let (status, body) = admin.call("admin_groups", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["groups"].as_array().expect("groups").clone()
}

fn outcome(events: &[rill::model::TurnEnvelope]) -> rill::model::Outcome {
    finished(events).clone()
}

#[tokio::test]
async fn admins_manage_groups_and_nobody_else_can() {
    let app = dear_app(10, None).await;
    app.add_user("root", true).await;
    let ada_id = app.add_user("ada", false).await;
    let bob_id = app.add_user("bob", false).await;
    let root = app.signed_in("root").await;
    let ada = app.signed_in("ada").await;

    let id = make_group(&root, "Research", Some(10.0)).await;
    let (status, body) = root.call("create_group", json!({"name": "Research"})).await;
    assert_eq!(status, 409, "a name is one group's: {body}");
    assert!(body.to_string().contains("exists already"), "{body}");
    let (status, _) = root.call("create_group", json!({"name": "  "})).await;
    assert_eq!(status, 400);
    assert_eq!(
        root.call("rename_group", json!({"id": id, "name": "Lab"}))
            .await
            .0,
        200
    );
    assert_eq!(
        root.call(
            "set_group_budget",
            json!({"id": id, "monthly_budget_usd": 5.5})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        root.call("add_group_member", json!({"id": id, "username": "ada"}))
            .await
            .0,
        200
    );
    let (status, _) = root
        .call("add_group_member", json!({"id": id, "username": "nobody"}))
        .await;
    assert_eq!(status, 404, "no such user");
    let (status, body) = root
        .call(
            "set_group_models",
            json!({"id": id, "models": ["fake/fake-model", "no/such-model"]}),
        )
        .await;
    assert_eq!(status, 400, "only the catalog's models: {body}");
    assert_eq!(
        root.call(
            "set_group_models",
            json!({"id": id, "models": ["fake/fake-model"]})
        )
        .await
        .0,
        200
    );
    // Bob joins through the identity provider's group the admin links.
    rill::server::db::accounts::set_idp_groups(&app.state.db, &bob_id, &["lab-staff".to_owned()])
        .await
        .expect("idp groups stored");
    assert_eq!(
        root.call("set_group_idp", json!({"id": id, "idp_group": "lab-staff"}))
            .await
            .0,
        200
    );
    let listed = groups(&root).await;
    assert_eq!(listed.len(), 1);
    let group = &listed[0];
    assert_eq!(group["name"], "Lab");
    assert_eq!(group["monthly_budget_usd"], 5.5);
    assert_eq!(group["idp_group"], "lab-staff");
    assert_eq!(group["models"], json!(["fake/fake-model"]));
    assert_eq!(
        group["members"],
        json!([
            {"user_id": ada_id, "username": "ada", "by_hand": true},
            {"user_id": bob_id, "username": "bob", "by_hand": false},
        ])
    );
    // At the provider's next sign-in without the group, Bob is no longer a member.
    rill::server::db::accounts::set_idp_groups(&app.state.db, &bob_id, &[])
        .await
        .expect("idp groups stored");
    assert_eq!(
        groups(&root).await[0]["members"].as_array().map(Vec::len),
        Some(1)
    );

    // Nobody but an admin may see or change a group, whatever its id.
    let id_json = json!({"id": id});
    for (endpoint, body) in [
        ("admin_groups", json!({})),
        ("create_group", json!({"name": "Mine"})),
        ("rename_group", json!({"id": id, "name": "Mine"})),
        ("delete_group", id_json.clone()),
        (
            "set_group_budget",
            json!({"id": id, "monthly_budget_usd": 100.0}),
        ),
        ("set_group_idp", json!({"id": id, "idp_group": "x"})),
        ("set_group_models", json!({"id": id, "models": []})),
        ("add_group_member", json!({"id": id, "username": "ada"})),
        ("remove_group_member", json!({"id": id, "user_id": ada_id})),
    ] {
        let (status, body) = ada.call(endpoint, body).await;
        assert_eq!(status, 403, "{endpoint}: {body}");
    }
    // An id that is no group's is not found.
    let stranger = Uuid::new_v4();
    for (endpoint, body) in [
        ("rename_group", json!({"id": stranger, "name": "X"})),
        ("delete_group", json!({"id": stranger})),
        (
            "set_group_budget",
            json!({"id": stranger, "monthly_budget_usd": 1.0}),
        ),
        ("set_group_models", json!({"id": stranger, "models": []})),
        (
            "add_group_member",
            json!({"id": stranger, "username": "ada"}),
        ),
        (
            "remove_group_member",
            json!({"id": stranger, "user_id": ada_id}),
        ),
    ] {
        let (status, body) = root.call(endpoint, body).await;
        assert_eq!(status, 404, "{endpoint}: {body}");
    }
    assert_eq!(
        root.call("remove_group_member", json!({"id": id, "user_id": ada_id}))
            .await
            .0,
        200
    );
    assert_eq!(root.call("delete_group", id_json).await.0, 200);
    assert!(groups(&root).await.is_empty());
    assert_eq!(app.count("group_members").await, 0);
    // Each change is in the audit log.
    let (_, audit) = root
        .call("audit_log", json!({"filter": "group", "before": null}))
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "created group",
        "renamed group",
        "set group budget",
        "deleted group",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_sending_at_once_stay_within_their_group_budget() {
    let app = dear_app(100, None).await;
    app.add_user("root", true).await;
    let root = app.signed_in("root").await;
    // $0.50 for the group: each reply may cost up to $0.20 and a little for its prompt.
    let id = make_group(&root, "Research", Some(0.50)).await;
    let mut members = Vec::new();
    for name in ["ann", "ben", "cat"] {
        app.add_user(name, false).await;
        assert_eq!(
            root.call("add_group_member", json!({"id": id, "username": name}))
                .await
                .0,
            200
        );
        members.push(app.signed_in(name).await);
    }
    // Three sends by each member, all at once.
    let sends = members
        .iter()
        .flat_map(|m| (0..3).map(move |i| m.turn(None, if i == 0 { "One" } else { "Another" })));
    let outcomes: Vec<_> = futures::future::join_all(sends)
        .await
        .iter()
        .map(|events| outcome(events))
        .collect();
    let completed = outcomes
        .iter()
        .filter(|o| o.status == MessageStatus::Complete)
        .count();
    let refused: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status == MessageStatus::Failed)
        .filter_map(|o| o.error.clone())
        .collect();
    assert_eq!(completed + refused.len(), 9, "{outcomes:?}");
    let spent: f64 = outcomes.iter().filter_map(|o| o.cost_usd).sum();
    println!(
        "9 sends at once by 3 members into a $0.50 group budget: {completed} answered, {} \
         refused, ${spent:.4} spent",
        refused.len()
    );
    assert_eq!(
        completed, 2,
        "two worst cases fit in $0.50, a third does not"
    );
    assert!(spent <= 0.50, "spent ${spent} against a $0.50 group budget");
    assert!(
        refused.iter().all(|e| e.contains("the group Research")
            && e.contains("budget of $0.50")
            && e.contains("left of it")),
        "{refused:?}"
    );
    // No provider request for a refused one.
    assert_eq!(app.fake.calls().len(), completed);

    // The members' usage shows the group's month, and the admin's CSV every group's.
    let report: Value = members[0]
        .post("monthly_usage", json!({"user_id": null}))
        .await
        .json()
        .await
        .expect("report");
    let group = &report["groups"][0];
    assert_eq!(group["name"], "Research");
    let total = group["month_cost_usd"].as_f64().expect("total");
    assert!((total - spent).abs() < 1e-9, "{total} vs {spent}");
    let csv = root.get("/usage.csv?groups=1").await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.expect("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("month,group,members,cost_usd,budget_usd")
    );
    let row: Vec<&str> = lines.next().expect("a row").split(',').collect();
    assert_eq!(&row[1..3], ["Research", "3"]);
    assert_eq!(row[4], "0.5");
    // A member's lists their own groups only, without the member count.
    app.add_user("dan", false).await;
    let dan = app.signed_in("dan").await;
    let theirs = dan
        .get("/usage.csv?groups=1")
        .await
        .text()
        .await
        .expect("csv");
    assert_eq!(theirs.trim(), "month,group,cost_usd,budget_usd");
}

/// A webhook receiver on loopback: answers 500 to its first request, then 200; keeps each
/// request's JSON.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let kept = seen.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let mut kept = kept.lock().expect("lock");
                kept.push(body);
                if kept.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

/// The thresholds the receiver was sent for `scope`, in order (a retry counted again).
fn thresholds(seen: &Mutex<Vec<Value>>, scope: &str) -> Vec<u64> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|hook| hook["scope"] == scope)
        .filter_map(|hook| hook["threshold"].as_u64())
        .collect()
}

/// The budgets the composer warns about.
async fn budget_status(person: &Person) -> Value {
    let (code, body) = person.call("budget_status", json!({})).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// Waits (at most 10 s) until `done` holds.
async fn until(done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn warnings_at_80_and_90_percent_reach_the_page_and_the_webhook_once() {
    let (url, seen) = receiver().await;
    let app = dear_app(
        10,
        Some(LimitSettings {
            budget_webhook: Some(url.parse().expect("url")),
            ..generous_limits()
        }),
    )
    .await;
    app.add_user("root", true).await;
    let root = app.signed_in("root").await;
    // Each reply costs about $0.02 (10 tokens and a short prompt): 80 % of $0.25 after 10.
    let id = make_group(&root, "Research", Some(0.25)).await;
    app.add_user("ann", false).await;
    root.call("add_group_member", json!({"id": id, "username": "ann"}))
        .await;
    let ann = app.signed_in("ann").await;
    let before = budget_status(&ann).await;
    assert_eq!(before[0]["scope"], "Group");
    assert_eq!(before[0]["budget_usd"], 0.25);
    let mut sent = 0;
    // Bounded: the budget refuses the 12th or so.
    while sent < 20 {
        let reply = outcome(&ann.turn(None, "Hi").await);
        if reply.status != MessageStatus::Complete {
            assert!(reply
                .error
                .as_deref()
                .unwrap_or("")
                .contains("the group Research"));
            break;
        }
        sent += 1;
    }
    assert!(sent >= 10, "{sent} replies fitted");
    until(|| thresholds(&seen, "group").len() >= 3).await;
    // 80 % refused once (500) and taken on the retry; 90 % taken at once (the two are sent
    // side by side, so their order may interleave).
    let sent_thresholds = thresholds(&seen, "group");
    assert_eq!(sent_thresholds.first(), Some(&80), "{sent_thresholds:?}");
    let mut sorted = sent_thresholds.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [80, 80, 90]);
    let hook = seen
        .lock()
        .expect("lock")
        .iter()
        .find(|hook| hook["threshold"] == 90)
        .cloned()
        .expect("the 90 % warning");
    assert_eq!(hook["name"], "Research");
    assert_eq!(hook["id"], id.as_str());
    assert_eq!(hook["budget_usd"], 0.25);
    assert!(
        hook["spent_usd"].as_f64().expect("spent") >= 0.225,
        "{hook}"
    );
    // The composer's status says it, as does the usage page's report.
    let after = budget_status(&ann).await;
    let spent = after[0]["spent_usd"].as_f64().expect("spent");
    assert!(spent >= 0.2, "{after}");
    let report: Value = ann
        .post("monthly_usage", json!({"user_id": null}))
        .await
        .json()
        .await
        .expect("report");
    assert_eq!(report["budgets"][0]["name"], "Research");
    // An API key's budget is one of them too.
    let (code, made) = ann
        .call(
            "create_api_key",
            json!({"key": {"name": "script", "monthly_budget_usd": 1.0}}),
        )
        .await;
    assert_eq!(code, 200, "{made}");
    let report: Value = ann
        .post("monthly_usage", json!({"user_id": null}))
        .await
        .json()
        .await
        .expect("report");
    assert_eq!(report["budgets"][1]["scope"], "Key");
    assert_eq!(report["budgets"][1]["name"], "script");
    // A raised budget, spent past 80 % again in the same month, sends nothing more.
    root.call(
        "set_group_budget",
        json!({"id": id, "monthly_budget_usd": 0.3}),
    )
    .await;
    for _ in 0..2 {
        ann.turn(None, "Hi").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        thresholds(&seen, "group").len(),
        3,
        "nothing more this month"
    );
    let rows: i64 = crate::sql::sql("SELECT COUNT(*) FROM budget_alerts WHERE sent_at IS NOT NULL")
        .scalar(&app.state.db)
        .await;
    assert_eq!(rows, 2, "each threshold recorded as sent");
}

#[tokio::test]
async fn a_groups_models_hold_on_every_path() {
    // Replies are cut at their length limit, so they can be continued.
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        fake: FakeConfig {
            tokens: 5,
            hit_token_limit: true,
            ..FakeConfig::default()
        },
        ..Setup::default()
    })
    .await;
    app.add_user("root", true).await;
    app.add_user("ann", false).await;
    let root = app.signed_in("root").await;
    let ann = app.signed_in("ann").await;
    // Before any limit: a conversation on the default model.
    let first_turn = Uuid::new_v4();
    let first = EventReader::new(ann.send(first_turn, None, "Before").await)
        .read_to_end()
        .await;
    assert_eq!(outcome(&first).status, MessageStatus::Complete);
    let conversation = conversation_of(&first);
    let id = make_group(&root, "Writers", None).await;
    root.call("add_group_member", json!({"id": id, "username": "ann"}))
        .await;
    let (status, body) = root
        .call(
            "set_group_models",
            json!({"id": id, "models": ["claude/claude-fake"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The picker lists only the group's models.
    let (_, menu) = ann.call("list_models", json!({})).await;
    let listed: Vec<&str> = menu["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["models"].as_array().expect("models"))
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(listed, ["claude/claude-fake"]);
    assert_eq!(menu["default_model"], "claude/claude-fake");
    // Root is in no group: every model.
    let (_, all) = root.call("list_models", json!({})).await;
    assert!(all.to_string().contains("fake/fake-model"));

    let calls = app.fake.calls().len();
    // Continue of the first reply (cut at its length limit): refused too.
    let continued = ann
        .post(
            "continue_reply",
            json!({"turn_id": first_turn, "from_run": 1}),
        )
        .await;
    assert_eq!(continued.status(), 200);
    let continued = outcome(&EventReader::new(continued).read_to_end().await);
    assert_eq!(continued.status, MessageStatus::Failed);
    assert!(continued.error.unwrap_or_default().contains("do not allow"));
    // Send (on the conversation's model), Regenerate: refused in words, no provider request.
    let refused = outcome(&ann.turn(Some(conversation), "After").await);
    assert_eq!(refused.status, MessageStatus::Failed);
    let words = refused.error.clone().unwrap_or_default();
    assert!(
        words.contains("do not allow the model fake/fake-model"),
        "{words}"
    );
    let regenerated = ann
        .post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "Before",
                   "model": null, "alternative_to": first_turn}),
        )
        .await;
    assert_eq!(regenerated.status(), 200);
    let regenerated = outcome(&EventReader::new(regenerated).read_to_end().await);
    assert_eq!(regenerated.status, MessageStatus::Failed);
    assert!(regenerated
        .error
        .unwrap_or_default()
        .contains("do not allow"));
    // Switching the conversation to a model the group does not allow: 403.
    let (status, body) = ann
        .call(
            "set_conversation_model",
            json!({"id": conversation, "model": "gemini/gemini-fake"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        ann.call(
            "set_conversation_model",
            json!({"id": conversation, "model": "claude/claude-fake"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        app.fake.calls().len(),
        calls,
        "no request for a refused model"
    );

    // `/v1`: the key's owner's groups hold there too.
    let (status, made) = ann
        .call("create_api_key", json!({"key": {"name": "script"}}))
        .await;
    assert_eq!(status, 200, "{made}");
    let key = made["key"].as_str().expect("key").to_owned();
    let models: Value = app
        .http
        .get(format!("{}/v1/models", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["claude/claude-fake"]);
    let one = app
        .http
        .get(format!("{}/v1/models/fake/fake-model", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("model");
    assert_eq!(one.status(), 404);
    let completion = app
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(&key)
        .json(&json!({"model": "fake/fake-model", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .expect("completion");
    assert_eq!(completion.status(), 403);
    let error: Value = completion.json().await.expect("json");
    assert_eq!(error["error"]["code"], "model_not_allowed", "{error}");
    assert_eq!(
        app.fake.calls().len(),
        calls,
        "no request for a refused model"
    );
}

#[tokio::test]
async fn an_api_keys_budget_warns_through_the_webhook_too() {
    let (url, seen) = receiver().await;
    let app = dear_app(
        10,
        Some(LimitSettings {
            budget_webhook: Some(url.parse().expect("url")),
            ..generous_limits()
        }),
    )
    .await;
    app.add_user("kim", false).await;
    let kim = app.signed_in("kim").await;
    // One completion of 10 tokens costs about $0.02: its reservation passes 90 % of $0.022.
    let (code, made) = kim
        .call(
            "create_api_key",
            json!({"key": {"name": "nightly", "monthly_budget_usd": 0.022}}),
        )
        .await;
    assert_eq!(code, 200, "{made}");
    let key = made["key"].as_str().expect("key").to_owned();
    let completion = app
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(&key)
        .json(&json!({"model": "fake/fake-model", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .expect("completion");
    assert_eq!(completion.status(), 200);
    until(|| thresholds(&seen, "key").len() >= 3).await;
    let keyed = thresholds(&seen, "key");
    let mut sorted = keyed.clone();
    sorted.sort_unstable();
    // 80 and 90 at once: the first request refused and retried.
    assert_eq!(sorted, [80, 80, 90], "{keyed:?}");
    let hook = seen
        .lock()
        .expect("lock")
        .iter()
        .find(|hook| hook["scope"] == "key")
        .cloned()
        .expect("a key's warning");
    assert_eq!(hook["name"], "nightly");
    assert_eq!(hook["id"], made["view"]["id"]);
}

#[tokio::test]
async fn a_groups_month_is_what_was_spent_in_it_whoever_joins_or_leaves() {
    let app = dear_app(10, None).await;
    app.add_user("root", true).await;
    let ada_id = app.add_user("ada", false).await;
    app.add_user("bob", false).await;
    let root = app.signed_in("root").await;
    let ada = app.signed_in("ada").await;
    let bob = app.signed_in("bob").await;
    let month_of = |id: String| {
        let root = &root;
        async move {
            groups(root)
                .await
                .iter()
                .find(|g| g["id"] == id.as_str())
                .and_then(|g| g["month_cost_usd"].as_f64())
                .expect("the group's month")
        }
    };
    // Bob spends before he is in any group.
    assert_eq!(
        outcome(&bob.turn(None, "Hi").await).status,
        MessageStatus::Complete
    );
    let id = make_group(&root, "Lab", Some(10.0)).await;
    let (status, body) = root
        .call("add_group_member", json!({"id": id, "username": "ada"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        outcome(&ada.turn(None, "Hi").await).status,
        MessageStatus::Complete
    );
    let spent_in_lab = month_of(id.clone()).await;
    assert!(spent_in_lab > 0.0);
    // Bob joins: what he spent before does not come with him.
    let (status, body) = root
        .call("add_group_member", json!({"id": id, "username": "bob"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(month_of(id.clone()).await, spent_in_lab);
    // Ada leaves: what she spent in the group stays in it…
    let (status, body) = root
        .call("remove_group_member", json!({"id": id, "user_id": ada_id}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(month_of(id.clone()).await, spent_in_lab);
    // …and still holds its budget: with the budget at what was spent, Bob's next is refused.
    let (status, body) = root
        .call(
            "set_group_budget",
            json!({"id": id, "monthly_budget_usd": spent_in_lab}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = outcome(&bob.turn(None, "Hi").await);
    assert_eq!(refused.status, MessageStatus::Failed);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or("")
            .contains("the group Lab"),
        "{refused:?}"
    );
    // Ada's usage page no longer lists the group.
    let (status, usage) = ada.call("monthly_usage", json!({})).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["groups"], json!([]), "{usage}");
}
