//! Tokens stream one by one through a default nginx reverse proxy (nginx from apt, on loopback):
//! the server's `X-Accel-Buffering: no` turns off nginx's response buffering for event streams.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_provider::{expected_text, FakeConfig};
use rill::model::{MessageStatus, StreamLine, TurnEvent};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

/// nginx with nothing but `proxy_pass` to the app: its defaults (buffering on, HTTP/1.0 upstream).
pub(crate) struct Nginx {
    child: Child,
    pub(crate) url: String,
}

impl Nginx {
    async fn start(dir: &Path, upstream: &str) -> Self {
        Self::launch(dir, "", &format!("location / {{ proxy_pass {upstream}; }}")).await
    }

    /// nginx balancing `servers` round-robin, no stickiness, as compose.replicas.yaml's does:
    /// HTTP/1.1 upstream kept alive, the Host and the client's address passed on.
    pub(crate) async fn round_robin(dir: &Path, servers: &[&str]) -> Self {
        let upstream: String = servers
            .iter()
            .map(|server| format!("server {server};"))
            .collect();
        Self::launch(
            dir,
            &format!("upstream rill {{ {upstream} keepalive 64; }}"),
            "location / {
               proxy_pass http://rill; proxy_http_version 1.1; proxy_set_header Connection \"\";
               proxy_set_header Host $http_host;
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
               proxy_read_timeout 1h;
             }",
        )
        .await
    }

    async fn launch(dir: &Path, http: &str, location: &str) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (scripts/install-tools.sh installs it from apt)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.display();
        let config = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;
             events {{ worker_connections 8192; }}
             http {{
               access_log off;
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
               uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
               {http}
               server {{ listen 127.0.0.1:{port}; {location} }}
             }}"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("config written");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let url = format!("http://127.0.0.1:{port}");
        let waiting = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "nginx did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, url }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tokens_stream_one_by_one_through_a_default_nginx_proxy() {
    let app = TestApp::start(FakeConfig {
        tokens: 20,
        token_delay_ms: 60,
        ..FakeConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let nginx = Nginx::start(dir.path(), &app.base_url).await;
    let response = app
        .http
        .post(format!("{}/api/send_message", nginx.url))
        .json(&json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Through the proxy"}))
        .send()
        .await
        .expect("through nginx");
    assert_eq!(response.status(), 200);
    let mut reader = EventReader::new(response);
    let mut deltas = 0;
    let mut text = String::new();
    while let Some(line) = reader.next_line().await {
        if let StreamLine::Event(event) = line {
            match event.event {
                TurnEvent::Delta { text: delta } => {
                    if deltas == 0 {
                        // Causal, not timed: the first token is here before the provider has
                        // even finished writing the reply.
                        assert_eq!(app.fake.completed(), 0, "nginx held the stream back");
                    }
                    deltas += 1;
                    text.push_str(&delta);
                }
                TurnEvent::Finished(outcome) => assert_eq!(outcome.status, MessageStatus::Complete),
                _ => {}
            }
        }
    }
    assert_eq!(deltas, 20);
    assert_eq!(text, expected_text(20));
}
