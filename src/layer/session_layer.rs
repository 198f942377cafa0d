//! [`SessionLayer`]: configuration and the tower [`Layer`].

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum_core::response::Response;
use http::HeaderName;
use tower_layer::Layer;

use cookie::{Key, SameSite};

use super::SessionService;
use crate::config::Settings;
use crate::config::{validate, ConfigError};
use crate::config::{Config, Protection};
use crate::error::Error;
use crate::events::{Observer, SessionEvent};
use crate::expiry::Expiry;
use crate::stats::SessionStats;
use crate::store::SessionStore;
use crate::user_sessions::Sessions;

/// Adds sessions to every route it wraps. See the [module docs](crate::layer) for the request
/// flow and examples.
///
/// Cloning is cheap; clones share the store and the counters ([`stats`](Self::stats)).
/// Builder methods return a new layer and change nothing that was already applied: a layer's
/// settings are fixed when it is applied to a router.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    /// Behind one `Arc`, so cloning the layer (axum clones it for every route, and in some
    /// setups for every request) is one counter increment; builder calls copy it on write.
    built: Arc<Built>,
}

/// A layer's configuration and what it makes.
#[derive(Clone, Debug)]
struct Built {
    config: Config,
    /// What `config` makes, computed by every builder call (at start-up), so that applying
    /// the layer costs one `Arc` clone: axum applies a router's layers again for every request
    /// to a handler that was not turned into a service first (a `Router<()>` called directly,
    /// as in tests). It holds the store and the counters, which clones share.
    settings: Arc<Settings>,
    /// `config`'s verdict, checked by the same builder calls.
    valid: Result<(), ConfigError>,
}

impl SessionLayer {
    /// A layer keeping sessions in `store`, with secure defaults: cookie `id`, `Secure`,
    /// `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, a browser-session cookie
    /// ([`Expiry::OnSessionEnd`]) with a 24-hour server-side idle timeout, and a 7-day absolute
    /// timeout.
    pub fn new<S: SessionStore>(store: S) -> Self {
        let config = Config::default();
        let observer = Observer::new(None, std::any::type_name::<S>());
        let settings = Settings::new(&config, Arc::default(), Arc::new(store), &observer);
        Self {
            built: Arc::new(Built {
                valid: validate(&config),
                settings: Arc::new(settings),
                config,
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        &mut Arc::make_mut(&mut self.built).config
    }

    /// The layer with its settings made again from its (changed) configuration.
    fn settled(mut self) -> Self {
        let built = Arc::make_mut(&mut self.built);
        built.valid = validate(&built.config);
        let stats = Arc::clone(&built.settings.stats);
        let store = Arc::clone(&built.settings.store);
        let observer = &built.settings.observer;
        built.settings = Arc::new(Settings::new(&built.config, stats, store, observer));
        self
    }

    /// The cookie's name. Default `id`: short, and it does not advertise the framework.
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config().cookie_name = name.into();
        self.settled()
    }

    /// The cookie's `Secure` attribute: sent over HTTPS only. Default `true`; turn it off only
    /// for plain-HTTP development.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.config().secure = secure;
        self.settled()
    }

    /// The cookie's `HttpOnly` attribute: invisible to JavaScript. Default `true`.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.config().http_only = http_only;
        self.settled()
    }

    /// The cookie's `SameSite` attribute. Default [`SameSite::Lax`].
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config().same_site = same_site;
        self.settled()
    }

    /// The cookie's `Path`. Default `/`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.config().path = path.into();
        self.settled()
    }

    /// The cookie's `Domain`. Default none: the cookie goes back to this host only, which is
    /// the safer choice.
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.config().domain = Some(domain.into());
        self.settled()
    }

    /// The default [`Expiry`] of sessions. Default [`Expiry::OnSessionEnd`].
    #[must_use]
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.config().expiry = expiry;
        self.settled()
    }

    /// The server-side idle timeout of [`Expiry::OnSessionEnd`] sessions. Default 24 hours.
    #[must_use]
    pub fn with_session_end_idle_timeout(mut self, idle: Duration) -> Self {
        self.config().deadlines.session_end_idle = idle;
        self.settled()
    }

    /// The absolute timeout: a session ends this long after it was created, however active it
    /// is. Default 7 days. Enforced by the store, not by the cookie.
    #[must_use]
    pub fn with_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config().deadlines.absolute = timeout;
        self.settled()
    }

    /// The longest absolute timeout a handler may give one session with
    /// [`Session::set_absolute_timeout`](crate::Session::set_absolute_timeout) (for "keep me
    /// signed in"); longer requests are cut to it. Default
    /// [`MAX_ABSOLUTE_TIMEOUT`](crate::defaults::MAX_ABSOLUTE_TIMEOUT) (30 days). It bounds
    /// only what handlers ask for; the layer's own
    /// [`with_absolute_timeout`](Self::with_absolute_timeout) applies to every other session.
    #[must_use]
    pub fn with_max_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config().deadlines.max_absolute = timeout;
        self.settled()
    }

    /// Signs the cookie with `key` (HMAC-SHA256): the client can read the id but cannot forge
    /// or alter one. Previous keys for rotation: [`with_previous_keys`](Self::with_previous_keys).
    #[must_use]
    pub fn with_signed(mut self, key: Key) -> Self {
        self.config().protection = Protection::Signed(key);
        self.settled()
    }

    /// Encrypts the cookie with `key` (AES-256-GCM): the client can neither read nor forge the
    /// id. Previous keys for rotation: [`with_previous_keys`](Self::with_previous_keys).
    #[must_use]
    pub fn with_private(mut self, key: Key) -> Self {
        self.config().protection = Protection::Private(key);
        self.settled()
    }

    /// Keys that are still accepted when reading a signed or private cookie, newest first. A
    /// cookie that verifies with one of them is re-issued under the current key, so users move
    /// to the new key as they come back.
    #[must_use]
    pub fn with_previous_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.config().previous_keys = keys.into_iter().collect();
        self.settled()
    }

    /// Also carries the id in this request/response header, for API and mobile clients that do
    /// not keep cookies. A request's header wins over its cookie; responses that set the cookie
    /// also set the header (empty when the session ended). The value is protected like the
    /// cookie (plain, signed or private).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.config().header = Some(name);
        self.settled()
    }

    /// Caps a session's serialized size (its values as one JSON object), in bytes. An
    /// [`insert`](crate::Session::insert) that would go over it fails with
    /// [`Error::TooLarge`] and changes nothing. Default
    /// [`MAX_SESSION_SIZE`](crate::defaults::MAX_SESSION_SIZE) (256 KiB); `usize::MAX` for
    /// no limit.
    #[must_use]
    pub fn with_max_session_size(mut self, bytes: usize) -> Self {
        self.config().max_size = (bytes != usize::MAX).then_some(bytes);
        self.settled()
    }

    /// Caps how many sessions one principal may have at a time: after a
    /// [`log_in`](crate::Session::log_in) is stored, the principal's `n` most recent log-ins
    /// are kept and the others revoked (a list and a delete per revoked session, for each
    /// log-in; nothing for other requests). Every log-in ranks the sessions the same way, by
    /// when they were tied, its own included, so simultaneous log-ins agree and leave exactly
    /// `n`; a log-in may find its own session revoked when `n` newer ones took the places. If
    /// this step fails, the log-in still gets its cookie (the failure is logged). Default: no
    /// cap.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use sessionware::{MemoryStore, SessionLayer};
    ///
    /// let one_device = NonZeroUsize::new(1).unwrap();
    /// let layer = SessionLayer::new(MemoryStore::default())
    ///     .with_max_sessions_per_principal(one_device);
    /// assert_eq!(layer.validate(), Ok(()));
    /// ```
    #[must_use]
    pub fn with_max_sessions_per_principal(mut self, n: NonZeroUsize) -> Self {
        self.config().max_per_principal = Some(n);
        self.settled()
    }

    /// Calls `hook` with every [`SessionEvent`]: logged in, revoked, destroyed, refused ids,
    /// store errors... for an audit log (see [`events`](crate::events)). Once per event, after
    /// the store step it reports succeeded; [`Sessions`] from [`sessions`](Self::sessions)
    /// reports through it too. A panicking hook is caught and logged. Without a hook, events
    /// cost nothing.
    ///
    /// ```
    /// use sessionware::events::SessionEvent;
    /// use sessionware::{MemoryStore, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::default()).on_event(|event: &SessionEvent| {
    ///     println!(
    ///         r#"{{"event":"{}","principal":{:?}}}"#,
    ///         event.kind().as_str(),
    ///         event.principal().unwrap_or_default()
    ///     );
    /// });
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn on_event(mut self, hook: impl Fn(&SessionEvent) + Send + Sync + 'static) -> Self {
        self.config().hook = Some(Arc::new(hook));
        self.settled()
    }

    /// A handle on the sessions of this layer's store by principal: list a user's sessions,
    /// revoke one, revoke them all (after a password reset, from a background job that has no
    /// session of the user). See [`Sessions`].
    pub fn sessions(&self) -> Sessions {
        Sessions::new(
            self.built.settings.store.clone(),
            self.built.settings.observer.clone(),
        )
    }

    /// Seeds and reads sessions of this layer in tests (feature `test-kit`). See
    /// [`test_kit`](crate::test_kit).
    #[cfg(feature = "test-kit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-kit")))]
    pub fn test_sessions(&self) -> crate::test_kit::TestSessions {
        crate::test_kit::TestSessions::new(
            self.built.settings.store.clone(),
            Arc::clone(&self.built.settings),
        )
    }

    /// Counts of refused and unknown session ids since this layer was built, for alerting on
    /// id guessing. See [`SessionStats`].
    pub fn stats(&self) -> Arc<SessionStats> {
        self.built.settings.stats.clone()
    }

    /// Checks the configuration: what [`Layer::layer`] checks before it panics.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found: an invalid cookie name, path or domain, a `__Host-` or
    /// `__Secure-` name without the attributes browsers require for it, `SameSite=None` without
    /// `Secure`, a zero timeout or size cap.
    ///
    /// ```
    /// use sessionware::{ConfigError, MemoryStore, SameSite, SessionLayer};
    ///
    /// let ok = SessionLayer::new(MemoryStore::default());
    /// assert_eq!(ok.validate(), Ok(()));
    ///
    /// let insecure = SessionLayer::new(MemoryStore::default())
    ///     .with_same_site(SameSite::None)
    ///     .with_secure(false);
    /// assert_eq!(insecure.validate(), Err(ConfigError::SameSiteNone));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.built.valid.clone()
    }

    /// Replaces the response sent when saving the session fails (by default a `500` with the
    /// body `Internal Server Error`). The error has already been logged.
    #[must_use]
    pub fn with_error_handler<F>(mut self, handler: F) -> Self
    where
        F: Fn(&Error) -> Response + Send + Sync + 'static,
    {
        self.config().error_handler = Some(Arc::new(handler));
        self.settled()
    }
}

/// # Panics
///
/// When the configuration is invalid (see [`SessionLayer::validate`]), with a message that
/// starts `Invalid session configuration:`. Routers apply their layers when they are built, so
/// this happens at start-up, before any request.
impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        if let Err(error) = self.validate() {
            panic!("Invalid session configuration: {error}");
        }
        SessionService::new(inner, Arc::clone(&self.built.settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A builder call on a clone changes the clone only; what was applied before keeps its
    /// settings.
    #[test]
    fn builder_calls_on_a_clone_leave_the_original_alone() {
        let layer = SessionLayer::new(MemoryStore::default());
        let applied = Arc::clone(&layer.built.settings);
        let changed = layer.clone().with_http_only(false);
        assert!(applied.cookie_attributes.contains("HttpOnly"));
        assert!(!changed
            .built
            .settings
            .cookie_attributes
            .contains("HttpOnly"));
        // The original still has the settings applied before, unchanged.
        assert!(Arc::ptr_eq(&layer.built.settings, &applied));
        assert!(layer.built.settings.cookie_attributes.contains("HttpOnly"));
        // Clones share the counters and the store.
        assert!(Arc::ptr_eq(
            &layer.built.settings.stats,
            &changed.built.settings.stats
        ));
        assert!(Arc::ptr_eq(
            &layer.built.settings.store,
            &changed.built.settings.store
        ));
    }
}
