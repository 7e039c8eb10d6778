//! Rill as an OpenAI-compatible API (issue 29): API keys made in the page (shown once, stored
//! hashed, listed, revoked, expiring), `GET /v1/models` and `POST /v1/chat/completions` whole and
//! streamed in OpenAI's shapes, refusals in OpenAI's error shape (bad, revoked and expired keys,
//! budgets, rate), a disconnect closing the provider request, no cookies on `/v1` and CORS only
//! for the configured origins,
//! keys never in the log, and OpenAI's own Python SDK against it. Runs on either engine
//! (`RILL_TEST_ENGINE=postgres`).

use std::process::Stdio;
use std::time::Duration;

use fake_provider::{expected_text, FakeConfig};
use futures::StreamExt;
use rill::server::config::{AccessSettings, ApiCors, LimitSettings};
use rill::server::db;
use serde_json::{json, Value};

use crate::lifecycle::Server;
use crate::support::*;

const MODEL: &str = "fake/fake-model";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Makes a key through the page's server function (single-user mode); returns the key and its
/// id.
async fn make_key(
    app: &TestApp,
    name: &str,
    budget: Option<f64>,
    days: Option<u32>,
) -> (String, String) {
    let response = app
        .post_json(
            "create_api_key",
            json!({"key": {"name": name, "monthly_budget_usd": budget, "expires_in_days": days}}),
        )
        .await;
    assert_eq!(response.status(), 200, "the key is made");
    let made: Value = response.json().await.expect("json");
    (
        made["key"].as_str().expect("the key").to_owned(),
        made["view"]["id"].as_str().expect("its id").to_owned(),
    )
}

async fn keys(app: &TestApp) -> Vec<Value> {
    let response = app.post_json("list_api_keys", json!({})).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn chat(messages: Value) -> Value {
    json!({"model": MODEL, "messages": messages})
}

async fn complete(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("the request reaches the app")
}

/// The status and the `error` object of an OpenAI-shaped refusal.
async fn refusal(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error");
    let error = body["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(
            error.get(field).is_some(),
            "OpenAI's error shape has `{field}`: {body}"
        );
    }
    (status, error)
}

/// The `data:` payloads of a server-sent event stream, in order.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_key_is_shown_once_stored_as_its_hash_and_listed_without_it() {
    let app = TestApp::start(FakeConfig::default()).await;
    let (key, id) = make_key(&app, "nightly report", Some(2.5), Some(30)).await;
    assert!(key.starts_with("rill_") && key.len() == 69, "{key}");
    let listed = keys(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["name"], "nightly report");
    assert_eq!(listed[0]["monthly_budget_usd"], 2.5);
    assert_eq!(listed[0]["prefix"], &key[..13]);
    assert!(listed[0]["last_used_at"].is_null());
    assert!(
        !listed[0].to_string().contains(&key[13..]),
        "the list never holds the key"
    );
    // Stored as its SHA-256: found by the hash, and the key is in no column.
    let digest = rill::server::sessions::token_digest(&key);
    let stored = db::api_keys::key_by_hash(&app.state.db, &digest)
        .await
        .expect("read")
        .expect("found by its hash");
    assert_eq!(stored.name, "nightly report");
    // The key itself is not what is stored: looked up as if it were a hash, nothing is found.
    assert_eq!(
        db::api_keys::key_by_hash(&app.state.db, &key)
            .await
            .expect("read"),
        None
    );
    // Names and limits are checked in words.
    for (body, words) in [
        (json!({"name": "  "}), "name"),
        (json!({"name": "x", "monthly_budget_usd": -1.0}), "budget"),
        (json!({"name": "x", "expires_in_days": 0}), "day"),
        (json!({"name": "x", "expires_in_days": 100000}), "days"),
    ] {
        let response = app.post_json("create_api_key", json!({"key": body})).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(response.text().await.expect("text").contains(words));
    }
}

#[tokio::test]
async fn models_lists_the_catalog_in_openai_shape() {
    let app = TestApp::start(FakeConfig::default()).await;
    let (key, _) = make_key(&app, "tools", None, None).await;
    let response = app
        .http
        .get(format!("{}/v1/models", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.expect("json");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            m["id"].as_str().expect("id")
        })
        .collect();
    for id in [MODEL, "claude/claude-fake", "gemini/gemini-fake"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let one = app
        .http
        .get(format!("{}/v1/models/{MODEL}", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.expect("json")["id"], MODEL);
    let missing = app
        .http
        .get(format!("{}/v1/models/nope/none", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    let (status, error) = refusal(missing).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("model_not_found"))
    );
}

#[tokio::test]
async fn a_whole_completion_answers_in_openai_shape_and_is_billed_to_the_key() {
    let app = TestApp::start(FakeConfig {
        tokens: 12,
        ..FakeConfig::default()
    })
    .await;
    let (key, id) = make_key(&app, "batch job", None, None).await;
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
    });
    let response = complete(&app, &key, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["id"].as_str().expect("id").starts_with("chatcmpl-"));
    assert_eq!(answer["model"], MODEL);
    assert_eq!(answer["choices"][0]["index"], 0);
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        expected_text(12)
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let usage = &answer["usage"];
    assert!(usage["completion_tokens"].as_u64().expect("completion") > 0);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().expect("prompt")
                + usage["completion_tokens"].as_u64().expect("c")
        )
    );
    // What the provider was sent: the system text in its place, the question, the cap.
    let sent = app.fake.requests().pop().expect("one request");
    assert_eq!(
        sent["max_tokens"]
            .as_u64()
            .or(sent["max_completion_tokens"].as_u64()),
        Some(100)
    );
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "Hello");
    // Billed to the person's month, under the key's name, and to the key.
    eventually("the key's month counts it", || async {
        keys(&app).await[0]["month_spent_usd"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    })
    .await;
    let listed = keys(&app).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(
        listed[0]["last_used_at"].as_i64().is_some(),
        "last use noted"
    );
    let report: Value = app
        .post_json("monthly_usage", json!({"user_id": null}))
        .await
        .json()
        .await
        .expect("report");
    let rows = report["rows"].as_array().expect("rows");
    assert!(
        rows.iter()
            .any(|r| r["api_key"] == "batch job" && r["model"] == MODEL && r["replies"] == 1),
        "{report}"
    );
    let csv = app
        .http
        .get(format!("{}/usage.csv", app.base_url))
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("text");
    assert!(
        csv.lines().nth(1).expect("a run").ends_with(",batch job"),
        "{csv}"
    );
}

#[tokio::test]
async fn a_streamed_completion_sends_chunks_then_usage_then_done() {
    let app = TestApp::start(FakeConfig {
        tokens: 6,
        split_bytes: Some(7),
        ..FakeConfig::default()
    })
    .await;
    let (key, _) = make_key(&app, "stream", None, None).await;
    let mut body = chat(json!([{"role": "user", "content": "Hello"}]));
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = complete(&app, &key, &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/event-stream"));
    let all = events(&response.text().await.expect("body"));
    assert_eq!(all.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = all[..all.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).expect("a JSON chunk"))
        .collect();
    let id = chunks[0]["id"].clone();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == id));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, expected_text(6));
    let (last, before) = chunks.split_last().expect("chunks");
    assert_eq!(last["choices"], json!([]), "the usage chunk has no choices");
    assert!(last["usage"]["total_tokens"].as_u64().expect("usage") > 0);
    assert!(
        before.iter().all(|c| c["usage"].is_null()),
        "usage is null on the others"
    );
    assert_eq!(
        before.last().expect("finish")["choices"][0]["finish_reason"],
        "stop"
    );

    // Without include_usage, no chunk carries a usage field.
    body["stream_options"] = json!(null);
    let response = complete(&app, &key, &body).await;
    let all = events(&response.text().await.expect("body"));
    assert_eq!(all.last().map(String::as_str), Some("[DONE]"));
    for data in &all[..all.len() - 1] {
        let chunk: Value = serde_json::from_str(data).expect("chunk");
        assert!(chunk.get("usage").is_none(), "{chunk}");
    }
}

#[tokio::test]
async fn bad_revoked_and_expired_keys_and_cookies_are_refused_in_openai_shape() {
    let clock = TestClock::at(1_800_000_000_000);
    let app = TestApp::with(Setup {
        clock: Some(clock.clone()),
        ..Setup::default()
    })
    .await;
    let body = chat(json!([{"role": "user", "content": "Hello"}]));
    let (key, id) = make_key(&app, "short lived", None, Some(1)).await;
    assert_eq!(complete(&app, &key, &body).await.status(), 200);

    // No key, another scheme, a malformed key, a well-formed unknown one.
    let bare = app
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .json(&body)
        .send()
        .await
        .expect("request");
    let (status, error) = refusal(bare).await;
    assert_eq!(status, 401);
    assert!(error["message"].as_str().expect("words").contains("Bearer"));
    let basic = app
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .basic_auth("user", Some(&key))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(refusal(basic).await.0, 401);
    for bad in [
        "sk-nope",
        &format!("rill_{}", "0".repeat(64)),
        &key.to_uppercase(),
    ] {
        let (status, error) = refusal(complete(&app, bad, &body).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{bad}"
        );
        assert!(error["message"]
            .as_str()
            .expect("words")
            .contains("not valid"));
        assert!(
            !error.to_string().contains(bad),
            "a key is never echoed back"
        );
    }

    // Expired a day after it was made.
    clock.set(1_800_000_000_000 + DAY_MS);
    let (status, error) = refusal(complete(&app, &key, &body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    assert!(error["message"]
        .as_str()
        .expect("words")
        .contains("expired"));

    // Revoked: refused from the next request, and gone from the list.
    let (other, other_id) = make_key(&app, "revoked soon", None, None).await;
    assert_eq!(complete(&app, &other, &body).await.status(), 200);
    let revoke = app
        .post_json("revoke_api_key", json!({"id": other_id}))
        .await;
    assert_eq!(revoke.status(), 200);
    let (status, error) = refusal(complete(&app, &other, &body).await).await;
    assert_eq!(status, 401);
    assert!(error["message"]
        .as_str()
        .expect("words")
        .contains("revoked"));
    assert!(keys(&app)
        .await
        .iter()
        .all(|k| k["id"] != other_id.as_str()));
    assert_eq!(
        app.post_json("revoke_api_key", json!({"id": other_id}))
            .await
            .status(),
        404
    );
    assert!(keys(&app).await.iter().any(|k| k["id"] == id.as_str()));
}

#[tokio::test]
async fn cookies_do_not_reach_v1_nor_does_another_site_and_no_cors_is_offered() {
    let app = TestApp::with_accounts().await;
    app.add_user("ada", false).await;
    let ada = app.signed_in("ada").await;
    // Ada's browser, with its session cookie, has no key: /v1 does not know it.
    let with_cookie = ada.get("/v1/models").await;
    assert_eq!(with_cookie.status(), 401);
    // Her key works, and acts for her.
    let made: Value = ada
        .post("create_api_key", json!({"key": {"name": "ada's script"}}))
        .await
        .json()
        .await
        .expect("made");
    let key = made["key"].as_str().expect("key").to_owned();
    let body = chat(json!([{"role": "user", "content": "Hello"}]));
    assert_eq!(complete(&app, &key, &body).await.status(), 200);
    // Another person does not see her keys, nor can revoke them.
    app.add_user("bob", false).await;
    let bob = app.signed_in("bob").await;
    let listed: Value = bob
        .post("list_api_keys", json!({}))
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed, json!([]));
    let revoke = bob
        .post("revoke_api_key", json!({"id": made["view"]["id"]}))
        .await;
    assert_eq!(revoke.status(), 404);
    // A page on another site: its write is refused, and a preflight gets no CORS grant.
    let cross = app
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(&key)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(cross.status(), 403);
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", app.base_url),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("request");
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // A disabled account's keys stop working.
    let ada_id = db::accounts::user_by_name(&app.state.db, "ada")
        .await
        .expect("read")
        .expect("ada")
        .id;
    db::accounts::set_disabled(&app.state.db, &ada_id, true)
        .await
        .expect("disabled");
    let (status, error) = refusal(complete(&app, &key, &body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("account_disabled"))
    );
}

#[tokio::test]
async fn budgets_hold_before_any_provider_request_and_say_which() {
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    let ada_id = app.add_user("ada", false).await;
    let ada = app.signed_in("ada").await;
    let make = |budget: Option<f64>| {
        let ada = &ada;
        async move {
            let made: Value = ada
                .post(
                    "create_api_key",
                    json!({"key": {"name": "capped", "monthly_budget_usd": budget}}),
                )
                .await
                .json()
                .await
                .expect("made");
            made["key"].as_str().expect("key").to_owned()
        }
    };
    let body = chat(json!([{"role": "user", "content": "Hello"}]));
    // The key's own budget: far below one request's worst case.
    let capped = make(Some(0.000_001)).await;
    let (status, error) = refusal(complete(&app, &capped, &body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("insufficient_quota"))
    );
    assert_eq!(error["type"], "insufficient_quota");
    assert!(error["message"]
        .as_str()
        .expect("words")
        .contains("API key's"));
    assert!(app.fake.requests().is_empty(), "no provider request");
    // The person's budget holds for every key of hers.
    let free = make(None).await;
    assert_eq!(complete(&app, &free, &body).await.status(), 200);
    db::accounts::set_budget(&app.state.db, &ada_id, Some(0.000_001))
        .await
        .expect("budget");
    let before = app.fake.requests().len();
    let (status, error) = refusal(complete(&app, &free, &body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("insufficient_quota"))
    );
    assert!(error["message"]
        .as_str()
        .expect("words")
        .contains("your budget"));
    assert_eq!(app.fake.requests().len(), before, "no provider request");
}

#[tokio::test]
async fn completions_are_rate_limited_like_turns() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            turns_per_minute: 2,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let (key, _) = make_key(&app, "busy", None, None).await;
    let body = chat(json!([{"role": "user", "content": "Hello"}]));
    assert_eq!(complete(&app, &key, &body).await.status(), 200);
    // The page's turns and the API's completions share the person's rate.
    let turn = app.turn(None, "from the page").await;
    assert!(!turn.is_empty());
    let response = complete(&app, &key, &body).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, error) = refusal(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
}

#[tokio::test]
async fn a_client_that_disconnects_closes_the_provider_request_and_is_billed_what_it_used() {
    let app = TestApp::start(FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    let (key, _) = make_key(&app, "impatient", None, None).await;
    let mut body = chat(json!([{"role": "user", "content": "Tell me a long story"}]));
    body["stream"] = json!(true);
    let response = complete(&app, &key, &body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut seen = 0;
    while seen < 5 {
        let piece = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a piece in time")
            .expect("the stream goes on")
            .expect("bytes");
        seen += String::from_utf8_lossy(&piece).matches("data: ").count();
    }
    drop(stream);
    // Generous bound: this checks that the upstream closes, not how fast.
    let disconnect = app
        .fake
        .wait_for_disconnect(Duration::from_secs(2))
        .await
        .expect("the provider saw the request go");
    assert!(disconnect.tokens_sent < 2_000);
    // Settled at an estimate of what was used, under the key.
    eventually("the run is settled", || async {
        let report: Value = app
            .post_json("monthly_usage", json!({"user_id": null}))
            .await
            .json()
            .await
            .expect("report");
        report["rows"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["api_key"] == "impatient"
                    && r["estimated"] == true
                    && r["output_tokens"].as_u64() > Some(0)
            })
        })
    })
    .await;
}

#[tokio::test]
async fn requests_the_api_cannot_serve_are_refused_in_words() {
    let app = TestApp::start(FakeConfig {
        context_tokens: Some(4_096),
        ..FakeConfig::default()
    })
    .await;
    let (key, _) = make_key(&app, "odd", None, None).await;
    let cases = [
        (
            json!({"model": "nope/none", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "model",
        ),
        (json!({"model": MODEL, "messages": []}), 400, "messages"),
        (
            json!({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}),
            400,
            "messages",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 2}),
            400,
            "n",
        ),
        (json!({"model": MODEL}), 400, "request body"),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(40_000)}]}),
            400,
            "messages",
        ),
    ];
    for (body, status, words) in cases {
        let (got, error) = refusal(complete(&app, &key, &body).await).await;
        assert_eq!(got, status, "{error}");
        let said = format!("{} {}", error["message"], error["param"]);
        assert!(said.contains(words), "{said}");
    }
    assert!(app.fake.requests().is_empty(), "none reached the provider");
}

/// The built-in local model answers through `/v1` like any other (it needs
/// scripts/fetch-model.sh).
#[tokio::test]
async fn the_built_in_local_model_answers_through_the_api() {
    let app = TestApp::start_local().await;
    let (key, _) = make_key(&app, "local", None, None).await;
    let list: Value = app
        .http
        .get(format!("{}/v1/models", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let id = list["data"][0]["id"]
        .as_str()
        .expect("the local model")
        .to_owned();
    let body =
        json!({"model": id, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8});
    let answer: Value = complete(&app, &key, &body)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
            .is_empty(),
        "{answer}"
    );
    assert!(
        answer["usage"]["completion_tokens"]
            .as_u64()
            .expect("usage")
            <= 8
    );
}

/// OpenAI's own Python SDK, unchanged but for the base URL and key (installed by
/// scripts/install-tools.sh, or found at `RILL_OPENAI_PYTHON`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openais_python_sdk_works_against_rill_whole_and_streamed() {
    let python = std::env::var("RILL_OPENAI_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/rill/openai-sdk/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "OpenAI's Python SDK is not installed at {python}: run scripts/install-tools.sh"
    );
    let app = TestApp::start(FakeConfig {
        tokens: 9,
        ..FakeConfig::default()
    })
    .await;
    let (key, _) = make_key(&app, "python", None, None).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/openai_sdk.py"
    );
    let base = format!("{}/v1", app.base_url);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .args([script, &base, &key, MODEL])
            .output(),
    )
    .await
    .expect("the SDK finishes in time")
    .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    assert!(seen["models"]
        .as_array()
        .expect("models")
        .contains(&json!(MODEL)));
    assert_eq!(seen["whole"]["text"], expected_text(9));
    assert_eq!(seen["whole"]["finish"], "stop");
    assert_eq!(seen["whole"]["object"], "chat.completion");
    assert!(seen["whole"]["total_tokens"].as_u64() > Some(0));
    assert_eq!(seen["stream"]["text"], expected_text(9));
    assert_eq!(seen["stream"]["finish"], "stop");
    assert!(seen["stream"]["total_tokens"].as_u64() > Some(0));
    assert_eq!(
        seen["refused"],
        json!({"status": 401, "code": "invalid_api_key"})
    );
}

/// With the debug log of the real binary, a key appears nowhere in it: not when it
/// is made, used, refused or revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_never_logged() {
    let fake = fake_provider::FakeProvider::start(FakeConfig::default())
        .await
        .expect("fake starts");
    let dir = private_dir();
    let log_path = dir.path().join("rill.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let server = Server::start_logging(
        &dir.path().join("rill.db"),
        &fake,
        1,
        &[("RUST_LOG", "debug")],
        Stdio::from(log),
    )
    .await;
    let http = reqwest::Client::new();
    let made: Value = http
        .post(format!("{}/api/create_api_key", server.base_url))
        .json(&json!({"key": {"name": "logged?"}}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("made");
    let key = made["key"].as_str().expect("key").to_owned();
    let body = chat(json!([{"role": "user", "content": "Hello"}]));
    for presented in [key.clone(), format!("{key}x")] {
        let _ = http
            .post(format!("{}/v1/chat/completions", server.base_url))
            .bearer_auth(&presented)
            .json(&body)
            .send()
            .await
            .expect("request")
            .text()
            .await;
    }
    let _ = http
        .post(format!("{}/api/revoke_api_key", server.base_url))
        .json(&json!({"id": made["view"]["id"]}))
        .send()
        .await
        .expect("request");
    drop(server);
    let logged = std::fs::read_to_string(&log_path).expect("the log");
    assert!(logged.contains("API key made"), "the log was written");
    let secret = &key["rill_".len()..];
    assert!(!logged.contains(secret), "the key is in the log");
    assert!(
        !logged.contains(&secret[8..40]),
        "part of the key is in the log"
    );
}

/// A preflight for `POST /v1/chat/completions` from a page at `origin`.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", app.base_url),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("request")
}

/// A completion asked for by a page at `origin`, as a browser sends it.
async fn complete_from(app: &TestApp, key: &str, origin: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(key)
        .header("origin", origin)
        .header("sec-fetch-site", "cross-site")
        .json(&chat(json!([{"role": "user", "content": "Hello"}])))
        .send()
        .await
        .expect("request")
}

fn allowed_origin(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn pages_of_the_configured_origins_may_call_v1_and_no_other_site() {
    let tools = "https://tools.example.com";
    let app = TestApp::with(Setup {
        access: AccessSettings {
            api_cors: ApiCors::Origins(vec![tools.to_owned()]),
            ..AccessSettings::default()
        },
        ..Setup::default()
    })
    .await;
    let (key, _) = make_key(&app, "tools page", None, None).await;
    // The tools page's preflight is granted, with the key's header, and never credentials.
    let granted = preflight(&app, tools).await;
    assert!(granted.status().is_success(), "{}", granted.status());
    assert_eq!(allowed_origin(&granted), Some(tools));
    let headers = granted
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(granted
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    // Its request is answered, readable by the page.
    let answered = complete_from(&app, &key, tools).await;
    assert_eq!(answered.status(), 200);
    assert_eq!(allowed_origin(&answered), Some(tools));
    assert_eq!(
        answered
            .headers()
            .get("x-content-type-options")
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "the guard's headers as everywhere"
    );
    // Another site: no grant, and its write is refused before any provider request.
    let requests = app.fake.requests().len();
    let other = "https://evil.example";
    assert_eq!(allowed_origin(&preflight(&app, other).await), None);
    let refused = complete_from(&app, &key, other).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(allowed_origin(&refused), None);
    assert_eq!(app.fake.requests().len(), requests);
    // The page's own routes take no cross-site writes from the tools page either.
    let page_write = app
        .http
        .post(format!("{}/api/list_conversations", app.base_url))
        .header("origin", tools)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(page_write.status(), 403);
    assert_eq!(allowed_origin(&page_write), None);
}

#[tokio::test]
async fn any_origin_may_call_v1_when_the_operator_says_so() {
    let app = TestApp::with(Setup {
        access: AccessSettings {
            api_cors: ApiCors::AnyOrigin,
            ..AccessSettings::default()
        },
        ..Setup::default()
    })
    .await;
    let (key, _) = make_key(&app, "anywhere", None, None).await;
    let site = "https://anywhere.example:8443";
    assert_eq!(allowed_origin(&preflight(&app, site).await), Some("*"));
    let answered = complete_from(&app, &key, site).await;
    assert_eq!(answered.status(), 200);
    assert_eq!(allowed_origin(&answered), Some("*"));
    // A key is still needed: CORS lets a page read answers, not spend without one.
    let (status, error) = refusal(complete_from(&app, "", site).await).await;
    assert_eq!(status, 401, "{error}");
}

/// 30 requests at once through a key whose budget holds about four requests' worst case: some
/// are answered, the rest refused before any provider request, and the key never spends past
/// its budget (each reservation is checked against the others in the one write transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_one_key_never_spends_past_its_budget() {
    let app = TestApp::with(Setup {
        limits: Some(generous_limits()),
        ..Setup::default()
    })
    .await;
    let budget = 0.001;
    let (key, _) = make_key(&app, "burst", Some(budget), None).await;
    // At most 100 tokens: about $0.0002 reserved per request at the fake's prices.
    let body = json!({"model": MODEL, "max_tokens": 100,
                      "messages": [{"role": "user", "content": "Hello"}]});
    let answers = futures::future::join_all((0..30).map(|_| complete(&app, &key, &body))).await;
    let mut answered = 0;
    let mut refused = 0;
    for answer in answers {
        match answer.status().as_u16() {
            200 => answered += 1,
            _ => {
                let (status, error) = refusal(answer).await;
                assert_eq!(
                    (status, error["code"].as_str()),
                    (429, Some("insufficient_quota")),
                    "{error}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        answered >= 1 && refused >= 1,
        "{answered} answered, {refused} refused"
    );
    assert_eq!(
        app.fake.requests().len(),
        answered,
        "no provider request for a refusal"
    );
    let spent = keys(&app).await[0]["month_spent_usd"]
        .as_f64()
        .expect("spent");
    assert!(spent > 0.0 && spent <= budget, "spent {spent} of {budget}");
    println!("{answered} answered, {refused} refused, ${spent} of ${budget} spent");
}
