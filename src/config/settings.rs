//! [`Settings`]: what a layer applied to a router works with, fixed when it is applied.

use std::sync::Arc;

use cookie::{Cookie, Key};
use http::{HeaderName, HeaderValue};

use super::options::{Config, ErrorHandler, Protection};
use crate::events::Observer;
use crate::expiry::{Deadlines, Expiry};
use crate::stats::SessionStats;
use crate::store::SessionStore;

/// The immutable settings every request of one applied layer shares.
pub(crate) struct Settings {
    pub(crate) cookie_name: String,
    pub(crate) protection: Protection,
    /// Keys still accepted when reading, newest first.
    pub(crate) previous_keys: Vec<Key>,
    pub(crate) header: Option<HeaderName>,
    pub(crate) expiry: Expiry,
    pub(crate) deadlines: Deadlines,
    pub(crate) max_size: Option<usize>,
    /// Most sessions one principal may have; `None` for no limit.
    pub(crate) max_per_principal: Option<std::num::NonZeroUsize>,
    /// `None`: the default `500` (`error::internal_server_error`).
    pub(crate) error_handler: Option<ErrorHandler>,
    /// The layer's counters.
    pub(crate) stats: Arc<SessionStats>,
    /// The layer's store. Here, so that a request's session holds one `Arc` for all it needs.
    pub(crate) store: Arc<dyn SessionStore>,
    /// Events, metrics and store-call spans.
    pub(crate) observer: Observer,
    /// What the `cookie` crate writes after `name=value` in `Set-Cookie`: formatted once.
    pub(crate) cookie_attributes: String,
    /// The `Set-Cookie` value that makes the browser forget the id; `None` if the name, path or
    /// domain make no valid header value (refused by validation before it gets here).
    pub(crate) removal_cookie: Option<HeaderValue>,
}

impl Settings {
    /// The settings of a layer with this (validated) configuration, these counters and this
    /// store.
    pub(crate) fn new(
        config: &Config,
        stats: Arc<SessionStats>,
        store: Arc<dyn SessionStore>,
        observer: &Observer,
    ) -> Self {
        Self {
            cookie_name: config.cookie_name.clone(),
            protection: config.protection.clone(),
            previous_keys: config.previous_keys.clone(),
            header: config.header.clone(),
            expiry: config.expiry,
            deadlines: config.deadlines,
            max_size: config.max_size,
            max_per_principal: config.max_per_principal,
            error_handler: config.error_handler.clone(),
            stats,
            store,
            observer: observer.with_hook(config.hook.clone()),
            cookie_attributes: attributes(config),
            removal_cookie: removal(config),
        }
    }

    /// The key that signs or encrypts what is written, and the ones that still verify.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        let current = match &self.protection {
            Protection::Plain => None,
            Protection::Signed(key) | Protection::Private(key) => Some(key),
        };
        current.into_iter().chain(&self.previous_keys)
    }
}

/// The cookie as the `cookie` crate builds it for this configuration, with `value`.
fn base(config: &Config, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::build((config.cookie_name.clone(), value))
        .path(config.path.clone())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(config.same_site)
        .build();
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}

/// What the `cookie` crate writes after `name=value` for this configuration.
fn attributes(config: &Config) -> String {
    let formatted = base(config, String::new()).to_string();
    formatted
        .get(config.cookie_name.len() + 1..)
        .unwrap_or_default()
        .to_owned()
}

/// Same name, path, domain, Secure, HttpOnly and SameSite as when it was set, so it replaces
/// exactly that cookie.
fn removal(config: &Config) -> Option<HeaderValue> {
    let mut cookie = base(config, String::new());
    cookie.make_removal();
    HeaderValue::try_from(cookie.to_string()).ok()
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("cookie_name", &self.cookie_name)
            .field("protection", &self.protection.kind())
            .field("previous_keys", &self.previous_keys.len())
            .field("header", &self.header)
            .field("expiry", &self.expiry)
            .field("deadlines", &self.deadlines)
            .field("max_size", &self.max_size)
            .field("cookie_attributes", &self.cookie_attributes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::SameSite;

    /// The pre-formatted attributes are exactly what the `cookie` crate writes, for every
    /// attribute and `Max-Age`.
    #[test]
    fn set_cookie_matches_the_cookie_crate() {
        let configs = [
            Config::default(),
            Config {
                cookie_name: "__Host-sid".to_owned(),
                same_site: SameSite::Strict,
                ..Config::default()
            },
            Config {
                secure: false,
                http_only: false,
                same_site: SameSite::None,
                path: "/app".to_owned(),
                domain: Some("example.com".to_owned()),
                ..Config::default()
            },
        ];
        for config in configs {
            let settings = Settings::new(
                &config,
                Arc::default(),
                Arc::new(crate::MemoryStore::default()),
                &crate::events::Observer::new(None, "test"),
            );
            for max_age in [
                None,
                Some(0),
                Some(9),
                Some(10),
                Some(86_400),
                Some(-5),
                Some(i64::MAX),
            ] {
                let mut expected = base(&config, "v4lue".to_owned());
                if let Some(seconds) = max_age {
                    expected.set_max_age(cookie::time::Duration::seconds(seconds.max(0)));
                }
                let got = crate::id::transport::set_cookie(&settings, "v4lue", max_age);
                assert_eq!(
                    got.unwrap().to_str().unwrap(),
                    expected.to_string(),
                    "{config:?}"
                );
            }
        }
    }
}
