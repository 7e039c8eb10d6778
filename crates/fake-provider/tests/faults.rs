//! The fake's faults, seen on the wire and through Rill's provider client (`llm`), which must turn
//! each into the right error without hanging, buffering without bound or following a redirect.

use std::time::Duration;

use fake_provider::{expected_text, FakeConfig, FakeProvider};
use futures::StreamExt;
use llm::anthropic::Anthropic;
use llm::gemini::Gemini;
use llm::openai_compat::OpenAiCompatible;
use llm::{
    ChatMessage, ChatRequest, EventStream, ListedModel, LlmError, Oversized, Provider,
    ProviderEvent, Retry, RetryPolicy, Role, StreamLimits,
};

async fn fake(config: FakeConfig) -> FakeProvider {
    FakeProvider::start(config).await.expect("fake starts")
}

fn limits(idle_ms: u64) -> StreamLimits {
    StreamLimits {
        idle: Duration::from_millis(idle_ms),
        ..StreamLimits::default()
    }
}

/// The same fake through each protocol's client.
fn clients(fake: &FakeProvider, limits: &StreamLimits) -> Vec<(&'static str, Box<dyn Provider>)> {
    let http = llm::http_client();
    vec![
        (
            "openai",
            Box::new(
                OpenAiCompatible::new(http.clone(), &fake.base_url(), Some("sk-test".into()))
                    .with_limits(limits.clone()),
            ),
        ),
        (
            "anthropic",
            Box::new(
                Anthropic::new(http.clone(), &fake.base_url(), "sk-ant".into())
                    .with_limits(limits.clone()),
            ),
        ),
        (
            "gemini",
            Box::new(
                Gemini::new(http, &fake.gemini_base_url(), "g-key".into())
                    .with_limits(limits.clone()),
            ),
        ),
    ]
}

fn openai(fake: &FakeProvider, limits: StreamLimits) -> OpenAiCompatible {
    OpenAiCompatible::new(llm::http_client(), &fake.base_url(), None).with_limits(limits)
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "fake-model".into(),
        system: None,
        messages: vec![ChatMessage::text(Role::User, "hello")],
        max_output_tokens: None,
        thinking_budget: None,
        requester: None,
    }
}

/// Reads text until the first error or the end, bounded in time.
async fn read(stream: &mut EventStream) -> (String, Option<LlmError>) {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Some(event) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("the stream ends in time")
    {
        match event {
            Ok(ProviderEvent::TextDelta(t)) => text.push_str(&t),
            Ok(_) => {}
            Err(e) => return (text, Some(e)),
        }
    }
    (text, None)
}

async fn first_error(provider: &dyn Provider) -> LlmError {
    let (_, error) = read(&mut provider.stream_chat(request())).await;
    error.expect("an error")
}

#[tokio::test]
async fn a_stall_is_an_idle_error_and_the_client_hangs_up() {
    let fake = fake(FakeConfig {
        tokens: 10,
        stall_after: Some(3),
        ..FakeConfig::default()
    })
    .await;
    for (name, client) in clients(&fake, &limits(300)) {
        fake.reset_log();
        let mut stream = client.stream_chat(request());
        let (text, error) = read(&mut stream).await;
        assert_eq!(text, expected_text(3), "{name}");
        assert_eq!(
            error,
            Some(LlmError::Idle {
                after: Duration::from_millis(300)
            }),
            "{name}"
        );
        let gone = fake.wait_for_disconnect(Duration::from_secs(2)).await;
        assert_eq!(gone.map(|d| d.tokens_sent), Some(3), "{name}");
    }
}

#[tokio::test]
async fn keep_alives_keep_a_quiet_stream_alive() {
    let fake = fake(FakeConfig {
        tokens: 10,
        keepalive_after: Some(2),
        keepalive_interval_ms: 40,
        ..FakeConfig::default()
    })
    .await;
    for (name, client) in clients(&fake, &limits(300)) {
        fake.reset_log();
        let mut stream = client.stream_chat(request());
        let mut text = String::new();
        while text != expected_text(2) {
            match stream.next().await {
                Some(Ok(ProviderEvent::TextDelta(t))) => text.push_str(&t),
                Some(Ok(_)) => {}
                other => panic!("{name}: expected text, got {other:?}"),
            }
        }
        // Three idle periods of keep-alives only: no error and no text (Gemini's usage for the
        // last chunk may still come).
        let quiet_until = tokio::time::Instant::now() + Duration::from_millis(900);
        while let Ok(event) = tokio::time::timeout_at(quiet_until, stream.next()).await {
            assert!(
                matches!(event, Some(Ok(ProviderEvent::Usage(_)))),
                "{name}: {event:?}"
            );
        }
        drop(stream);
        let gone = fake.wait_for_disconnect(Duration::from_secs(2)).await;
        assert_eq!(gone.map(|d| d.tokens_sent), Some(2), "{name}");
    }
}

#[tokio::test]
async fn bad_json_mid_stream_is_malformed() {
    let fake = fake(FakeConfig {
        tokens: 10,
        malformed_after: Some(2),
        ..FakeConfig::default()
    })
    .await;
    for (name, client) in clients(&fake, &limits(2000)) {
        let (text, error) = read(&mut client.stream_chat(request())).await;
        assert_eq!(text, expected_text(2), "{name}");
        let error = error.expect("an error");
        assert!(
            matches!(error, LlmError::Malformed { .. }),
            "{name}: {error:?}"
        );
        assert!(
            error.detail().contains("not json"),
            "{name}: {}",
            error.detail()
        );
    }
}

#[tokio::test]
async fn an_endless_line_is_too_large_and_the_client_hangs_up() {
    let fake = fake(FakeConfig {
        tokens: 10,
        endless_line_after: Some(1),
        ..FakeConfig::default()
    })
    .await;
    let limits = StreamLimits {
        max_event_bytes: 256 * 1024,
        ..limits(2000)
    };
    for (name, client) in clients(&fake, &limits) {
        fake.reset_log();
        let (text, error) = read(&mut client.stream_chat(request())).await;
        assert_eq!(text, expected_text(1), "{name}");
        assert!(
            matches!(
                error,
                Some(LlmError::TooLarge {
                    what: Oversized::Event,
                    limit: 262_144,
                    ..
                })
            ),
            "{name}: {error:?}"
        );
        let gone = fake.wait_for_disconnect(Duration::from_secs(2)).await;
        assert_eq!(gone.map(|d| d.tokens_sent), Some(1), "{name}");
    }
}

#[tokio::test]
async fn a_redirect_is_answered_on_the_wire_and_never_followed() {
    let fake = fake(FakeConfig::default()).await;
    // Pointing back at the fake: a client that followed would show up as a second call.
    let location = format!("{}/chat/completions", fake.base_url());
    fake.set_config(FakeConfig {
        redirect_to: Some(location.clone()),
        ..FakeConfig::default()
    });
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = raw
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"model":"m","messages":[]}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 307);
    assert_eq!(
        answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(location.as_str())
    );

    fake.reset_log();
    let error = first_error(&openai(&fake, limits(2000))).await;
    assert!(
        matches!(&error, LlmError::Redirected { status: 307, host: Some(h), .. } if h == "127.0.0.1"),
        "{error:?}"
    );
    assert!(!error.to_string().contains("http"), "{error}");
    assert!(error.detail().contains(&location));
    assert_eq!(fake.calls().len(), 1, "the redirect was not followed");
}

#[tokio::test]
async fn a_huge_error_body_is_cut_and_a_small_one_is_read() {
    let fake = fake(FakeConfig {
        fail_status: Some(500),
        error_body_bytes: Some(4 * 1024 * 1024),
        ..FakeConfig::default()
    })
    .await;
    let body = reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"model":"m","messages":[]}"#)
        .send()
        .await
        .expect("answer")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.len(), 4 * 1024 * 1024);
    assert!(body.starts_with(br#"{"error":{"message":"fake failure 500","#));

    // Read only up to the bound: the status tells what went wrong, the start goes to the log.
    let error = first_error(&openai(&fake, limits(2000))).await;
    assert!(
        matches!(
            error,
            LlmError::Unavailable {
                status: Some(500),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the provider is overloaded or failing (500)"
    );
    assert!(
        error.detail().contains("body cut at 65536 bytes"),
        "{}",
        error.detail()
    );
    assert!(error.detail().contains("fake failure 500"));

    fake.set_config(FakeConfig {
        fail_status: Some(500),
        error_body_bytes: Some(10_000),
        ..FakeConfig::default()
    });
    for (name, client) in clients(&fake, &limits(2000)) {
        let error = first_error(client.as_ref()).await;
        assert_eq!(
            error.to_string(),
            "the provider is overloaded or failing (500): fake failure 500",
            "{name}"
        );
    }
}

#[tokio::test]
async fn retry_headers_reach_the_policy() {
    let policy = RetryPolicy::default();
    let fake = fake(FakeConfig {
        fail_status: Some(429),
        ..FakeConfig::default()
    })
    .await;
    let client = openai(&fake, limits(2000));
    // A 429 says "retry-after: 1" unless told otherwise.
    let error = first_error(&client).await;
    assert_eq!(
        policy.decide(&error, 0),
        Retry::After(Duration::from_secs(1))
    );

    fake.set_config(FakeConfig {
        fail_status: Some(429),
        retry_after: Some("300".into()),
        ..FakeConfig::default()
    });
    let error = first_error(&client).await;
    assert_eq!(policy.decide(&error, 0), Retry::No);
    assert_eq!(
        error.to_string(),
        "rate limited by the provider; try again in about 5 minutes: fake failure 429"
    );

    fake.set_config(FakeConfig {
        fail_status: Some(503),
        retry_after_ms: Some("20".into()),
        should_retry: Some(false),
        ..FakeConfig::default()
    });
    assert_eq!(policy.decide(&first_error(&client).await, 0), Retry::No);

    fake.set_config(FakeConfig {
        fail_status: Some(400),
        retry_after_ms: Some("20".into()),
        should_retry: Some(true),
        ..FakeConfig::default()
    });
    assert_eq!(
        policy.decide(&first_error(&client).await, 0),
        Retry::After(Duration::from_millis(20))
    );

    fake.set_config(FakeConfig {
        fail_status: Some(503),
        retry_after: Some("1e20".into()),
        ..FakeConfig::default()
    });
    let error = first_error(&client).await;
    assert_eq!(policy.decide(&error, 0), Retry::No);
    assert!(
        error.to_string().contains("try again much later"),
        "{error}"
    );
}

#[tokio::test]
async fn fail_times_fails_the_first_requests_then_answers() {
    let config = FakeConfig {
        fail_status: Some(503),
        fail_times: Some(2),
        tokens: 3,
        ..FakeConfig::default()
    };
    let fake = fake(config.clone()).await;
    let client = openai(&fake, limits(2000));
    let policy = RetryPolicy {
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    // The loop a caller runs: two failures, retried, then the reply.
    let mut retries = 0;
    let text = loop {
        match read(&mut client.stream_chat(request())).await {
            (text, None) => break text,
            (_, Some(error)) => match policy.decide(&error, retries) {
                Retry::After(wait) => {
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                Retry::No => panic!("gave up after {retries} retries: {error:?}"),
            },
        }
    };
    assert_eq!((retries, text), (2, expected_text(3)));

    // Setting the config again (here over HTTP) restarts the count.
    let status = reqwest::Client::new()
        .post(format!("http://{}/_fake/config", fake.addr))
        .header("content-type", "application/json")
        .body(r#"{"fail_status": 503, "fail_times": 1}"#)
        .send()
        .await
        .expect("config set")
        .status();
    assert_eq!(status.as_u16(), 204);
    assert!(read(&mut client.stream_chat(request())).await.1.is_some());
    assert!(read(&mut client.stream_chat(request())).await.1.is_none());
}

#[tokio::test]
async fn the_model_list_reports_the_context_window() {
    let fake = fake(FakeConfig {
        context_tokens: Some(32_768),
        ..FakeConfig::default()
    })
    .await;
    let client = openai(&fake, StreamLimits::default());
    assert_eq!(
        client.list_models(Duration::from_secs(3)).await,
        Ok(vec![ListedModel {
            id: "fake-model".into(),
            context_tokens: Some(32_768)
        }])
    );
    fake.set_config(FakeConfig::default());
    let models = client.list_models(Duration::from_secs(3)).await;
    assert_eq!(models.map(|m| m[0].context_tokens), Ok(None));
}

#[tokio::test]
async fn reset_log_forgets_what_was_recorded() {
    let fake = fake(FakeConfig {
        tokens: 2,
        ..FakeConfig::default()
    })
    .await;
    let (text, error) = read(&mut openai(&fake, limits(2000)).stream_chat(request())).await;
    assert_eq!((text, error), (expected_text(2), None));
    assert_eq!(fake.calls().len(), 1);
    let status = reqwest::Client::new()
        .post(format!("http://{}/_fake/reset_log", fake.addr))
        .send()
        .await
        .expect("reset")
        .status();
    assert_eq!(status.as_u16(), 204);
    assert!(fake.calls().is_empty() && fake.requests().is_empty());
    assert_eq!(fake.completed(), 0);
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection_at_once() {
    let fake = fake(FakeConfig {
        tokens: 500,
        token_delay_ms: 20,
        ..FakeConfig::default()
    })
    .await;
    let client = openai(&fake, limits(2000));
    let mut stream = client.stream_chat(request());
    let mut deltas = 0;
    while deltas < 2 {
        if let Some(Ok(ProviderEvent::TextDelta(_))) = stream.next().await {
            deltas += 1;
        }
    }
    drop(stream);
    let gone = fake
        .wait_for_disconnect(Duration::from_millis(500))
        .await
        .expect("the fake saw the client go");
    assert!(gone.tokens_sent < 10, "{gone:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_idle_and_a_closed_port_is_unreachable() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let client = OpenAiCompatible::new(llm::http_client(), &format!("http://{addr}/v1"), None)
        .with_limits(limits(300));
    assert_eq!(
        first_error(&client).await,
        LlmError::Idle {
            after: Duration::from_millis(300)
        }
    );
    holder.abort();

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let client = OpenAiCompatible::new(llm::http_client(), &format!("http://{closed}/v1"), None);
    let error = first_error(&client).await;
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
    assert_eq!(error.to_string(), "could not reach the provider");
    assert!(
        error.detail().contains(&closed.to_string()),
        "{}",
        error.detail()
    );
    let policy = RetryPolicy::default();
    assert!(matches!(policy.decide(&error, 0), Retry::After(_)));
}
