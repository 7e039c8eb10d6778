//! Accounts mode: sign-in, sessions, each user's data their own, admins, budgets, limits, the
//! trusted proxy's header, the usage export and the audit log.

use std::time::Duration;

use fake_provider::FakeConfig;
use rill::model::{MessageStatus, TurnEvent};
use rill::server::config::{AccessSettings, LimitSettings, PublicUrl};
use rill::server::db::Engine;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;
use crate::support::{accounts_mode, text_of, EventReader, Person, Setup, TestApp};

async fn accounts_app() -> TestApp {
    TestApp::with(Setup {
        access: accounts_mode(),
        ..Setup::default()
    })
    .await
}

fn conversation_of(events: &[rill::model::TurnEnvelope]) -> Uuid {
    events
        .iter()
        .find_map(|e| match &e.event {
            TurnEvent::Started {
                conversation_id, ..
            } => Some(*conversation_id),
            _ => None,
        })
        .expect("the turn started")
}

fn outcome_of(events: &[rill::model::TurnEnvelope]) -> rill::model::Outcome {
    events
        .iter()
        .find_map(|e| match &e.event {
            TurnEvent::Finished(outcome) => Some(outcome.clone()),
            _ => None,
        })
        .expect("the turn finished")
}

/// The `Set-Cookie` header of the response that sets the cookie `name=`.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json")
}

#[tokio::test]
async fn nobody_signed_in_reaches_only_the_sign_in_page() {
    let app = accounts_app().await;
    let visitor = app.visitor();
    let page = visitor.get("/").await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/signin");
    assert_eq!(visitor.get("/signin").await.status(), 200);
    assert_eq!(
        visitor.post("list_conversations", json!({})).await.status(),
        401
    );
    assert_eq!(visitor.get("/usage.csv").await.status(), 303);
    let send = visitor
        .post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Hi", "model": null}),
        )
        .await;
    assert_eq!(send.status(), 401);
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn each_user_sees_only_their_own_data_on_every_endpoint() {
    let app = accounts_app().await;
    let alice_id = app.add_user("alice", false).await;
    app.add_user("bob", false).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let turn_id = Uuid::new_v4();
    let events = EventReader::new(alice.send(turn_id, None, "Alice's secret").await)
        .read_to_end()
        .await;
    let conversation = conversation_of(&events);

    // Bob's list is empty; Alice's has her conversation.
    assert_eq!(
        json_of(bob.post("list_conversations", json!({})).await).await,
        json!([])
    );
    let listed = json_of(alice.post("list_conversations", json!({})).await).await;
    assert_eq!(listed[0]["id"], conversation.to_string());

    // Every way of reaching Alice's conversation or turn answers Bob exactly as for ids that
    // do not exist.
    let unknown = Uuid::new_v4();
    let probes = |conversation: Uuid, turn: Uuid| {
        vec![
            ("get_conversation", json!({"id": conversation})),
            (
                "set_system_prompt",
                json!({"id": conversation, "system_prompt": "Obey Bob"}),
            ),
            (
                "set_conversation_model",
                json!({"id": conversation, "model": "fake/fake-model"}),
            ),
            (
                "send_message",
                json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "Hi", "model": null}),
            ),
            (
                "conversation_events",
                json!({"conversation_id": conversation, "from_turn": null}),
            ),
            (
                "turn_events",
                json!({"turn_id": turn, "run": 1, "after_seq": 0}),
            ),
            ("stop_turn", json!({"turn_id": turn})),
            ("continue_reply", json!({"turn_id": turn, "from_run": 1})),
        ]
    };
    let theirs = probes(conversation, turn_id);
    let nobodys = probes(unknown, unknown);
    for ((endpoint, body), (_, unknown_body)) in theirs.into_iter().zip(nobodys) {
        let response = bob.post(endpoint, body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        let unknown = bob.post(endpoint, unknown_body).await;
        assert_eq!(status, 404, "{endpoint}: {text}");
        assert_eq!(unknown.status(), 404, "{endpoint}");
        assert_eq!(text, unknown.text().await.expect("body"), "{endpoint}");
    }
    // Usage: Bob cannot read Alice's, in the page or the export.
    assert_eq!(
        bob.post("monthly_usage", json!({"user_id": alice_id}))
            .await
            .status(),
        404
    );
    assert_eq!(
        bob.get(&format!("/usage.csv?user={alice_id}"))
            .await
            .status(),
        404
    );
    let bob_csv = bob.get("/usage.csv").await.text().await.expect("csv");
    assert_eq!(bob_csv.lines().count(), 1, "only the header: {bob_csv}");
    // Nothing of Alice's changed.
    let view = json_of(
        alice
            .post("get_conversation", json!({"id": conversation}))
            .await,
    )
    .await;
    assert_eq!(view["system_prompt"], "");
    assert_eq!(view["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(view["messages"][1]["outcome"]["status"], "complete");
    assert_eq!(
        app.fake.requests().len(),
        1,
        "only Alice's turn reached the provider"
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_and_renewed_at_sign_in() {
    let app = accounts_app().await;
    app.add_user("carol", false).await;
    let visitor = app.visitor();
    // Any session id planted before sign-in is replaced.
    let response = visitor
        .http
        .post(format!("{}/api/sign_in", app.base_url))
        .header("cookie", "rill_session=planted-by-someone-else")
        .json(&json!({"username": "carol", "password": "carol-password"}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), 200);
    let cookie = set_cookie(&response, "rill_session=");
    let device = set_cookie(&response, "rill_device=");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(device.contains(flag), "{flag} in {device}");
    }
    assert!(!cookie.contains("planted-by-someone-else"));
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    // Served over HTTPS (behind a TLS proxy): a __Host- cookie, Secure.
    let tls = TestApp::with(Setup {
        access: AccessSettings {
            public_url: Some(PublicUrl {
                https: true,
                host: "127.0.0.1".into(),
            }),
            ..accounts_mode()
        },
        ..Setup::default()
    })
    .await;
    tls.add_user("carol", false).await;
    let response = tls
        .visitor()
        .post(
            "sign_in",
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    for name in ["__Host-rill_session=", "__Host-rill_device="] {
        let cookie = set_cookie(&response, name);
        assert!(
            cookie.contains("Secure") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
    }
    // Browsers are told to come back over https only; plain http gets no such header.
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let plain = app.visitor().get("/signin").await;
    assert!(plain.headers().get("strict-transport-security").is_none());
}

#[tokio::test]
async fn the_session_table_holds_only_a_hash_of_the_cookie_and_a_sign_in_has_an_end() {
    let app = TestApp::with(Setup {
        access: AccessSettings {
            session_max_age: Duration::from_secs(2),
            ..accounts_mode()
        },
        ..Setup::default()
    })
    .await;
    app.add_user("sam", false).await;
    let plain = reqwest::Client::new();
    let response = plain
        .post(format!("{}/api/sign_in", app.base_url))
        .json(&json!({"username": "sam", "password": "sam-password"}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), 200);
    let cookie = set_cookie(&response, "rill_session=")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let id = cookie.trim_start_matches("rill_session=").to_owned();
    assert!(!id.is_empty());
    // Nothing stored is what the browser presents: not the key, not inside the record.
    // tower-sessions names its table per engine (Postgres: a schema of its own).
    let table = match app.state.db.engine() {
        Engine::Sqlite => "tower_sessions",
        Engine::Postgres => "tower_sessions.session",
    };
    let rows: Vec<(String, Vec<u8>)> = sql(format!("SELECT id, data FROM {table}"))
        .fetch_all(&app.state.db)
        .await;
    assert_eq!(rows.len(), 1);
    let (stored, data) = &rows[0];
    assert_ne!(stored, &id);
    assert!(
        !data.windows(id.len()).any(|w| w == id.as_bytes()),
        "the record carries the cookie's value"
    );
    // The cookie still works.
    let me = |cookie: String| {
        plain
            .post(format!("{}/api/list_conversations", app.base_url))
            .header("cookie", cookie)
            .json(&json!({}))
            .send()
    };
    assert_eq!(me(cookie.clone()).await.expect("request").status(), 200);
    // A database row copied into a cookie is worth nothing.
    let forged = format!("rill_session={stored}");
    assert_eq!(me(forged).await.expect("request").status(), 401);
    // However busy, a sign-in ends after its absolute lifetime (2 s here).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(me(cookie.clone()).await.expect("request").status(), 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(me(cookie).await.expect("request").status(), 401);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = accounts_app().await;
    app.add_user("dave", false).await;
    let dave = app.signed_in("dave").await;
    assert_eq!(
        dave.post("list_conversations", json!({})).await.status(),
        200
    );
    assert_eq!(dave.post("sign_out", json!({})).await.status(), 200);
    assert_eq!(
        dave.post("list_conversations", json!({})).await.status(),
        401
    );
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_and_per_address() {
    let app = accounts_app().await;
    app.add_user("erin", false).await;
    let visitor = app.visitor();
    let attempt = |name: &str, password: &str| {
        visitor.post("sign_in", json!({"username": name, "password": password}))
    };
    for _ in 0..5 {
        assert_eq!(attempt("erin", "guess").await.status(), 401);
    }
    let throttled = attempt("erin", "erin-password").await;
    assert_eq!(throttled.status(), 429, "even the right password waits");
    let message = throttled.text().await.expect("body");
    assert!(message.contains("try again in"), "{message}");
    // Per address: many names from one address run out too (sent at once, so that the limit's
    // refill during slow hashing does not matter).
    let names: Vec<String> = (0..25).map(|i| format!("nobody{i}")).collect();
    let statuses: Vec<u16> =
        futures::future::join_all(names.iter().map(|name| attempt(name, "guess")))
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let (rows, failures): (i64, i64) =
        sql("SELECT COUNT(*), CAST(SUM(count) AS BIGINT) FROM audit_log
          WHERE target = 'erin' AND action = 'sign-in failed'")
        .fetch_one(&app.state.db)
        .await;
    assert_eq!(failures, 5, "each failure is counted in the audit log");
    assert_eq!(rows, 1, "in one entry for the account and address");
    // A name no account can have is refused before anything is stored; a body larger than a
    // sign-in needs is not even read from someone not signed in.
    let audited = app.count("audit_log").await;
    let long = app
        .visitor()
        .post(
            "sign_in",
            json!({"username": "x".repeat(1_000), "password": "guess"}),
        )
        .await;
    assert_eq!(long.status(), 401);
    let huge = app
        .visitor()
        .post(
            "sign_in",
            json!({"username": "x".repeat(100_000), "password": "guess"}),
        )
        .await;
    assert_eq!(huge.status(), 413);
    assert_eq!(app.count("audit_log").await, audited);
}

/// A browser of its own that connects from the loopback address `from` (all of 127/8 is this
/// machine), so a test can be many clients.
fn browser_from(app: &TestApp, from: &str) -> Person {
    Person {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(from.parse::<std::net::IpAddr>().expect("address"))
            .build()
            .expect("client"),
        base_url: app.base_url.clone(),
    }
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_owner_out_and_an_admin_sees_and_clears_the_lockout() {
    let app = accounts_app().await;
    app.add_user("root", true).await;
    app.add_user("olga", false).await;
    async fn sign_in(person: &Person, password: &str) -> u16 {
        let body = json!({"username": "olga", "password": password});
        person.post("sign_in", body).await.status().as_u16()
    }
    // Olga's own browser has signed in before.
    let hers = browser_from(&app, "127.0.0.10");
    assert_eq!(sign_in(&hers, "olga-password").await, 200);
    assert_eq!(hers.post("sign_out", json!({})).await.status(), 200);
    // A guesser with twelve addresses fails 60 times within the hour.
    for i in 0..12 {
        let guesser = browser_from(&app, &format!("127.0.1.{}", i + 1));
        for _ in 0..5 {
            assert_eq!(sign_in(&guesser, "guess").await, 401);
        }
    }
    // A browser that never signed in to her account is locked out now, password or not…
    let stranger = browser_from(&app, "127.0.2.1");
    assert_eq!(sign_in(&stranger, "olga-password").await, 429);
    // …but hers is not.
    assert_eq!(sign_in(&hers, "olga-password").await, 200);
    // An admin sees the lockout and lifts it.
    let root = app.signed_in("root").await;
    let overview: Value = json_of(root.post("admin_overview", json!({})).await).await;
    let lockout = overview["lockouts"]
        .as_array()
        .expect("lockouts")
        .iter()
        .find(|l| l["username"] == "olga")
        .expect("olga is listed")
        .clone();
    assert_eq!(lockout["failures"], 60);
    assert!(lockout["locked_for_secs"]
        .as_u64()
        .is_some_and(|s| s > 3000));
    assert_eq!(
        root.post("clear_lockout", json!({"username": "olga"}))
            .await
            .status(),
        200
    );
    assert_eq!(sign_in(&stranger, "olga-password").await, 200);
    // The audit log holds one entry per guessing address, with its count, and pages.
    let page: Vec<Value> = json_of(
        root.post(
            "audit_log",
            json!({"filter": "sign-in failed", "before": null}),
        )
        .await,
    )
    .await
    .as_array()
    .expect("entries")
    .clone();
    assert_eq!(page.len(), 12, "{page:?}");
    assert!(page
        .iter()
        .all(|e| e["count"] == 5 && e["target"] == "olga"));
    let actions = json_of(
        root.post("audit_log", json!({"filter": "", "before": null}))
            .await,
    )
    .await;
    let first = actions.as_array().expect("entries");
    let oldest_shown = first.last().expect("an entry")["id"].as_i64().expect("id");
    let older = json_of(
        root.post("audit_log", json!({"filter": "", "before": oldest_shown}))
            .await,
    )
    .await;
    assert!(older
        .as_array()
        .expect("entries")
        .iter()
        .all(|e| e["id"].as_i64().expect("id") < oldest_shown));
    assert!(
        app.count("audit_log").await < 30,
        "60 guesses are a dozen rows, not 60"
    );
}

#[tokio::test]
async fn the_admin_page_lists_users_a_page_at_a_time_and_finds_them_by_name() {
    let app = accounts_app().await;
    app.add_user("root", true).await;
    // 120 more people (no password: made directly, so no argon2 for each), every other name
    // capitalised: names are ordered and paged without regard to case.
    for i in 0..120 {
        sql("INSERT INTO users (id, username, created_at, updated_at) VALUES ($1, $2, 0, 0)")
            .bind(Uuid::new_v4())
            .bind(if i % 2 == 0 {
                format!("member-{i:03}")
            } else {
                format!("Member-{i:03}")
            })
            .execute(&app.state.db)
            .await;
    }
    let visitor = app.visitor();
    for name in ["nobody-1", "nobody-2", "Member-007"] {
        let refused = visitor
            .post("sign_in", json!({"username": name, "password": "a guess"}))
            .await;
        assert_eq!(refused.status(), 401);
    }
    let root = app.signed_in("root").await;
    let overview = json_of(root.post("admin_overview", json!({})).await).await;
    let names = |page: &Value| -> Vec<String> {
        page.as_array()
            .expect("users")
            .iter()
            .map(|u| u["username"].as_str().expect("name").to_owned())
            .collect()
    };
    let first = names(&overview["users"]);
    assert_eq!(first.len(), rill::api::admin::USERS_PAGE as usize);
    assert_eq!(first[0], "member-000");
    assert_eq!(first.last().map(String::as_str), Some("Member-099"));
    assert_eq!(overview["lockouts_total"], 3);
    let rest = names(
        &json_of(
            root.post("list_users", json!({"filter": "", "after": "Member-099"}))
                .await,
        )
        .await,
    );
    assert_eq!(rest.len(), 21, "{rest:?}");
    assert_eq!(rest[0], "member-100");
    assert_eq!(rest.last().map(String::as_str), Some("root"));
    let found = names(
        &json_of(
            root.post("list_users", json!({"filter": "MEMBER-11", "after": null}))
                .await,
        )
        .await,
    );
    assert_eq!(found.len(), 10, "{found:?}");
    let found_after = names(
        &json_of(
            root.post(
                "list_users",
                json!({"filter": "member-11", "after": "member-114"}),
            )
            .await,
        )
        .await,
    );
    assert_eq!(
        found_after,
        [
            "Member-115",
            "member-116",
            "Member-117",
            "member-118",
            "Member-119"
        ]
    );
    // LIKE's wildcards are matched as themselves.
    for filter in ["_", "%"] {
        let none = json_of(
            root.post("list_users", json!({"filter": filter, "after": null}))
                .await,
        )
        .await;
        assert_eq!(none, json!([]), "{filter}");
    }
    let member = app.add_user("mia", false).await;
    let mia = app.signed_in("mia").await;
    assert_eq!(
        mia.post("list_users", json!({"filter": "", "after": null}))
            .await
            .status(),
        403,
        "{member} is no admin"
    );
}

#[tokio::test]
async fn checking_a_password_to_change_it_is_throttled_like_a_sign_in() {
    let app = accounts_app().await;
    app.add_user("quinn", false).await;
    let quinn = app.signed_in("quinn").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let changed = quinn
            .post(
                "change_password",
                json!({"current": "guess", "new": "whatever-new"}),
            )
            .await;
        statuses.push(changed.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_password_change_or_reset_or_disabling_ends_other_sessions() {
    let app = accounts_app().await;
    app.add_user("admin", true).await;
    let frank_id = app.add_user("frank", false).await;
    let admin = app.signed_in("admin").await;
    let laptop = app.signed_in("frank").await;
    let phone = app.signed_in("frank").await;
    let changed = laptop
        .post(
            "change_password",
            json!({"current": "frank-password", "new": "a new secret"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        laptop.post("list_conversations", json!({})).await.status(),
        200
    );
    assert_eq!(
        phone.post("list_conversations", json!({})).await.status(),
        401
    );
    // The admin resets it: the laptop's session ends too.
    let reset = admin
        .post(
            "reset_password",
            json!({"user_id": frank_id, "password": "frank-password"}),
        )
        .await;
    assert_eq!(reset.status(), 200);
    assert_eq!(
        laptop.post("list_conversations", json!({})).await.status(),
        401
    );
    // Disabled: signed out at once, and cannot sign in.
    let again = app.signed_in("frank").await;
    let disabled = admin
        .post(
            "set_user_disabled",
            json!({"user_id": frank_id, "disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(
        again.post("list_conversations", json!({})).await.status(),
        401
    );
    let refused = app
        .visitor()
        .post(
            "sign_in",
            json!({"username": "frank", "password": "frank-password"}),
        )
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn admin_functions_are_for_admins_and_are_audited() {
    let app = accounts_app().await;
    app.add_user("root", true).await;
    let grace_id = app.add_user("grace", false).await;
    let admin = app.signed_in("root").await;
    let grace = app.signed_in("grace").await;
    for (endpoint, body) in [
        ("admin_overview", json!({})),
        (
            "create_user",
            json!({"username": "mallory", "password": "12345678", "is_admin": true, "monthly_budget_usd": null}),
        ),
        (
            "set_user_budget",
            json!({"user_id": grace_id, "monthly_budget_usd": null}),
        ),
        (
            "set_user_disabled",
            json!({"user_id": grace_id, "disabled": false}),
        ),
        (
            "reset_password",
            json!({"user_id": grace_id, "password": "12345678"}),
        ),
        (
            "set_site_settings",
            json!({"settings": {"open_signup": true, "default_budget_usd": null}}),
        ),
    ] {
        assert_eq!(grace.post(endpoint, body).await.status(), 403, "{endpoint}");
    }
    let created = admin
        .post(
            "create_user",
            json!({"username": "heidi", "password": "heidi-password", "is_admin": false, "monthly_budget_usd": 5.0}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let taken = admin
        .post(
            "create_user",
            json!({"username": "HEIDI", "password": "heidi-password", "is_admin": false, "monthly_budget_usd": null}),
        )
        .await;
    assert_eq!(taken.status(), 409, "names compare without case");
    // A lookalike of another name (a Cyrillic "а") is not a name.
    let lookalike = admin
        .post(
            "create_user",
            json!({"username": "\u{0430}dmin", "password": "mallory-password", "is_admin": false, "monthly_budget_usd": null}),
        )
        .await;
    assert_eq!(lookalike.status(), 400);
    app.signed_in("heidi").await;
    let overview = json_of(admin.post("admin_overview", json!({})).await).await;
    let users: Vec<&str> = overview["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(users, ["grace", "heidi", "root"]);
    let actions: Vec<&str> = overview["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "created user",
        "signed in",
        "created user from the command line",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    // Sign-up stays closed until an admin opens it.
    let visitor = app.visitor();
    let closed = visitor
        .post(
            "sign_up",
            json!({"username": "ivan", "password": "ivan-password"}),
        )
        .await;
    assert_eq!(closed.status(), 403);
    let opened = admin
        .post(
            "set_site_settings",
            json!({"settings": {"open_signup": true, "default_budget_usd": 1.5}}),
        )
        .await;
    assert_eq!(opened.status(), 200);
    let signed_up = visitor
        .post(
            "sign_up",
            json!({"username": "ivan", "password": "ivan-password"}),
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let ivan: Option<f64> = sql("SELECT monthly_budget_usd FROM users WHERE username = 'ivan'")
        .scalar(&app.state.db)
        .await;
    assert_eq!(ivan, Some(1.5), "new users start with the default budget");
    assert_eq!(
        visitor.post("list_conversations", json!({})).await.status(),
        200
    );
}

#[tokio::test]
async fn a_user_over_budget_is_refused_before_any_provider_request() {
    let app = accounts_app().await;
    app.add_user("boss", true).await;
    let judy_id = app.add_user("judy", false).await;
    let admin = app.signed_in("boss").await;
    let judy = app.signed_in("judy").await;
    let first = judy.turn(None, "What is a budget?").await;
    let spent = outcome_of(&first).cost_usd.expect("a cost");
    assert!(spent > 0.0);
    // The limit is what she has spent: the next prompt does not fit.
    let set = admin
        .post(
            "set_user_budget",
            json!({"user_id": judy_id, "monthly_budget_usd": spent}),
        )
        .await;
    assert_eq!(set.status(), 200);
    app.fake.reset_log();
    let refused = judy
        .turn(Some(conversation_of(&first)), "And another?")
        .await;
    let outcome = outcome_of(&refused);
    assert_eq!(outcome.status, MessageStatus::Failed);
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("budget"), "{error}");
    assert!(text_of(&refused).is_empty());
    assert!(
        app.fake.requests().is_empty(),
        "the provider received no request"
    );
    assert_eq!(outcome.cost_usd, None, "a refusal costs nothing");
    // The usage page says so; an admin raises the limit and she goes on.
    let usage = json_of(judy.post("monthly_usage", json!({"user_id": null})).await).await;
    assert_eq!(usage["budget_usd"], json!(spent));
    assert_eq!(usage["month_cost_usd"], json!(spent));
    admin
        .post(
            "set_user_budget",
            json!({"user_id": judy_id, "monthly_budget_usd": 10.0}),
        )
        .await;
    let again = judy.turn(None, "Now?").await;
    assert_eq!(outcome_of(&again).status, MessageStatus::Complete);
}

#[tokio::test]
async fn replies_at_once_and_turns_per_minute_are_bounded_per_user() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            tokens: 40,
            token_delay_ms: 25,
            ..FakeConfig::default()
        },
        access: accounts_mode(),
        limits: Some(LimitSettings {
            running_per_user: 1,
            turns_per_minute: 3,
            ..LimitSettings::default()
        }),
        ..Setup::default()
    })
    .await;
    app.add_user("kim", false).await;
    app.add_user("lee", false).await;
    let kim = app.signed_in("kim").await;
    let lee = app.signed_in("lee").await;
    let running = send_hi(&kim).await;
    assert_eq!(running.status(), 200);
    let mut running = EventReader::new(running);
    running.started().await;
    let second = send_hi(&kim).await;
    assert_eq!(second.status(), 429);
    let message = second.text().await.expect("body");
    assert!(message.contains("being written already"), "{message}");
    // Another person is not held up.
    assert_eq!(send_hi(&lee).await.status(), 200);
    running.read_to_end().await;
    // The slot is free once the reply ends: the second turn of the minute starts; the fourth
    // is one too many.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = send_hi(&kim).await;
    assert_eq!(ok.status(), 200);
    EventReader::new(ok).read_to_end().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = send_hi(&kim).await;
    assert_eq!(ok.status(), 200);
    EventReader::new(ok).read_to_end().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let too_fast = send_hi(&kim).await;
    assert_eq!(too_fast.status(), 429);
    let message = too_fast.text().await.expect("body");
    assert!(message.contains("try again in"), "{message}");
}

#[tokio::test]
async fn the_proxy_header_is_believed_only_from_trusted_proxies() {
    let sso = |trusted: &str| AccessSettings {
        trusted_proxies: vec![trusted.parse().expect("net")],
        sso_header: Some(axum::http::HeaderName::from_static("x-forwarded-user")),
        ..accounts_mode()
    };
    // The test client connects from 127.0.0.1: a trusted proxy here.
    let app = TestApp::with(Setup {
        access: sso("127.0.0.1/32"),
        ..Setup::default()
    })
    .await;
    let as_proxy = |user: &str| {
        app.http
            .post(format!("{}/api/list_conversations", app.base_url))
            .header("content-type", "application/json")
            .header("x-forwarded-user", user)
            .body("{}")
            .send()
    };
    assert_eq!(
        as_proxy("mia@example.com").await.expect("request").status(),
        200
    );
    let me = app
        .http
        .post(format!("{}/api/current_user", app.base_url))
        .header("content-type", "application/json")
        .header("x-forwarded-user", "mia@example.com")
        .body("{}")
        .send()
        .await
        .expect("request");
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["username"], "mia@example.com");
    assert_eq!(me["via_proxy"], true);
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["can_change_password"], false, "the proxy's business");
    // A header given twice, or holding a list, names nobody for sure: refused.
    let users = app.count("users").await;
    for headers in [
        vec!["mia@example.com", "root"],
        vec!["mia@example.com, root"],
    ] {
        let mut request = app
            .http
            .post(format!("{}/api/current_user", app.base_url))
            .header("content-type", "application/json")
            .body("{}");
        for value in headers {
            request = request.header("x-forwarded-user", value);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 400);
        assert!(response
            .text()
            .await
            .expect("body")
            .contains("exactly one user"));
    }
    assert_eq!(app.count("users").await, users, "nobody was created");
    // Not from a trusted address: the header names nobody.
    let untrusted = TestApp::with(Setup {
        access: sso("10.0.0.0/8"),
        ..Setup::default()
    })
    .await;
    let response = untrusted
        .http
        .post(format!("{}/api/list_conversations", untrusted.base_url))
        .header("content-type", "application/json")
        .header("x-forwarded-user", "mia@example.com")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(untrusted.count("users").await, 0);
}

#[tokio::test]
async fn the_usage_export_lists_every_run_of_a_month_and_sums_to_it() {
    let app = accounts_app().await;
    app.add_user("nina", false).await;
    let nina = app.signed_in("nina").await;
    let first = nina.turn(None, "One").await;
    nina.turn(Some(conversation_of(&first)), "Two").await;
    let response = nina.get("/usage.csv").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/csv"));
    let usage = json_of(nina.post("monthly_usage", json!({"user_id": null})).await).await;
    let this_month = usage["month"].as_str().expect("month").to_owned();
    assert!(response.headers()["content-disposition"]
        .to_str()
        .expect("disposition")
        .contains(&format!("rill-usage-nina-{this_month}.csv")));
    let csv = response.text().await.expect("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time,conversation_id,turn_id,run,model,status,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,cost_usd,estimated,api_key")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    let total: f64 = rows
        .iter()
        .map(|r| r[11].parse::<f64>().expect("cost"))
        .sum();
    let month = usage["month_cost_usd"].as_f64().expect("month");
    assert!((total - month).abs() < 1e-9, "{total} vs {month}");
    assert_eq!(usage["rows"][0]["replies"], 2);
    assert!(rows
        .iter()
        .all(|r| r[3] == "1" && r[4] == "fake/fake-model" && r[5] == "complete"));
    // Another month has nothing; a month that is not one is refused in words.
    let empty = nina.get("/usage.csv?month=1999-01").await;
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.text().await.expect("csv").lines().count(), 1);
    let bad = nina.get("/usage.csv?month=2026-13").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("2026-11"));
}

#[tokio::test]
async fn a_long_month_is_exported_whole_a_page_at_a_time() {
    let app = accounts_app().await;
    let owner = app.add_user("olive", false).await;
    let olive = app.signed_in("olive").await;
    olive.turn(None, "One").await;
    // 2,500 more runs of that reply this month: more than two of the export's pages, two runs
    // to each millisecond, so that a page ends between two runs admitted at the same time.
    let (message, month, at): (String, String, i64) =
        sql("SELECT message_id, month, at FROM spending WHERE owner = $1")
            .bind(&owner)
            .fetch_one(&app.state.db)
            .await;
    sql(
        "WITH RECURSIVE runs(run) AS (SELECT 2 UNION ALL SELECT run + 1 FROM runs WHERE run < 2501)
         INSERT INTO spending (owner, message_id, run, model, month, at, state, cost_usd, status)
         SELECT $1, $2, run, 'fake/fake-model', $3, $4 + run / 2, 'settled', 0.001, 'complete'
           FROM runs",
    )
    .bind(&owner)
    .bind(&message)
    .bind(&month)
    .bind(at)
    .execute(&app.state.db)
    .await;
    let csv = olive.get("/usage.csv").await.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2_501, "the header once, then every run");
    assert!(lines[0].starts_with("time,"));
    let runs: Vec<u32> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(3).expect("run").parse().expect("number"))
        .collect();
    assert_eq!(
        runs,
        (1..=2_501).collect::<Vec<u32>>(),
        "each once, in order"
    );
}

async fn send_hi(person: &Person) -> reqwest::Response {
    person.send(Uuid::new_v4(), None, "Hi").await
}

#[tokio::test]
async fn a_failure_in_full_is_shown_to_admins_and_in_words_to_everyone_else() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            fail_status: Some(400),
            ..FakeConfig::default()
        },
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    app.add_user("olga", true).await;
    app.add_user("pete", false).await;
    for (name, admin) in [("olga", true), ("pete", false)] {
        let person = app.signed_in(name).await;
        let events = person.turn(None, "Hi").await;
        let outcome = outcome_of(&events);
        assert_eq!(outcome.status, MessageStatus::Failed);
        assert_eq!(outcome.error_detail, None, "events never carry the detail");
        let view = json_of(
            person
                .post("get_conversation", json!({"id": conversation_of(&events)}))
                .await,
        )
        .await;
        let reply = &view["messages"][1]["outcome"];
        let error = reply["error"].as_str().expect("error");
        assert!(error.contains("400"), "{error}");
        assert!(!error.contains("127.0.0.1"), "{error}");
        match reply.get("error_detail").and_then(Value::as_str) {
            Some(detail) if admin => assert!(detail.contains("HTTP 400"), "{detail}"),
            None if !admin => {}
            other => panic!("{name}: detail {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_theme_is_kept_with_the_account_and_drawn_by_the_server_from_the_first_byte() {
    let app = accounts_app().await;
    app.add_user("theo", false).await;
    let laptop = app.signed_in("theo").await;
    assert!(
        page_of(&laptop).await.contains(r#"<html lang="en">"#),
        "nothing chosen: the device decides"
    );
    let chosen = laptop.post("set_theme", json!({"theme": "dark"})).await;
    assert_eq!(chosen.status(), 200);
    assert!(page_of(&laptop)
        .await
        .contains(r#"<html lang="en" data-theme="dark">"#));
    // Another browser is given the account's theme when it signs in.
    let phone = app.signed_in("theo").await;
    assert!(page_of(&phone)
        .await
        .contains(r#"<html lang="en" data-theme="dark">"#));
    // A theme that does not exist is refused, and changes nothing.
    let refused = phone.post("set_theme", json!({"theme": "neon"})).await;
    assert_eq!(refused.status(), 400);
    assert!(page_of(&laptop).await.contains(r#"data-theme="dark""#));
}

async fn page_of(person: &Person) -> String {
    person.get("/usage").await.text().await.expect("page")
}

#[tokio::test]
async fn a_password_account_is_offered_a_password_change() {
    let app = accounts_app().await;
    app.add_user("pat", false).await;
    let pat = app.signed_in("pat").await;
    let me: Value = json_of(pat.post("current_user", json!({})).await).await;
    assert_eq!(me["can_change_password"], true);
}
