//! Two replicas of Rill on one Postgres database (issue 28): a turn run by one is followed,
//! watched and stopped through the other, and neither ends the other's replies. A replica
//! killed mid-reply is in lifecycle.rs (the real binary, `kill -9`).

use std::time::Duration;

use fake_provider::FakeConfig;
use rill::model::{MessageStatus, StreamLine, TurnEnvelope, TurnEvent};
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// Replica A, storing on a Postgres database of its own, and replica B on the same database.
async fn two_replicas(fake: FakeConfig) -> (TestApp, TestApp) {
    let mut apps = replicas(2, || Setup {
        fake: fake.clone(),
        ..Setup::default()
    })
    .await;
    let b = apps.pop().expect("two");
    let a = apps.pop().expect("two");
    (a, b)
}

/// `n` replicas on one new Postgres database, each set up by `setup` (with its own fake).
async fn replicas(n: usize, setup: impl Fn() -> Setup) -> Vec<TestApp> {
    let first = TestApp::with(Setup {
        postgres: true,
        ..setup()
    })
    .await;
    let database = first.state.config.database.clone();
    let mut apps = vec![first];
    for _ in 1..n {
        apps.push(
            TestApp::with(Setup {
                database: Some(database.clone()),
                ..setup()
            })
            .await,
        );
    }
    apps
}

/// Reads until `n` deltas have come; returns the events read.
async fn until_deltas(reader: &mut EventReader, n: usize) -> Vec<TurnEnvelope> {
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&TurnEnvelope| matches!(e.event, TurnEvent::Delta { .. }))
        .count()
        < n
    {
        events.push(reader.next().await.expect("the turn is still streaming"));
    }
    events
}

#[tokio::test]
async fn a_reply_run_by_one_replica_is_re_attached_and_stopped_through_the_other() {
    let slow = FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..FakeConfig::default()
    };
    let (a, b) = two_replicas(slow).await;
    let turn_id = Uuid::new_v4();
    let mut on_a = EventReader::new(a.send(turn_id, None, "Tell me a long story").await);
    let mut seen_on_a = until_deltas(&mut on_a, 3).await;

    // A page whose connection now lands on B re-attaches there.
    let response = b
        .post_json(
            "turn_events",
            json!({"turn_id": turn_id, "run": 1, "after_seq": 0}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut on_b = EventReader::new(response);
    assert!(matches!(
        on_b.next().await.map(|e| e.event),
        Some(TurnEvent::Started { .. })
    ));
    // The text keeps coming through B: two more pieces after the first.
    let seen_on_b = until_deltas(&mut on_b, 3).await;
    assert!(text_of(&seen_on_b).len() > 3);

    // Stop through B reaches the provider connection A holds.
    let stop = b.stop(turn_id).await;
    assert_eq!(stop.status(), 200);
    let outcome: rill::model::Outcome = stop.json().await.expect("an outcome");
    assert_eq!(outcome.status, MessageStatus::Stopped);
    let disconnect = a
        .fake
        .wait_for_disconnect(Duration::from_secs(5))
        .await
        .expect("the provider saw A's request go");
    assert!(disconnect.tokens_sent < 2_000);

    // Both readers end with the stored reply, whole and stopped.
    while let Some(event) = on_a.next().await {
        seen_on_a.push(event);
    }
    let mut seen_on_b = seen_on_b;
    while let Some(event) = on_b.next().await {
        seen_on_b.push(event);
    }
    let conversation = conversation_of(&seen_on_a);
    let stored = b.stored(conversation).await;
    let reply = &stored.messages[1];
    assert_eq!(reply.outcome.status, MessageStatus::Stopped);
    assert_eq!(finished(&seen_on_a).status, MessageStatus::Stopped);
    assert_eq!(finished(&seen_on_b).status, MessageStatus::Stopped);
    assert_eq!(text_of(&seen_on_a), reply.content);
    assert_eq!(text_of(&seen_on_b), reply.content);
}

#[tokio::test]
async fn a_page_on_one_replica_sees_a_turn_another_replica_runs_live() {
    let (a, b) = two_replicas(FakeConfig {
        tokens: 5,
        ..FakeConfig::default()
    })
    .await;
    let first = a.turn(None, "Hello").await;
    let conversation = conversation_of(&first);
    let first_turn = b.stored(conversation).await.messages[0].turn_id;
    let mut tab_on_b = b.watch(conversation, Some(first_turn)).await;

    a.fake.set_config(FakeConfig {
        tokens: 60,
        token_delay_ms: 20,
        ..FakeConfig::default()
    });
    let turn_id = Uuid::new_v4();
    let sent = a.send(turn_id, Some(conversation), "And again").await;
    let mut on_a = EventReader::new(sent);

    // B's page hears of the turn (from A's signal) while it runs, then reads it to the end.
    let mut announced_streaming = false;
    let mut events = Vec::new();
    loop {
        match tab_on_b
            .next_line_within(Duration::from_secs(10))
            .await
            .expect("B's page hears of the turn A runs")
        {
            StreamLine::Turn { reply, .. } if reply.turn_id == turn_id => {
                announced_streaming = reply.outcome.status == MessageStatus::Streaming;
            }
            StreamLine::Event(event) => {
                let done = matches!(event.event, TurnEvent::Finished(_));
                events.push(event);
                if done {
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(announced_streaming, "announced while A was writing it");
    let deltas = events
        .iter()
        .filter(|e| matches!(e.event, TurnEvent::Delta { .. }))
        .count();
    assert!(
        deltas >= 2,
        "the text came in pieces as A saved it: {deltas}"
    );
    let on_a = {
        let mut all = Vec::new();
        while let Some(event) = on_a.next().await {
            all.push(event);
        }
        all
    };
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    assert_eq!(text_of(&events), text_of(&on_a));
}

#[tokio::test]
async fn a_replica_does_not_end_the_replies_another_living_replica_writes() {
    let (a, b) = two_replicas(FakeConfig {
        tokens: 300,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    let turn_id = Uuid::new_v4();
    let mut on_a = EventReader::new(a.send(turn_id, None, "Take your time").await);
    let seen = until_deltas(&mut on_a, 2).await;
    let conversation = conversation_of(&seen);
    // B reads the conversation, re-attaches and tries to send into it: none of that may mark
    // A's reply interrupted (B's own sweep runs every second meanwhile).
    let stored = b.stored(conversation).await;
    assert_eq!(stored.messages[1].outcome.status, MessageStatus::Streaming);
    let busy = b
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "Me too"}),
        )
        .await;
    assert_eq!(busy.status(), 409, "one reply at a time, across replicas");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut rest = seen;
    while let Some(event) = on_a.next().await {
        rest.push(event);
    }
    assert_eq!(finished(&rest).status, MessageStatus::Complete);
    assert_eq!(
        b.stored(conversation).await.messages[1].outcome.status,
        MessageStatus::Complete
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_through_three_replicas_at_once_stay_within_one_budget() {
    // $2,000 per million output tokens: a reply capped at 100 tokens reserves about $0.20.
    let dear: (String, rill::server::pricing::PriceEntry) = (
        "fake/fake-model".to_owned(),
        rill::model::Price {
            input: 100.0,
            cached_input: None,
            cache_write: None,
            output: 2_000.0,
        }
        .into(),
    );
    let apps = replicas(3, || Setup {
        access: accounts_mode(),
        fake: FakeConfig {
            tokens: 100,
            token_delay_ms: 5,
            ..FakeConfig::default()
        },
        turns: Some(rill::server::config::TurnSettings {
            max_output_tokens: 100,
            ..test_turns()
        }),
        prices: vec![dear.clone()],
        ..Setup::default()
    })
    .await;
    let id = apps[0].add_user("bob", false).await;
    sql("UPDATE users SET monthly_budget_usd = 0.5 WHERE id = $1")
        .bind(&id)
        .execute(&apps[0].state.db)
        .await;
    // One browser; its session (in the shared database) is good on every replica.
    let signed_in = apps[0].signed_in("bob").await;
    let through: Vec<Person> = apps
        .iter()
        .map(|app| Person {
            http: signed_in.http.clone(),
            base_url: app.base_url.clone(),
        })
        .collect();
    // Twenty-four at once, eight through each replica, each a new conversation.
    let sends = (0..24).map(|i| through[i % 3].turn(None, "Spend"));
    let outcomes: Vec<rill::model::Outcome> = futures::future::join_all(sends)
        .await
        .iter()
        .map(|events| finished(events).clone())
        .collect();
    let completed = outcomes
        .iter()
        .filter(|o| o.status == MessageStatus::Complete)
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| {
            o.status == MessageStatus::Failed
                && o.error
                    .as_deref()
                    .is_some_and(|e| e.contains("budget of $0.50"))
        })
        .count();
    let spent: f64 = outcomes.iter().filter_map(|o| o.cost_usd).sum();
    let calls: usize = apps.iter().map(|app| app.fake.calls().len()).sum();
    println!(
        "24 sends through 3 replicas into a $0.50 budget: {completed} answered, {refused} \
         refused, ${spent:.4} spent"
    );
    assert_eq!(completed + refused, 24, "{outcomes:?}");
    assert!(completed >= 1);
    // Each run reserved its worst case before its request, and no two replicas reserved at
    // once: what was spent is within the budget.
    assert!(spent <= 0.5 + 1e-9, "spent ${spent} of a $0.50 budget");
    assert_eq!(calls, completed, "no provider request for a refused send");
}

/// Three replicas of the real binary on one Postgres database, behind nginx balancing them
/// round-robin with no stickiness: one conversation is sent, re-attached and stopped through
/// whichever replica each request lands on, then a burst of sends at once all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_a_round_robin_balancer_serve_as_one() {
    let rill::server::config::Database::Postgres(url) = crate::postgres::fresh_database().await
    else {
        unreachable!("a Postgres database")
    };
    let fake = fake_provider::FakeProvider::start(FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let dir = private_dir();
    let beside = dir.path().join("not-used.db");
    // People are named by the balancer (a trusted proxy, whose connections are not capped as
    // one client's) in a sign-on header, as behind a company's single sign-on.
    let settings = [
        ("RILL_DATABASE", url.as_str()),
        ("RILL_AUTH", "accounts"),
        ("RILL_SSO_HEADER", "X-Remote-User"),
        ("RILL_TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(crate::lifecycle::Server::start_with(&beside, &fake, 5, &settings).await);
    }
    let addresses: Vec<&str> = servers
        .iter()
        .map(|s| s.base_url.trim_start_matches("http://"))
        .collect();
    let nginx_dir = private_dir();
    let balancer = crate::nginx::Nginx::round_robin(nginx_dir.path(), &addresses).await;
    let http = reqwest::Client::new();
    let post_as = |person: String, endpoint: &str, body: serde_json::Value| {
        http.post(format!("{}/api/{endpoint}", balancer.url))
            .header("X-Remote-User", person)
            .json(&body)
            .send()
    };
    let post = |endpoint: &str, body: serde_json::Value| post_as("alice".into(), endpoint, body);

    // Sent through one replica, re-attached through the next, stopped through the third.
    let turn_id = Uuid::new_v4();
    let sent = post(
        "send_message",
        json!({"turn_id": turn_id, "conversation_id": null, "text": "A long story"}),
    )
    .await
    .expect("reachable");
    assert_eq!(sent.status(), 200);
    let mut first = EventReader::new(sent);
    let mut seen_first = until_deltas(&mut first, 3).await;
    let attached = post(
        "turn_events",
        json!({"turn_id": turn_id, "run": 1, "after_seq": 0}),
    )
    .await
    .expect("reachable");
    assert_eq!(attached.status(), 200);
    let mut second = EventReader::new(attached);
    let mut seen_second = until_deltas(&mut second, 2).await;
    let stop = post("stop_turn", json!({"turn_id": turn_id}))
        .await
        .expect("reachable");
    assert_eq!(stop.status(), 200);
    let outcome: rill::model::Outcome = stop.json().await.expect("an outcome");
    assert_eq!(outcome.status, MessageStatus::Stopped);
    fake.wait_for_disconnect(Duration::from_secs(5))
        .await
        .expect("the provider request was closed");
    while let Some(event) = first.next().await {
        seen_first.push(event);
    }
    while let Some(event) = second.next().await {
        seen_second.push(event);
    }
    assert_eq!(finished(&seen_first).status, MessageStatus::Stopped);
    assert_eq!(finished(&seen_second).status, MessageStatus::Stopped);
    assert_eq!(text_of(&seen_first), text_of(&seen_second));

    // A burst through the balancer, a person per send: every send streams to its end.
    fake.set_config(FakeConfig {
        tokens: 8,
        token_delay_ms: 5,
        ..FakeConfig::default()
    });
    const BURST: usize = 1_000;
    let started = std::time::Instant::now();
    let outcomes = futures::future::join_all((0..BURST).map(|i| {
        let post_as = &post_as;
        async move {
            let response = post_as(
                format!("person-{i}"),
                "send_message",
                json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": format!("Hi {i}")}),
            )
            .await
            .expect("reachable");
            if response.status() != 200 {
                return Err(format!("{}: {}", response.status(), response.text().await.unwrap_or_default()));
            }
            let events = EventReader::new(response).read_to_end().await;
            Ok(finished(&events).status)
        }
    }))
    .await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !matches!(o, Ok(MessageStatus::Complete)))
        .collect();
    println!(
        "{BURST} sends at once by as many people through 3 replicas (debug build): {} failed, {} ms",
        failed.len(),
        started.elapsed().as_millis()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test]
async fn a_persons_running_replies_and_turns_per_minute_are_counted_across_replicas() {
    let (a, b) = {
        let mut apps = replicas(2, || Setup {
            fake: FakeConfig {
                tokens: 400,
                token_delay_ms: 10,
                ..FakeConfig::default()
            },
            limits: Some(rill::server::config::LimitSettings {
                running_per_user: 1,
                turns_per_minute: 3,
                ..generous_limits()
            }),
            ..Setup::default()
        })
        .await;
        let b = apps.pop().expect("two");
        (apps.pop().expect("two"), b)
    };
    // Turns are counted per minute of the database's clock (a sliding window over two): the
    // test starts early enough in a minute to end within it.
    loop {
        let (into_minute,): (f64,) =
            sql("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)")
                .fetch_one(&a.state.db)
                .await;
        if into_minute.rem_euclid(60.0) < 45.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One reply running through A: B refuses a second one for the same person.
    let running = send(&a).await;
    assert_eq!(running.status(), 200);
    let mut running = EventReader::new(running);
    until_deltas(&mut running, 1).await;
    let refused = send(&b).await;
    assert_eq!(refused.status(), 429);
    let words = refused.text().await.expect("words");
    assert!(words.contains("replies being written already"), "{words}");
    // Once it ends, B admits the next one; the two refused sends did not count as started.
    a.stop(conversation_turn(&a).await).await;
    while running.next().await.is_some() {}
    a.fake.set_config(FakeConfig {
        tokens: 2,
        ..FakeConfig::default()
    });
    b.fake.set_config(FakeConfig {
        tokens: 2,
        ..FakeConfig::default()
    });
    // (A gave the count back before it announced the reply's end.)
    let second = send(&b).await;
    assert_eq!(second.status(), 200);
    EventReader::new(second).read_to_end().await;
    let third = send(&a).await;
    assert_eq!(third.status(), 200);
    EventReader::new(third).read_to_end().await;
    // Three started this minute, through two replicas: the fourth is refused by either.
    let fourth = send(&b).await;
    assert_eq!(fourth.status(), 429);
    let words = fourth.text().await.expect("words");
    assert!(words.contains("too many messages"), "{words}");
}

/// A send of "Hi" in a new conversation, through `app`.
async fn send(app: &TestApp) -> reqwest::Response {
    app.post_json(
        "send_message",
        json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Hi"}),
    )
    .await
}

/// The turn id of the only reply streaming in `app`'s database.
async fn conversation_turn(app: &TestApp) -> Uuid {
    let (turn,): (String,) =
        sql("SELECT turn_id FROM messages WHERE status = 'streaming' AND role = 'assistant'")
            .fetch_one(&app.state.db)
            .await;
    Uuid::parse_str(&turn).expect("a turn id")
}

#[tokio::test]
async fn a_draining_replica_ends_its_replies_and_a_reader_on_another_replica_sees_the_end() {
    let fake = FakeConfig {
        tokens: 2_000,
        token_delay_ms: 10,
        ..FakeConfig::default()
    };
    let mut apps = replicas(2, || Setup {
        fake: fake.clone(),
        turns: Some(rill::server::config::TurnSettings {
            shutdown_grace: Duration::from_millis(500),
            ..test_turns()
        }),
        ..Setup::default()
    })
    .await;
    let b = apps.pop().expect("two");
    let mut a = apps.pop().expect("two");
    let turn_id = Uuid::new_v4();
    let mut on_a = EventReader::new(a.send(turn_id, None, "A long story").await);
    let seen = until_deltas(&mut on_a, 2).await;
    let conversation = conversation_of(&seen);
    let mut on_b = EventReader::new(
        b.post_json(
            "turn_events",
            json!({"turn_id": turn_id, "run": 1, "after_seq": 0}),
        )
        .await,
    );
    assert!(matches!(
        on_b.next().await.map(|e| e.event),
        Some(TurnEvent::Started { .. })
    ));

    // A drains (SIGTERM): the reply outlives the grace, so A stores it as interrupted.
    let server = a.begin_shutdown();
    let mut seen_on_b = Vec::new();
    while let Some(event) = on_b.next().await {
        seen_on_b.push(event);
    }
    assert_eq!(finished(&seen_on_b).status, MessageStatus::Interrupted);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("A exits")
        .expect("the server task")
        .expect("served without error");
    // B reads it as stored, and continues it.
    let stored = b.stored(conversation).await;
    assert_eq!(
        stored.messages[1].outcome.status,
        MessageStatus::Interrupted
    );
    assert_eq!(text_of(&seen_on_b), stored.messages[1].content);
    b.fake.set_config(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    });
    let continued = b.continue_reply(turn_id, 1).await;
    assert_eq!(continued.status(), 200);
    let rest = EventReader::new(continued).read_to_end().await;
    assert_eq!(finished(&rest).status, MessageStatus::Complete);
}

#[tokio::test]
async fn another_persons_stop_through_another_replica_stops_nothing() {
    let mut apps = replicas(2, || Setup {
        access: accounts_mode(),
        fake: FakeConfig {
            tokens: 300,
            token_delay_ms: 10,
            ..FakeConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let b = apps.pop().expect("two");
    let a = apps.pop().expect("two");
    a.add_user("alice", false).await;
    a.add_user("mallory", false).await;
    let alice = a.signed_in("alice").await;
    let mallory_on_b = b.signed_in("mallory").await;
    let turn_id = Uuid::new_v4();
    let sent = alice.send(turn_id, None, "Mine").await;
    assert_eq!(sent.status(), 200);
    let mut on_a = EventReader::new(sent);
    until_deltas(&mut on_a, 1).await;
    let stop = mallory_on_b
        .post("stop_turn", json!({"turn_id": turn_id}))
        .await;
    assert_eq!(
        stop.status(),
        404,
        "someone else's turn is as unknown as no turn"
    );
    let mut rest = Vec::new();
    while let Some(event) = on_a.next().await {
        rest.push(event);
    }
    assert_eq!(finished(&rest).status, MessageStatus::Complete);
    assert!(
        a.fake.disconnects().is_empty(),
        "the provider request ran to its end"
    );
}
