//! The layer's settings, shared read-only by every request.

use std::fmt;
use std::sync::{Arc, OnceLock};

use axum_core::response::{IntoResponse, Response};
use http::{HeaderName, StatusCode};

use crate::error::Error;
use crate::expiry::{
    Deadlines, Expiry, DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_MAX_ABSOLUTE_TIMEOUT,
    DEFAULT_SESSION_END_IDLE,
};
use crate::stats::SessionStats;
use crate::{Key, SameSite};

/// The default cap on a session's serialized size: 256 KiB, far above what sessions usually
/// hold, low enough that a runaway handler cannot grow one without bound.
pub const DEFAULT_MAX_SESSION_SIZE: usize = 256 * 1024;

/// How the id is protected in the cookie.
#[derive(Clone)]
pub(crate) enum Protection {
    /// The id as is: it is already 122 random bits, validated on parse.
    Plain,
    /// HMAC-signed by the `cookie` crate: readable by the client, not forgeable.
    Signed,
    /// Encrypted and authenticated by the `cookie` crate: neither readable nor forgeable.
    Private,
}

/// Builds the response that replaces the handler's when saving the session fails.
pub(crate) type ErrorHandler = Arc<dyn Fn(&Error) -> Response + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) cookie_name: String,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) expiry: Expiry,
    pub(crate) deadlines: Deadlines,
    pub(crate) protection: Protection,
    /// The key that signs or encrypts what is written; `None` for plain cookies.
    pub(crate) key: Option<Key>,
    /// Keys still accepted when reading, oldest last.
    pub(crate) previous_keys: Vec<Key>,
    pub(crate) header: Option<HeaderName>,
    pub(crate) error_handler: ErrorHandler,
    /// Largest serialized session, in bytes; `None` for no limit.
    pub(crate) max_size: Option<usize>,
    /// Counts of refused and unknown ids, shared by every service of the layer.
    pub(crate) stats: Arc<SessionStats>,
    /// The `Set-Cookie` attributes after the value, formatted once by `cookie::set_cookie`;
    /// emptied by every builder method.
    pub(crate) cookie_attributes: OnceLock<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cookie_name: "id".to_owned(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            expiry: Expiry::OnSessionEnd,
            deadlines: Deadlines {
                session_end_idle: DEFAULT_SESSION_END_IDLE,
                absolute: DEFAULT_ABSOLUTE_TIMEOUT,
                max_absolute: DEFAULT_MAX_ABSOLUTE_TIMEOUT,
            },
            protection: Protection::Plain,
            key: None,
            previous_keys: Vec::new(),
            header: None,
            error_handler: Arc::new(default_error_response),
            max_size: Some(DEFAULT_MAX_SESSION_SIZE),
            stats: Arc::default(),
            cookie_attributes: OnceLock::new(),
        }
    }
}

/// The default response when saving fails: a bare 500, no details.
fn default_error_response(_: &Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protection = match self.protection {
            Protection::Plain => "plain",
            Protection::Signed => "signed",
            Protection::Private => "private",
        };
        f.debug_struct("Config")
            .field("cookie_name", &self.cookie_name)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("expiry", &self.expiry)
            .field("session_end_idle", &self.deadlines.session_end_idle)
            .field("absolute_timeout", &self.deadlines.absolute)
            .field("max_absolute_timeout", &self.deadlines.max_absolute)
            .field("protection", &protection)
            .field("key", &self.key.as_ref().map(|_| "REDACTED"))
            .field("previous_keys", &self.previous_keys.len())
            .field("header", &self.header)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}
