//! Accepting connections, bounded: HTTP/1.1 through hyper with a timer, so a request's headers
//! (and an idle keep-alive connection's next request) must arrive within the header timeout; a
//! cap on open connections in all and per client address, refused in words with 503; and the
//! process's open-files limit raised to what the system allows, so the cap, not `EMFILE`, is
//! what a flood meets.
//!
//! HTTP/2 is not served: browsers speak it only over TLS, which a reverse proxy ends, and
//! cleartext HTTP/2 would bring back idle connections that no header timeout covers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::config::{AccessSettings, ConnectionSettings};
use super::metrics;

/// File descriptors kept for everything but client connections: the database, log files,
/// provider connections beyond one per client, the model file.
const RESERVED_FILES: u64 = 64;
/// Largest connection cap derived from the open-files limit.
const MAX_DERIVED_CONNECTIONS: u64 = 65_536;
/// How long a refused connection gets to read its 503 before it is closed.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);
/// How long a refused connection's request is waited for, to be read and discarded.
const REFUSAL_READ: Duration = Duration::from_millis(100);
/// Refusals being written at once; past this a refused connection is closed without a word.
const MAX_REFUSALS: usize = 64;

/// The open-files limit before and after start-up raised it, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft_before: Option<u64>,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft limit on open files to the hard one (systemd starts services at 1,024,
/// far below what a server with one socket per reader needs).
pub fn raise_open_files_limit() -> OpenFiles {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let before = getrlimit(Resource::Nofile);
    let mut after = before;
    if before.current != before.maximum {
        after.current = before.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, after) {
            tracing::warn!("cannot raise the open-files limit: {e}");
            after = before;
        }
    }
    OpenFiles {
        soft_before: before.current,
        soft: after.current,
        hard: before.maximum,
    }
}

/// The connection caps in force: the configured ones, or derived from the open-files limit
/// (half of what is left after the reserve, since a reader's turn holds a provider socket too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub total: usize,
    pub per_address: usize,
}

impl ConnectionCaps {
    pub fn resolve(settings: &ConnectionSettings, open_files: Option<u64>) -> Self {
        let derived = open_files.map_or(MAX_DERIVED_CONNECTIONS, |n| {
            (n.saturating_sub(RESERVED_FILES) / 2).clamp(8, MAX_DERIVED_CONNECTIONS)
        });
        let total = settings
            .max_connections
            .unwrap_or_else(|| usize::try_from(derived).unwrap_or(usize::MAX))
            .max(1);
        let per_address = settings
            .max_per_address
            .unwrap_or((total / 4).clamp(8, 256))
            .clamp(1, total);
        Self { total, per_address }
    }
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    Full,
    AddressFull,
}

impl Refused {
    fn words(self) -> &'static str {
        match self {
            Refused::Full => "Rill is serving as many connections as it can; try again in a moment.\n",
            Refused::AddressFull => {
                "Too many connections from your address; close some tabs and try again in a moment.\n"
            }
        }
    }

    fn response(self) -> String {
        let words = self.words();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
             content-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n\
             content-length: {}\r\n\r\n{words}",
            words.len()
        )
    }

    fn label(self) -> &'static str {
        match self {
            Refused::Full => "full",
            Refused::AddressFull => "address_full",
        }
    }
}

/// Whose share a connection counts against: an IPv4 address, or an IPv6 /64 (one subscriber's
/// usual allocation, so rotating addresses inside it gains nothing).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
        v4 => v4,
    }
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Counts open connections against the caps.
struct Admission {
    caps: ConnectionCaps,
    open: Mutex<Open>,
}

/// One admitted connection, counted until dropped.
struct Permit {
    admission: Arc<Admission>,
    /// `None`: a trusted proxy's connection, which carries many people's requests.
    address: Option<IpAddr>,
}

impl Admission {
    fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Permit, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.caps.total {
            return Err(Refused::Full);
        }
        if let Some(address) = address {
            let n = open.by_address.entry(address).or_insert(0);
            if *n >= self.caps.per_address {
                return Err(Refused::AddressFull);
            }
            *n += 1;
        }
        open.total += 1;
        metrics::connections_open(open.total);
        Ok(Permit {
            admission: self.clone(),
            address,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(address) = self.address {
            if let Some(n) = open.by_address.get_mut(&address) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.by_address.remove(&address);
                }
            }
        }
        metrics::connections_open(open.total);
    }
}

/// What [`serve`] needs besides the router.
pub struct Listening {
    pub listener: TcpListener,
    pub caps: ConnectionCaps,
    pub header_timeout: Duration,
    pub access: AccessSettings,
}

/// Serves `app` on the listener until `shutdown` completes, then stops accepting and lets open
/// connections finish for at most `close_wait`.
pub async fn serve(
    listening: Listening,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
    close_wait: Duration,
) {
    let Listening {
        listener,
        caps,
        header_timeout,
        access,
    } = listening;
    tracing::info!(
        max_connections = caps.total,
        max_per_address = caps.per_address,
        ?header_timeout,
        "connection limits"
    );
    let admission = Arc::new(Admission {
        caps,
        open: Mutex::default(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        // Tokens are small writes: without TCP_NODELAY, Nagle holds each one until the last is
        // acknowledged, and a client's delayed ACK makes that up to 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        let ip = peer.ip().to_canonical();
        let counted =
            (!access.trusted_proxies.iter().any(|net| net.contains(&ip))).then(|| address_key(ip));
        match admission.admit(counted) {
            Ok(permit) => {
                let service =
                    app.clone()
                        .map_request(move |mut request: axum::http::Request<Incoming>| {
                            request.extensions_mut().insert(ConnectInfo(peer));
                            request
                        });
                let connection =
                    http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that goes away mid-request is an ordinary event, not an error.
                    if let Err(e) = connection.await {
                        tracing::debug!("connection ended: {e}");
                    }
                    drop(permit);
                });
            }
            Err(refused) => refuse(tcp, refused, &refusals),
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(close_wait) => {
            tracing::warn!("connections still open after the drain; exiting anyway");
        }
    }
}

/// Answers a connection over the caps with a 503 in words, then closes it.
fn refuse(mut tcp: TcpStream, refused: Refused, refusals: &Arc<tokio::sync::Semaphore>) {
    metrics::connection_refused(refused.label());
    let Ok(writing) = refusals.clone().try_acquire_owned() else {
        // A flood of refusals: closing at once is the cheapest answer.
        return;
    };
    tokio::spawn(async move {
        let mut scratch = [0u8; 4096];
        let answer = async {
            // Read what the client sent first (briefly): a socket closed with unread data is
            // reset, and the reset can reach the client before the answer does.
            let _ = tokio::time::timeout(REFUSAL_READ, tcp.read(&mut scratch)).await;
            tcp.write_all(refused.response().as_bytes()).await?;
            tcp.shutdown().await?;
            while tcp.read(&mut scratch).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_WRITE, answer).await;
        drop(writing);
    });
}

/// An accept that failed: a client that gave up in the backlog is nothing; running out of
/// file descriptors is waited out briefly, so the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!("accept failed: {error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(total: Option<usize>, per_address: Option<usize>) -> ConnectionSettings {
        ConnectionSettings {
            max_connections: total,
            max_per_address: per_address,
            ..ConnectionSettings::default()
        }
    }

    #[test]
    fn caps_follow_the_open_files_limit_unless_set() {
        let derived = ConnectionCaps::resolve(&settings(None, None), Some(256));
        assert_eq!(
            derived,
            ConnectionCaps {
                total: 96,
                per_address: 24
            }
        );
        let big = ConnectionCaps::resolve(&settings(None, None), Some(1 << 20));
        assert_eq!(big.total, 65_536);
        assert_eq!(big.per_address, 256);
        let set = ConnectionCaps::resolve(&settings(Some(10), Some(50)), Some(256));
        assert_eq!(
            set,
            ConnectionCaps {
                total: 10,
                per_address: 10
            }
        );
    }

    #[test]
    fn the_refusals_say_why_and_their_lengths_are_right() {
        for refused in [Refused::Full, Refused::AddressFull] {
            let text = refused.response();
            let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.parse().ok())
                .expect("content-length");
            assert_eq!(length, body.len(), "{head}");
            assert!(head.starts_with("HTTP/1.1 503"));
        }
    }

    #[test]
    fn connections_count_per_address_and_ipv6_per_64() {
        let admission = Arc::new(Admission {
            caps: ConnectionCaps {
                total: 3,
                per_address: 2,
            },
            open: Mutex::default(),
        });
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let a_too: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let b: IpAddr = "192.0.2.7".parse().expect("ip");
        let first = admission.admit(Some(address_key(a))).expect("first");
        let _second = admission.admit(Some(address_key(a_too))).expect("second");
        assert_eq!(
            admission.admit(Some(address_key(a))).err(),
            Some(Refused::AddressFull)
        );
        let _third = admission
            .admit(Some(address_key(b)))
            .expect("another address");
        assert_eq!(admission.admit(None).err(), Some(Refused::Full));
        drop(first);
        assert!(admission.admit(Some(address_key(a))).is_ok());
    }
}
