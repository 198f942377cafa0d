//! The errors of session handling and of stores.

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

/// A boxed error from a store backend (a database driver, a network client).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong while a handler uses its [`Session`](crate::Session).
///
/// It implements [`IntoResponse`]: a handler can return `Result<_, Error>` and `?` session calls.
/// The response is a `500 Internal Server Error` with a generic body (the details go to a
/// `tracing` error event, never to the client).
///
/// ```
/// use sessionware::{Error, Session};
///
/// async fn visits(session: Session) -> Result<String, Error> {
///     let n: u64 = session.get("visits").await?.unwrap_or(0);
///     session.insert("visits", n + 1).await?;
///     Ok(format!("visit number {}", n + 1))
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session store failed (unreachable, timed out, refused the operation).
    #[error("session store error: {0}")]
    Store(#[from] StoreError),
    /// A value given to [`Session::insert`](crate::Session::insert) could not be turned into JSON.
    #[error("session value for key `{key}` could not be serialized: {source}")]
    Serialize {
        /// The session key.
        key: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The session would outgrow the layer's size cap
    /// ([`SessionLayer::with_max_session_size`](crate::SessionLayer::with_max_session_size)); the
    /// value was not inserted.
    #[error("session would be {size} bytes with key `{key}`, over the {limit}-byte limit")]
    TooLarge {
        /// The key whose insert was refused.
        key: String,
        /// The session's serialized size with that value.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// [`Session::update`](crate::Session::update) gave up: other requests kept changing the
    /// key between its read and its write, `attempts` times in a row.
    #[error("session key `{key}` kept changing under `update`; gave up after {attempts} attempts")]
    Conflict {
        /// The key being updated.
        key: String,
        /// How many times it was read and written.
        attempts: usize,
    },
    /// A save after the response has gone needed a new session id (a new session, or
    /// `cycle_id`), which the client could never learn: create or cycle the session during
    /// the request.
    #[error("the response has gone: a new session id cannot reach the client; create or cycle the session during the request")]
    ResponseSent,
    /// A `Session` kept after the response (by a WebSocket handler or a task) found that its
    /// session has ended: logged out, revoked, cycled by a log-in in another tab, or expired.
    /// Returned by [`save`](crate::Session::save), [`touch`](crate::Session::touch) and
    /// [`update`](crate::Session::update) after the response has gone, which stored nothing;
    /// close the socket or stop the task. (During the request the same race is not an error:
    /// nothing more is saved, and the response leaves the cookie alone.)
    #[error("the session has ended (logged out, revoked or expired); nothing was saved")]
    SessionEnded,
    /// [`Session::log_in`](crate::Session::log_in) was given an empty principal. A session
    /// is tied to a user by the user's id: pass a non-empty one (the same answer on every
    /// store, before any store call).
    #[error("log_in was given an empty principal; pass the user's id")]
    EmptyPrincipal,
    /// [`Session::confirm_login`](crate::Session::confirm_login) on a session nobody is
    /// logged in to: there is no login to confirm. Use [`log_in`](crate::Session::log_in).
    #[error("confirm_login on a session that is not logged in; call log_in instead")]
    NotLoggedIn,
    /// Keys starting with `__` are the crate's own (the CSRF secret, flash messages):
    /// [`insert`](crate::Session::insert), [`update`](crate::Session::update) and
    /// [`insert_fields`](crate::Session::insert_fields) refuse them. Pick another name.
    #[error("session key `{key}` starts with `__`, which is reserved for sessionware's own keys; pick another name")]
    ReservedKey {
        /// The refused key.
        key: String,
    },
    /// A stored value does not have the type the handler asked for.
    #[error("session value for key `{key}` does not have the requested type: {source}")]
    Deserialize {
        /// The session key.
        key: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "session error");
        internal_server_error()
    }
}

/// The response for a session error nobody handled: a bare `500`, no details (they go to the
/// logs). The one place it is written: handlers' `?` and the layer's failed saves (unless
/// [`SessionLayer::with_error_handler`](crate::SessionLayer::with_error_handler)) both send it.
pub(crate) fn internal_server_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
}

/// A failure reported by a [`SessionStore`](crate::store::SessionStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed: connection refused, timeout, a driver error.
    #[error("session store backend failed: {0}")]
    Backend(#[source] BoxError),
    /// A stored session could not be decoded. The layer treats the session as missing (the
    /// client gets a fresh session) and logs the error: garbage in one row never locks a user
    /// out and never panics.
    #[error("stored session is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        StoreError::Backend(error.into())
    }
}
