//! The operator's surface: health and readiness (false from the first moment of a drain),
//! Prometheus metrics and who may read them, the site's files precompressed and cached for a
//! year under hashed names, compressed pages but never a compressed event stream, and an online
//! backup of the database.

use std::time::Duration;

use fake_provider::FakeConfig;
use rill::model::MessageStatus;
use rill::server::config::OpsSettings;
use rill::server::{db, http};
use serde_json::json;
use uuid::Uuid;

use crate::support::{accounts_mode, finished, Setup, TestApp};

const TOKEN: &str = "metrics-token-for-the-tests";

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request reaches the app")
}

#[tokio::test]
async fn health_answers_and_readiness_is_false_from_the_first_moment_of_a_drain() {
    let app = TestApp::start(FakeConfig::default()).await;
    let health = get(&format!("{}/healthz", app.base_url), &[]).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok\n");
    let ready = get(&format!("{}/readyz", app.base_url), &[]).await;
    assert_eq!(ready.status(), 200);

    app.state.turns.drain(Duration::ZERO).await;
    let ready = get(&format!("{}/readyz", app.base_url), &[]).await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.text().await.expect("body"), "draining\n");
    let health = get(&format!("{}/healthz", app.base_url), &[]).await;
    assert_eq!(health.status(), 200, "alive while draining");
}

/// The sum of the samples whose line starts with `name{` (or `name `) and holds every label given.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_turns_tokens_cost_and_latency_for_admins_and_the_token_only() {
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        ops: OpsSettings {
            metrics_token: Some(TOKEN.into()),
            ..OpsSettings::default()
        },
        ..Setup::default()
    })
    .await;
    app.add_user("root", true).await;
    app.add_user("ann", false).await;
    let url = format!("{}/metrics", app.base_url);

    let anonymous = get(&url, &[]).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .expect("ascii"),
        "Bearer"
    );
    let wrong = get(&url, &[("authorization", "Bearer not-the-token-at-all")]).await;
    assert_eq!(wrong.status(), 401);
    let ann = app.signed_in("ann").await;
    assert_eq!(
        ann.get("/metrics").await.status(),
        401,
        "not for non-admins"
    );

    // The recorder is the process's: other tests' turns add to the same series, so compare.
    let bearer = format!("Bearer {TOKEN}");
    let read = || async {
        let response = get(&url, &[("authorization", bearer.as_str())]).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4"));
        response.text().await.expect("body")
    };
    let model = [r#"provider="fake""#, r#"model="fake-model""#];
    let before = read().await;
    let events = ann.turn(None, "count me").await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    let after = read().await;

    let started = "rill_turns_started_total";
    assert!(sample(&after, started, &model) >= sample(&before, started, &model) + 1.0);
    let complete = [model[0], model[1], r#"status="complete""#];
    let ended = "rill_turns_finished_total";
    assert!(sample(&after, ended, &complete) >= sample(&before, ended, &complete) + 1.0);
    let output = [model[0], model[1], r#"kind="output""#];
    assert!(
        sample(&after, "rill_tokens_total", &output)
            > sample(&before, "rill_tokens_total", &output)
    );
    assert!(
        sample(&after, "rill_cost_microusd_total", &model)
            > sample(&before, "rill_cost_microusd_total", &model)
    );
    for histogram in [
        "rill_time_to_first_token_seconds_count",
        "rill_reply_duration_seconds_count",
    ] {
        assert!(
            sample(&after, histogram, &[model[0]]) > sample(&before, histogram, &[model[0]]),
            "{histogram}"
        );
    }
    assert!(after.contains("rill_time_to_first_token_seconds_bucket{"));
    assert!(after.contains("\nrill_replies_streaming "));
    assert!(after.contains("\nrill_local_model_queue_depth 0"));

    let any_case = get(&url, &[("authorization", &format!("bearer  {TOKEN} "))]).await;
    assert_eq!(any_case.status(), 200, "the scheme is case-insensitive");

    let root = app.signed_in("root").await;
    let as_admin = root.get("/metrics").await;
    assert_eq!(
        as_admin.status(),
        200,
        "admins read metrics with their session"
    );
}

#[tokio::test]
async fn provider_failures_are_counted_by_kind() {
    let app = TestApp::start(FakeConfig {
        fail_status: Some(401),
        ..FakeConfig::default()
    })
    .await;
    let url = format!("{}/metrics", app.base_url);
    // The model list fails too, so the turn goes to whichever provider is left: any provider.
    let labels = [r#"kind="unauthorized""#];
    let before = get(&url, &[]).await.text().await.expect("body");
    let events = app.turn(None, "with a revoked key").await;
    assert_eq!(finished(&events).status, MessageStatus::Failed);
    // Single-user mode: the owner on loopback is the admin.
    let after = get(&url, &[]).await.text().await.expect("body");
    assert!(
        sample(&after, "rill_provider_errors_total", &labels)
            >= sample(&before, "rill_provider_errors_total", &labels) + 1.0
    );
}

/// A site directory like `cargo leptos build --release --precompress` leaves, with hashed names.
fn hashed_site() -> tempfile::TempDir {
    let site = tempfile::tempdir().expect("temp dir");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg dir");
    for (name, body) in [
        ("rill.l5erbZPiJa6CHD1v9808Fg.wasm", "plain wasm"),
        ("rill.l5erbZPiJa6CHD1v9808Fg.wasm.br", "brotli wasm"),
        ("rill.l5erbZPiJa6CHD1v9808Fg.wasm.gz", "gzip wasm"),
        ("rill.js", "unhashed"),
    ] {
        std::fs::write(pkg.join(name), body).expect("write");
    }
    site
}

#[tokio::test]
async fn site_files_are_served_precompressed_and_cached_for_a_year_under_hashed_names() {
    let app = TestApp::start(FakeConfig::default()).await;
    let site = hashed_site();
    let base = serve_site(&app, site.path()).await;
    let wasm = format!("{base}/pkg/rill.l5erbZPiJa6CHD1v9808Fg.wasm");

    for (accepts, encoding, body) in [
        ("br, gzip", Some("br"), "brotli wasm"),
        ("gzip", Some("gzip"), "gzip wasm"),
        ("identity", None, "plain wasm"),
    ] {
        let response = get(&wasm, &[("accept-encoding", accepts)]).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(
            headers
                .get("content-encoding")
                .map(|v| v.to_str().expect("ascii")),
            encoding,
            "for {accepts}"
        );
        assert_eq!(headers["content-type"], "application/wasm");
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(headers["vary"]
            .to_str()
            .expect("ascii")
            .contains("accept-encoding"));
        assert_eq!(response.text().await.expect("body"), body);
    }
    let unhashed = get(&format!("{base}/pkg/rill.js"), &[]).await;
    assert_eq!(unhashed.status(), 200);
    assert_eq!(
        unhashed.headers()["cache-control"],
        "no-cache",
        "a name without the hash may change"
    );
    let missing = get(&format!("{base}/pkg/rill.ffffffffffffffffffffff.wasm"), &[]).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["cache-control"],
        "no-cache",
        "a missing file is never kept"
    );
}

/// What installs the app (the manifest, its icons, the service worker) reaches a browser that is
/// not signed in (a manifest is fetched without cookies); the worker may fetch the site's own
/// files and is never kept, so a new version of it is taken up at the next visit; the manifest,
/// fetched with every page, is kept for a day rather than sent again.
#[tokio::test]
async fn the_manifest_icons_and_service_worker_are_public_and_the_worker_is_not_kept() {
    let app = TestApp::with_accounts().await;
    let site = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(site.path().join("icons")).expect("icons dir");
    for (name, body) in [
        ("sw.js", "self.addEventListener('fetch', () => {});"),
        ("manifest.webmanifest", r#"{"name":"Rill"}"#),
        ("icons/icon-192.png", "png"),
    ] {
        std::fs::write(site.path().join(name), body).expect("write");
    }
    let base = serve_site(&app, site.path()).await;

    let worker = get(&format!("{base}/sw.js"), &[]).await;
    assert_eq!(worker.status(), 200, "no sign-in needed");
    let headers = worker.headers();
    assert!(headers["content-type"]
        .to_str()
        .expect("ascii")
        .contains("javascript"));
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; connect-src 'self'"
    );
    // The manifest and its icons come with every page: kept by the browser for a day.
    let manifest = get(&format!("{base}/manifest.webmanifest"), &[]).await;
    assert_eq!(manifest.status(), 200);
    let headers = manifest.headers();
    assert_eq!(headers["content-type"], "application/manifest+json");
    assert_eq!(headers["cache-control"], "public, max-age=86400");
    let icon = get(&format!("{base}/icons/icon-192.png"), &[]).await;
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/png");
    assert_eq!(icon.headers()["cache-control"], "public, max-age=86400");
    // Everything else still asks who is there.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{base}/"))
        .send()
        .await
        .expect("request reaches the app");
    assert_eq!(page.status(), 303);
}

#[tokio::test]
async fn pages_are_compressed_and_event_streams_never_are() {
    let app = TestApp::start(FakeConfig::default()).await;
    let page = get(
        &format!("{}/", app.base_url),
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-encoding"], "br");
    assert_eq!(page.headers()["cache-control"], "no-store");

    let stream = reqwest::Client::new()
        .post(format!("{}/api/send_message", app.base_url))
        .header("accept-encoding", "br, gzip")
        .json(&json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "hi", "model": null}))
        .send()
        .await
        .expect("reaches the app");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers().get("content-encoding").is_none());
    let events = crate::support::EventReader::new(stream).read_to_end().await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
}

#[tokio::test]
async fn a_backup_taken_while_serving_holds_every_conversation() {
    let app = TestApp::start(FakeConfig::default()).await;
    let events = app.turn(None, "keep this").await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("copy.db");

    db::backup(&app.state.config.database, &copy)
        .await
        .expect("backup");
    let restored = db::connect(&rill::server::config::Database::Sqlite(copy.clone()))
        .await
        .expect("the copy opens");
    let owner = db::Owner("local".into());
    let conversations = db::list_conversations(&restored, &owner, None)
        .await
        .expect("list");
    assert_eq!(conversations.len(), 1);
    let view = db::get_conversation(&restored, &owner, conversations[0].id, None)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(view.messages.len(), 2);
    assert_eq!(view.messages[0].content, "keep this");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner may read the copy");
    }
    let again = db::backup(&app.state.config.database, &copy).await;
    let message = again.expect_err("never overwrites").to_string();
    assert!(message.contains("already exists"), "{message}");
}

/// Serves the app with `site` as its site root (hashed file names, as a release serves them);
/// returns its base URL.
async fn serve_site(app: &TestApp, site: &std::path::Path) -> String {
    let options = leptos::config::LeptosOptions::builder()
        .output_name("rill")
        .site_root(site.to_string_lossy().into_owned())
        .hash_files(true)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(http::serve_until(
        listener,
        app.state.clone(),
        options,
        std::future::pending(),
    ));
    base
}
