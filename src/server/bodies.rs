//! Request bodies, read whole before a handler sees them, bounded three ways: in time (the body
//! timeout is a total, so a body that trickles in a byte at a time is as late as one that never
//! comes), in size (a person's request, or a small one from someone not signed in: the sign-in
//! forms), and in memory: all bodies being received together, and one sender's (a person, or an
//! address for those not signed in) at most an eighth of that, so that slow bodies cannot pin
//! the server's memory or starve everyone else's requests. Every body Rill takes is a small
//! JSON object, so holding it whole costs nothing; the one exception, an import's upload, is
//! written to disk by its handler as it arrives (`transfer::import`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, Response, StatusCode, Uri};
use axum::middleware::Next;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::AccessSettings;
use super::connections::address_key;
use super::context::client_address;
use super::principal::Principal;

/// Largest body from someone not signed in (the sign-in and sign-up forms need a few hundred
/// bytes).
pub const ANONYMOUS_BODY_BYTES: usize = 16 * 1024;
/// Bodies being received at once hold at most this many KiB (64 MiB); past it, 503.
const IN_FLIGHT_KIB: usize = 64 * 1024;
/// One sender's bodies being received hold at most this many KiB (8 MiB).
const SENDER_KIB: usize = IN_FLIGHT_KIB / 8;

pub struct BodyLimits {
    deadline: Duration,
    signed_in: usize,
    access: AccessSettings,
    in_flight: Arc<Semaphore>,
    /// KiB each sender's bodies hold now.
    senders: Arc<Mutex<HashMap<String, usize>>>,
}

impl BodyLimits {
    pub fn new(deadline: Duration, signed_in: usize, access: AccessSettings) -> Self {
        Self {
            deadline,
            signed_in,
            access,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_KIB)),
            senders: Arc::default(),
        }
    }

    /// Holds `kib` for a body from `sender`, or says whose share is used up.
    fn hold(&self, sender: String, kib: usize) -> Result<Held, &'static str> {
        {
            let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
            let held = senders.entry(sender.clone()).or_insert(0);
            if held.saturating_add(kib) > SENDER_KIB {
                return Err(
                    "you are sending more at once than Rill takes from one sender; wait for \
                     your other requests to finish",
                );
            }
            *held += kib;
        }
        let mut held = Held {
            senders: self.senders.clone(),
            sender,
            kib,
            _global: None,
        };
        let permits = u32::try_from(kib).unwrap_or(u32::MAX);
        // On refusal `held` is dropped, giving the sender's share back.
        let global = self
            .in_flight
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| "Rill is receiving as much as it can at once; try again in a moment")?;
        held._global = Some(global);
        Ok(held)
    }
}

/// A body's share of memory, given back when it has been received.
struct Held {
    senders: Arc<Mutex<HashMap<String, usize>>>,
    sender: String,
    kib: usize,
    _global: Option<OwnedSemaphorePermit>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = senders.get_mut(&self.sender) {
            *held = held.saturating_sub(self.kib);
            if *held == 0 {
                senders.remove(&self.sender);
            }
        }
    }
}

/// The largest body of a request (an import's upload is bounded by its handler, which writes it
/// to disk as it arrives: see `transfer::import`).
#[derive(Clone, Copy)]
pub struct SizeLimits {
    pub request: usize,
}

/// The paths whose handlers read their bodies as they arrive, within limits of their own: an
/// import's file and an attachment.
fn is_streamed_upload(path: &str) -> bool {
    path == crate::model::transfer::IMPORT_PATH
        || path == crate::model::attachments::ATTACHMENTS_PATH
}

/// An upload written to disk as it arrives: a signed-in person's POST to an upload path.
fn is_upload(request: &Request) -> bool {
    request.method() == Method::POST
        && is_streamed_upload(request.uri().path())
        && request.extensions().get::<Principal>().is_some()
}

/// Refuses a body declared larger than its limit (413) and cuts one that grows past it, before
/// anything else reads it.
pub async fn limit_size(
    State(limits): State<SizeLimits>,
    request: Request,
    next: Next,
) -> Response<Body> {
    // Who is asking is not known yet: the import path is bounded by its handler (which says
    // the limit in words), and `read_whole` holds anyone not signed in to their small bodies.
    if is_streamed_upload(request.uri().path()) {
        return next.run(request).await;
    }
    let limit = limits.request;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request is too large\n".into(),
        );
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, limit));
    next.run(Request::from_parts(parts, body)).await
}

/// Reads the request's body whole, within its bounds, before the handler runs.
pub async fn read_whole(
    State(limits): State<Arc<BodyLimits>>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bodiless = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || declared == Some(0);
    if bodiless || is_upload(&request) {
        return next.run(request).await;
    }
    let principal = request.extensions().get::<Principal>();
    let (limit, sender) = match principal {
        Some(principal) => (limits.signed_in, format!("person {}", principal.owner.0)),
        None => {
            let address = client_address(&limits.access, request.extensions(), request.headers())
                .map(address_key);
            (
                ANONYMOUS_BODY_BYTES.min(limits.signed_in),
                format!("address {address:?}"),
            )
        }
    };
    if declared.is_some_and(|n| n > limit) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request is too large\n".into(),
        );
    }
    // What the body may take, held while it arrives: its declared length, or the limit.
    let kib = declared.unwrap_or(limit).div_ceil(1024).max(1);
    let receiving = match limits.hold(sender, kib) {
        Ok(held) => held,
        Err(words) => return plain(StatusCode::SERVICE_UNAVAILABLE, format!("{words}\n")),
    };
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(limits.deadline, axum::body::to_bytes(body, limit)).await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_big {
                plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request is too large\n".into(),
                )
            } else {
                plain(
                    StatusCode::BAD_REQUEST,
                    "the request's body could not be read\n".into(),
                )
            };
        }
        Err(_) => {
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                "the request's body did not arrive in time\n".into(),
            )
        }
    };
    drop(receiving);
    let (parts, body) = copied_out(parts, bytes);
    next.run(Request::from_parts(parts, body)).await
}

/// The request's path (and the router's copy of it), header values and body copied out of the
/// connection's read buffer.
///
/// hyper parses a request without copying: its path, its header values and a body that came
/// with them are slices of the connection's 8 KB read buffer, which they keep alive for as long
/// as the request is being answered. Meanwhile hyper reads on (to notice a client that leaves)
/// into a second 8 KB buffer, since the first is not its alone. With these few hundred bytes
/// copied out, hyper reuses the first: 8 KB less for every request waiting for its answer (5,000
/// sends at once waiting for their turns to start held 40 MB this way; issue 27).
fn copied_out(mut parts: Parts, body: Bytes) -> (Parts, Body) {
    for value in parts.headers.values_mut() {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    // The router keeps the path as it came too.
    if let Some(OriginalUri(original)) = parts.extensions.get_mut::<OriginalUri>() {
        if let Ok(uri) = Uri::try_from(original.to_string()) {
            *original = uri;
        }
    }
    // `body` is dropped here: held across the handler's wait, it would pin the buffer itself.
    (parts, Body::from(body.to_vec()))
}

/// A refusal in words, and the connection closed after it (the rest of the body unread).
fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::extract::OriginalUri;
    use axum::http::{header, HeaderValue, Request, Uri};

    use super::copied_out;

    /// A request made as hyper makes one: its path and header values slices of one buffer.
    #[tokio::test]
    async fn a_request_copied_out_keeps_its_head_and_body_but_not_the_buffer() {
        let buffer = Bytes::from_static(b"/api/send_message?x=1 secret-cookie application/json");
        let within = |bytes: &[u8]| buffer.as_ptr_range().contains(&bytes.as_ptr());
        let uri = Uri::from_maybe_shared(buffer.slice(0..21)).expect("a path");
        let mut cookie = HeaderValue::from_maybe_shared(buffer.slice(22..35)).expect("a value");
        cookie.set_sensitive(true);
        let kind = HeaderValue::from_maybe_shared(buffer.slice(36..)).expect("a value");
        let (parts, ()) = Request::post(uri.clone())
            .extension(OriginalUri(uri))
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, kind)
            .body(())
            .expect("a request")
            .into_parts();
        assert!(
            within(parts.headers[header::COOKIE].as_bytes()),
            "the test's premise"
        );
        let body = buffer.slice(0..4);

        let (parts, body) = copied_out(parts, body);

        assert_eq!(parts.uri, "/api/send_message?x=1");
        assert!(!within(parts.uri.path().as_bytes()));
        let OriginalUri(original) = &parts.extensions.get::<OriginalUri>().expect("kept");
        assert_eq!(original, "/api/send_message?x=1");
        assert!(!within(original.path().as_bytes()));
        let cookie = &parts.headers[header::COOKIE];
        assert_eq!(cookie, "secret-cookie");
        assert!(cookie.is_sensitive() && !within(cookie.as_bytes()));
        let kind = &parts.headers[header::CONTENT_TYPE];
        assert_eq!(kind, "application/json");
        assert!(!kind.is_sensitive() && !within(kind.as_bytes()));
        let body = axum::body::to_bytes(body, 100).await.expect("the body");
        assert_eq!(&body[..], b"/api");
        assert!(!within(&body));
    }
}
