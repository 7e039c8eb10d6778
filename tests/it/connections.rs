//! Connections one client cannot hoard: headers sent a byte at a time and idle kept-alive
//! connections are closed at the header timeout, a body that never finishes is answered 408,
//! connections past the caps get a 503 in words (per address and in all, while other addresses
//! are still served), and one person's open event streams are capped with a 429.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rill::server::config::{ConnectionSettings, LimitSettings};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use uuid::Uuid;

use crate::support::*;

fn addr_of(app: &TestApp) -> SocketAddr {
    app.base_url
        .trim_start_matches("http://")
        .parse()
        .expect("the app's address")
}

async fn app_with(connections: ConnectionSettings) -> TestApp {
    TestApp::with(Setup {
        connections: Some(connections),
        ..Setup::default()
    })
    .await
}

/// A connection to `to` from the loopback address `from` (all of 127/8 is this machine).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(to).await.expect("connect")
}

/// Reads until the server closes the connection (or `bound` passes: the test fails); returns
/// what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = bound.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the server kept the connection open past {bound:?}"),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// Reads the server's answer (its head and whatever body came with it), without waiting for the
/// connection to close; the test fails if nothing comes within `bound`.
async fn read_answer(stream: &mut TcpStream, bound: Duration) -> String {
    answer_within(stream, bound)
        .await
        .unwrap_or_else(|| panic!("no answer within {bound:?}"))
}

/// The server's answer if one comes within `bound`; `None` while it still waits for more.
async fn answer_within(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let started = Instant::now();
    while !String::from_utf8_lossy(&received).contains("\r\n\r\n") {
        let left = bound.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return None,
        }
    }
    // The body of a refusal in words follows at once.
    if let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await
    {
        received.extend_from_slice(&buffer[..n]);
    }
    Some(String::from_utf8_lossy(&received).into_owned())
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout() {
    let app = app_with(ConnectionSettings {
        header_timeout: Duration::from_secs(1),
        ..ConnectionSettings::default()
    })
    .await;
    let mut slow = TcpStream::connect(addr_of(&app)).await.expect("connect");
    // A slowloris: a header byte every 200 ms, never finishing, for as long as the server lets it.
    let request = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ";
    let started = Instant::now();
    let mut closed = false;
    // 25 bytes, 5 s: cut off only if the 1 s timeout set here applies (the default is 15 s).
    for byte in request.iter().chain(std::iter::repeat(&b'a')).take(25) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 256];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), slow.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a slowloris kept its connection for {took:?}");
    println!("a slowloris was cut off after {took:?} (header timeout 1 s)");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_and_the_next_request_still_served() {
    let app = app_with(ConnectionSettings {
        header_timeout: Duration::from_secs(1),
        ..ConnectionSettings::default()
    })
    .await;
    let mut idle = TcpStream::connect(addr_of(&app)).await.expect("connect");
    idle.write_all(HEALTH).await.expect("request");
    let mut buffer = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, idle.read(&mut buffer))
        .await
        .expect("an answer in time")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then nothing: the server lets go of it.
    let (_, took) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    println!("an idle kept-alive connection was closed after {took:?}");
    let fresh = reqwest::get(format!("{}/healthz", app.base_url))
        .await
        .expect("healthz");
    assert_eq!(fresh.status(), 200);
}

#[tokio::test]
async fn a_body_that_never_finishes_is_answered_408() {
    let app = app_with(ConnectionSettings {
        body_timeout: Duration::from_secs(1),
        ..ConnectionSettings::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr_of(&app)).await.expect("connect");
    stream
        .write_all(
            b"POST /api/list_conversations HTTP/1.1\r\nhost: 127.0.0.1\r\n\
              content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"a\":",
        )
        .await
        .expect("write");
    let (answer, took) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
    println!("a body that stopped halfway was answered 408 after {took:?}");
}

#[tokio::test]
async fn connections_past_the_caps_are_refused_in_words_while_other_addresses_are_served() {
    let app = app_with(ConnectionSettings {
        max_connections: Some(6),
        max_per_address: Some(4),
        header_timeout: Duration::from_secs(30),
        ..ConnectionSettings::default()
    })
    .await;
    let addr = addr_of(&app);
    // One address holds all it may, idle.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.1", addr).await);
    }
    // Let the server count them before the next arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = connect_from("127.0.0.1", addr).await;
    let (answer, _) = read_until_closed(&mut fifth, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("Too many connections from your address"),
        "{answer}"
    );
    // Another address is still served.
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(HEALTH).await.expect("request");
    let mut buffer = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, other.read(&mut buffer))
        .await
        .expect("served in time")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    // 4 + 1 open now; one more fills the server, and the next, from anywhere, is refused.
    held.push(connect_from("127.0.0.3", addr).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut full = connect_from("127.0.0.4", addr).await;
    let (answer, _) = read_until_closed(&mut full, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("as many connections as it can"), "{answer}");
    // Letting go frees the places.
    drop(held);
    drop(other);
    eventually("a place frees up", || async {
        let mut again = connect_from("127.0.0.1", addr).await;
        if again.write_all(HEALTH).await.is_err() {
            return false;
        }
        let mut buffer = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), again.read(&mut buffer)).await,
            Ok(Ok(n)) if buffer[..n].starts_with(b"HTTP/1.1 200")
        )
    })
    .await;
}

#[tokio::test]
async fn one_person_may_hold_only_so_many_event_streams() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            streams_per_user: 3,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "hello").await);
    let follow = || {
        app.post_json(
            "conversation_events",
            json!({"conversation_id": conversation, "from_turn": null}),
        )
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        let response = follow().await;
        assert_eq!(response.status(), 200);
        open.push(EventReader::new(response));
    }
    let refused = follow().await;
    assert_eq!(refused.status(), 429);
    let body = refused.text().await.expect("body");
    assert!(body.contains("3 live connections open"), "{body}");
    // A send is a stream too.
    let send = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "more"}),
        )
        .await;
    assert_eq!(send.status(), 429);
    // Closing one (a tab going away) makes room at once.
    open.pop();
    eventually("a closed stream is let go", || async {
        follow().await.status() == 200
    })
    .await;
}

/// A request to `endpoint` whose body of `length` bytes has begun and stalls; `cookie`: whose
/// it is.
async fn stalled_body(
    from: &str,
    to: SocketAddr,
    endpoint: &str,
    length: usize,
    cookie: &str,
) -> TcpStream {
    let mut stream = connect_from(from, to).await;
    let head = format!(
        "POST /api/{endpoint} HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: {cookie}\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n\r\n{{\"id\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

const RENAME: &str = "rename_conversation";

#[tokio::test]
async fn slow_bodies_hold_at_most_a_senders_share_of_memory() {
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        // Longer than the test takes on a loaded machine: its stalled bodies must be held, not
        // timed out, until it lets them go.
        connections: Some(ConnectionSettings {
            body_timeout: Duration::from_secs(120),
            ..ConnectionSettings::default()
        }),
        ..Setup::default()
    })
    .await;
    let addr = addr_of(&app);
    // Someone not signed in may send small bodies only: the sign-in forms'.
    let mut anonymous = stalled_body("127.0.13.1", addr, "sign_in", 100_000, "").await;
    let answer = read_answer(&mut anonymous, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A person's bodies of a megabyte that never finish: their share is 8 MiB, so the ninth is
    // refused in words, while another person is served.
    app.add_user("slow", false).await;
    let signed_in = reqwest::Client::new()
        .post(format!("{}/api/sign_in", app.base_url))
        .json(&json!({"username": "slow", "password": "slow-password"}))
        .send()
        .await
        .expect("sign in");
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rill_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    // Nine bodies of a megabyte from one person, never finished: their share is 8 MiB, so one
    // of them (whichever the server counts last) is refused in words, and the other eight wait
    // for their bodies. (Probing with a ninth after the eight raced them on a loaded machine: a
    // probe counted first took a place, and one of the eight was refused instead.)
    let mut slow = Vec::new();
    for i in 0..9 {
        slow.push(
            stalled_body(
                &format!("127.0.13.{}", i + 2),
                addr,
                RENAME,
                1 << 20,
                &cookie,
            )
            .await,
        );
    }
    let deadline = Instant::now() + WAIT;
    let (refused, answer) = 'found: loop {
        for (i, stream) in slow.iter_mut().enumerate() {
            if let Some(answer) = answer_within(stream, Duration::from_millis(50)).await {
                break 'found (i, answer);
            }
        }
        assert!(Instant::now() < deadline, "none of the nine was refused");
    };
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("more at once than Rill takes"),
        "{answer}"
    );
    slow.remove(refused);
    for stream in &mut slow {
        assert_eq!(
            answer_within(stream, Duration::from_millis(200)).await,
            None,
            "the other eight wait for their bodies"
        );
    }
    app.add_user("other", false).await;
    let other = app.signed_in("other").await;
    assert_eq!(
        other.post("list_conversations", json!({})).await.status(),
        200,
        "another sender is served"
    );
    drop(slow);
    eventually("the share comes back", || async {
        let mut again = stalled_body("127.0.13.21", addr, RENAME, 1 << 20, &cookie).await;
        let answer = tokio::time::timeout(Duration::from_millis(300), async {
            let mut buffer = [0u8; 64];
            again.read(&mut buffer).await
        })
        .await;
        // Accepted: the server waits for the rest of the body.
        answer.is_err()
    })
    .await;
}
