//! The web surface in the default single-user mode: other sites and hosts are kept out, bodies
//! are bounded, and every response carries the security headers.

use fake_provider::FakeConfig;
use serde_json::json;
use uuid::Uuid;

use crate::support::{conversation_of, TestApp};

fn send_body() -> String {
    json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Hi", "model": null})
        .to_string()
}

#[tokio::test]
async fn a_foreign_host_is_refused_which_ends_dns_rebinding() {
    let app = TestApp::start(FakeConfig::default()).await;
    let port = app.base_url.rsplit(':').next().expect("port").to_owned();
    for (host, status) in [
        (format!("evil.example:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
    ] {
        let response = app
            .http
            .get(format!("{}/", app.base_url))
            .header("host", &host)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), status, "{host}");
    }
    // A rebinding page would read the API the same way: refused before any data.
    let response = app
        .http
        .post(format!("{}/api/list_conversations", app.base_url))
        .header("host", format!("attacker.example:{port}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 421);
}

#[tokio::test]
async fn server_functions_take_json_only_so_no_cross_site_form_can_start_a_turn() {
    let app = TestApp::start(FakeConfig::default()).await;
    // What a `<form enctype=text/plain>` or a no-cors fetch can send.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .http
            .post(format!("{}/api/send_message", app.base_url))
            .header("content-type", content_type)
            .body(send_body())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 415, "{content_type}");
    }
    let response = app
        .http
        .post(format!("{}/api/list_conversations", app.base_url))
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 415, "no content type");
    assert_eq!(app.count("conversations").await, 0);
    assert!(app.fake.requests().is_empty(), "no provider request");
}

#[tokio::test]
async fn state_changing_requests_from_other_sites_are_refused() {
    let app = TestApp::start(FakeConfig::default()).await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut request = app
            .http
            .post(format!("{}/api/send_message", app.base_url))
            .header("content-type", "application/json")
            .body(send_body());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    for headers in [
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
        vec![("origin", "https://evil.example".to_owned())],
        vec![("origin", "null".to_owned())],
    ] {
        let response = post(headers.clone()).await.expect("request");
        assert_eq!(response.status(), 403, "{headers:?}");
    }
    assert_eq!(app.count("conversations").await, 0);
    assert!(app.fake.requests().is_empty(), "no provider request");
    // The page's own requests pass.
    let response = post(vec![
        ("sec-fetch-site", "same-origin".to_owned()),
        ("origin", app.base_url.clone()),
    ])
    .await
    .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::start(FakeConfig::default()).await;
    let huge = "x".repeat(2 << 20);
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": huge, "model": null}),
        )
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(app.count("conversations").await, 0);
}

#[tokio::test]
async fn pages_carry_a_nonce_csp_and_every_answer_the_security_headers() {
    let app = TestApp::start(FakeConfig::default()).await;
    let page = app
        .http
        .get(format!("{}/", app.base_url))
        .send()
        .await
        .expect("page");
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header(&page, "content-security-policy");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(header(&page, name), value, "{name}");
    }
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy")
        .to_owned();
    let html = page.text().await.expect("html");
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the policy's nonce"
    );
    // Every inline script carries it.
    let scripts = html.matches("<script").count();
    let with_nonce = html.matches(&format!("<script nonce=\"{nonce}\"")).count()
        + html.matches("<script type=\"module\" nonce=").count();
    assert!(
        scripts > 0 && with_nonce >= scripts,
        "{scripts} scripts, {with_nonce} with the nonce:\n{html}"
    );
    // A second page gets a new nonce.
    let again = app
        .http
        .get(format!("{}/", app.base_url))
        .send()
        .await
        .expect("page");
    assert_ne!(header(&again, "content-security-policy"), csp);

    let api = app.post_json("list_conversations", json!({})).await;
    assert_eq!(api.status(), 200);
    assert_eq!(header(&api, "cache-control"), "no-store");
    assert_eq!(header(&api, "x-content-type-options"), "nosniff");
    let api_policy = header(&api, "content-security-policy");
    assert!(api_policy.contains("default-src 'none'"), "{api_policy}");
}

#[tokio::test]
async fn a_huge_model_id_is_refused_with_400_and_not_echoed_whole() {
    let app = TestApp::start(FakeConfig::default()).await;
    let huge = "m".repeat(200_000);
    let send = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Hi", "model": huge}),
        )
        .await;
    assert_eq!(send.status(), 400);
    let body = send.text().await.expect("body");
    assert!(body.len() < 1_000, "{} bytes", body.len());
    assert!(body.contains("unknown model mmm"), "{body}");
    let conversation = conversation_of(&app.turn(None, "Hello").await);
    let switch = app
        .post_json(
            "set_conversation_model",
            json!({"id": conversation, "model": huge}),
        )
        .await;
    assert_eq!(switch.status(), 400);
    assert!(switch.text().await.expect("body").len() < 1_000);
}
