//! The builder's configuration: plain data that [`SessionLayer`](crate::SessionLayer)'s builder
//! methods edit. Applying the layer turns it into [`Settings`](super::Settings).

use std::num::NonZeroUsize;
use std::sync::Arc;

use axum_core::response::Response;
use cookie::{Key, SameSite};
use http::HeaderName;

use crate::defaults;
use crate::error::Error;
use crate::expiry::{Deadlines, Expiry};

/// How the id is protected in the cookie, with the key that does it: a signed or private
/// cookie without a key cannot be expressed.
#[derive(Clone)]
pub(crate) enum Protection {
    /// The id as is: it is already 122 random bits, validated on parse.
    Plain,
    /// HMAC-signed by the `cookie` crate: readable by the client, not forgeable.
    Signed(Key),
    /// Encrypted and authenticated by the `cookie` crate: neither readable nor forgeable.
    Private(Key),
}

impl Protection {
    /// For `Debug` output: the kind, never the key.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Protection::Plain => "plain",
            Protection::Signed(_) => "signed",
            Protection::Private(_) => "private",
        }
    }
}

/// Builds the response that replaces the handler's when saving the session fails.
pub(crate) type ErrorHandler = Arc<dyn Fn(&Error) -> Response + Send + Sync>;

/// What the builder methods set. Defaults are the secure ones documented on
/// [`SessionLayer::new`](crate::SessionLayer::new).
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
    /// Keys still accepted when reading, newest first.
    pub(crate) previous_keys: Vec<Key>,
    pub(crate) header: Option<HeaderName>,
    /// `None`: the default `500` (`error::internal_server_error`).
    pub(crate) error_handler: Option<ErrorHandler>,
    /// Largest serialized session, in bytes; `None` for no limit.
    pub(crate) max_size: Option<usize>,
    /// Most sessions one principal may have; `None` for no limit.
    pub(crate) max_per_principal: Option<NonZeroUsize>,
    /// The application's event hook, if any.
    pub(crate) hook: Option<crate::events::Hook>,
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
                session_end_idle: defaults::SESSION_END_IDLE,
                absolute: defaults::ABSOLUTE_TIMEOUT,
                max_absolute: defaults::MAX_ABSOLUTE_TIMEOUT,
            },
            protection: Protection::Plain,
            previous_keys: Vec::new(),
            header: None,
            error_handler: None,
            max_size: Some(defaults::MAX_SESSION_SIZE),
            max_per_principal: None,
            hook: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
            .field("protection", &self.protection.kind())
            .field("keys", &"REDACTED")
            .field("previous_keys", &self.previous_keys.len())
            .field("header", &self.header)
            .field("max_size", &self.max_size)
            .field("max_per_principal", &self.max_per_principal)
            .finish_non_exhaustive()
    }
}
