use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// Every server function's error. Its text is what the person sees; details of server faults are
/// logged on the server, never sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// Says what was not found, e.g. "no such conversation".
    #[error("{0}")]
    NotFound(String),
    /// Nobody is signed in (or the session ended): sign in and try again.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed (an admin's page, a disabled account).
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests, or too many replies at once; the text says when to try again.
    #[error("{0}")]
    TooManyRequests(String),
    /// The request clashes with what is going on, e.g. a reply already streaming.
    #[error("{0}")]
    Conflict(String),
    /// The server cannot take this now (it is shutting down); trying again later will work.
    #[error("{0}")]
    Unavailable(String),
    /// Storing this would take the person past their storage quota.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Larger than its limit (a file, a message's files); the text says the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("something went wrong on the server; the details are in its log")]
    Internal,
    /// Only made in the browser: the request or its response did not get through. The detail
    /// (the browser's own words, such as `TypeError: Failed to fetch`) is not for the page.
    #[error("could not reach Rill; check the connection and try again")]
    Network(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::TooManyRequests(_) => 429,
            Self::Conflict(_) => 409,
            Self::Unavailable(_) => 503,
            Self::InsufficientStorage(_) => 507,
            Self::PayloadTooLarge(_) => 413,
            Self::Internal => 500,
            Self::Network(_) => 502,
        }
    }

    /// Worth trying again by itself, later: the server could not be reached, asked to come back,
    /// or failed in a way that may pass. The others (bad input, not found, a clash) will not change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Network(_) | Self::Unavailable(_) | Self::Internal
        )
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m)
            | ServerFnErrorErr::MissingArg(m)
            | ServerFnErrorErr::Deserialization(m) => {
                Self::BadRequest(format!("invalid request: {m}"))
            }
            ServerFnErrorErr::Request(m) | ServerFnErrorErr::Response(m) => Self::Network(m),
            _ => Self::Internal,
        }
    }

    /// An error answer that is not one of Rill's is a proxy's page (nginx's 502 while Rill
    /// restarts, say): Rill was not reached, and trying again will do.
    fn de(data: server_fn::Bytes) -> Self {
        serde_json::from_slice(&data).unwrap_or_else(|_| {
            Self::Network("no answer from Rill (a proxy in between answered instead)".into())
        })
    }
}
