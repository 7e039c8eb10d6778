//! Service accounts (issue 29): an admin makes an account for scripts, and its API keys; it
//! never signs in (no password, and the trusted proxy's header cannot name it), spends under its
//! own budget and its groups', and only admins see or manage its keys. Runs on either engine
//! (`RILL_TEST_ENGINE=postgres`).

use rill::server::config::AccessSettings;
use serde_json::{json, Value};

use crate::support::*;

async fn complete(app: &TestApp, key: &str) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(key)
        .json(&json!({"model": "fake/fake-model", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .expect("the request reaches the app");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// The admin's view of one account, found by name.
async fn account(admin: &Person, name: &str) -> Value {
    let (status, users) = admin
        .call("list_users", json!({"filter": name, "after": null}))
        .await;
    assert_eq!(status, 200, "{users}");
    users
        .as_array()
        .and_then(|all| all.iter().find(|u| u["username"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("{name} is listed: {users}"))
}

#[tokio::test]
async fn an_admin_makes_a_service_account_and_its_keys_which_spend_under_its_budgets() {
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    app.add_user("root", true).await;
    app.add_user("ada", false).await;
    let root = app.signed_in("root").await;
    let ada = app.signed_in("ada").await;
    // Made in the admin page's form: a name and a budget, no password.
    let made = |name: &'static str, is_admin: bool| {
        root.call(
            "create_user",
            json!({"username": name, "password": "", "is_admin": is_admin,
                   "monthly_budget_usd": 1.0, "service": true}),
        )
    };
    let (status, body) = made("ci-bot", true).await;
    assert_eq!(status, 400, "a service account is no admin: {body}");
    assert_eq!(made("ci-bot", false).await.0, 200);
    assert_eq!(
        made("ci-bot", false).await.0,
        409,
        "names are one account's"
    );
    let (status, _) = ada
        .call(
            "create_user",
            json!({"username": "ada-bot", "password": "", "is_admin": false,
               "monthly_budget_usd": null, "service": true}),
        )
        .await;
    assert_eq!(status, 403);
    let bot = account(&root, "ci-bot").await;
    assert_eq!(
        (bot["service"].clone(), bot["is_admin"].clone()),
        (json!(true), json!(false))
    );
    let bot_id = bot["id"].as_str().expect("id").to_owned();

    // Only admins make, list and revoke its keys; a person's keys stay the person's.
    let (status, _) = ada
        .call(
            "create_api_key",
            json!({"key": {"name": "mine now"}, "account": bot_id}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, created) = root
        .call(
            "create_api_key",
            json!({"key": {"name": "nightly", "monthly_budget_usd": 0.5}, "account": bot_id}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().expect("the key").to_owned();
    let key_id = created["view"]["id"].clone();
    let (_, bot_keys) = root.call("list_api_keys", json!({"account": bot_id})).await;
    assert_eq!(bot_keys.as_array().map(Vec::len), Some(1), "{bot_keys}");
    assert_eq!(root.call("list_api_keys", json!({})).await.1, json!([]));
    assert_eq!(
        ada.call("list_api_keys", json!({"account": bot_id}))
            .await
            .0,
        403
    );
    let ada_id = account(&root, "ada").await["id"].clone();
    let (status, body) = root
        .call(
            "create_api_key",
            json!({"key": {"name": "for ada"}, "account": ada_id}),
        )
        .await;
    assert_eq!(status, 400, "a person makes their own keys: {body}");

    // The key works, and what it spends is the service account's.
    let (status, body) = complete(&app, &key).await;
    assert_eq!(status, 200, "{body}");
    let spent = account(&root, "ci-bot").await["month_cost_usd"]
        .as_f64()
        .expect("cost");
    assert!(spent > 0.0, "{spent}");
    assert_eq!(account(&root, "ada").await["month_cost_usd"], 0.0);

    // It never signs in: no password works, and none can be set.
    let visitor = app.visitor();
    for password in ["", "ci-bot-password", "anything at all"] {
        let (status, _) = visitor
            .call(
                "sign_in",
                json!({"username": "ci-bot", "password": password}),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = root
        .call(
            "reset_password",
            json!({"user_id": bot_id, "password": "a-long-password"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("API keys"), "{body}");

    // Its groups' budgets hold it as they hold people.
    let (status, group) = root
        .call(
            "create_group",
            json!({"name": "Robots", "monthly_budget_usd": 0.0}),
        )
        .await;
    assert_eq!(status, 200, "{group}");
    let (status, body) = root
        .call(
            "add_group_member",
            json!({"id": group, "username": "ci-bot"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = complete(&app, &key).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Robots")),
        "{body}"
    );
    assert_eq!(root.call("delete_group", json!({"id": group})).await.0, 200);
    assert_eq!(complete(&app, &key).await.0, 200);

    // Disabled, its keys stop; enabled, they work again; revoked, the key is gone.
    assert_eq!(
        root.call(
            "set_user_disabled",
            json!({"user_id": bot_id, "disabled": true})
        )
        .await
        .0,
        200
    );
    let (status, body) = complete(&app, &key).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("account_disabled"))
    );
    root.call(
        "set_user_disabled",
        json!({"user_id": bot_id, "disabled": false}),
    )
    .await;
    assert_eq!(complete(&app, &key).await.0, 200);
    assert_eq!(
        ada.call("revoke_api_key", json!({"id": key_id, "account": bot_id}))
            .await
            .0,
        403
    );
    assert_eq!(
        root.call("revoke_api_key", json!({"id": key_id, "account": bot_id}))
            .await
            .0,
        200
    );
    assert_eq!(complete(&app, &key).await.0, 401);

    // The audit log says who did what.
    let (_, log) = root
        .call("audit_log", json!({"filter": "ci-bot", "before": null}))
        .await;
    let actions: Vec<&str> = log
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["created service account", "made API key", "revoked API key"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

#[tokio::test]
async fn the_proxy_header_cannot_name_a_service_account() {
    let app = TestApp::with(Setup {
        access: AccessSettings {
            trusted_proxies: vec!["127.0.0.1/32".parse().expect("net")],
            sso_header: Some(axum::http::HeaderName::from_static("x-forwarded-user")),
            ..accounts_mode()
        },
        ..Setup::default()
    })
    .await;
    app.add_user("root", true).await;
    let as_proxy = |user: &'static str, endpoint: &'static str, body: Value| {
        app.http
            .post(format!("{}/api/{endpoint}", app.base_url))
            .header("x-forwarded-user", user)
            .json(&body)
            .send()
    };
    let made = as_proxy(
        "root",
        "create_user",
        json!({"username": "ci-bot", "password": "", "is_admin": false,
               "monthly_budget_usd": null, "service": true}),
    )
    .await
    .expect("request");
    assert_eq!(made.status(), 200);
    // A person at the proxy who happens to have its name is not let in as it.
    let refused = as_proxy("ci-bot", "list_api_keys", json!({}))
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);
    let words = refused.text().await.expect("body");
    assert!(words.contains("service account"), "{words}");
}

#[tokio::test]
async fn single_user_mode_makes_no_service_accounts() {
    // The one owner is the admin here, and every key acts for them.
    let app = TestApp::with(Setup::default()).await;
    let response = app
        .post_json(
            "create_user",
            json!({"username": "ci-bot", "password": "", "is_admin": false,
                   "monthly_budget_usd": null, "service": true}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let words = response.text().await.expect("body");
    assert!(words.contains("RILL_AUTH=accounts"), "{words}");
    assert_eq!(app.count("users").await, 0);
}
