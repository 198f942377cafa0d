//! The [`Session`] handle that handlers use.
//!
//! A `Session` is cheap to clone (all clones share one state) and lazy: nothing is parsed,
//! verified or loaded until the first call that needs the data. Changes are kept as a change
//! set (per key set/remove, clear, cycle, destroy, expiry) and written back by the layer after
//! the handler returns, before the response leaves.

mod commit;
mod csrf;
mod extract;
mod fields;
mod flash;
mod key;
mod plan;
mod principal;
mod settle;
mod size;
mod state;
mod swap;
mod update;

pub(crate) use commit::CookieAction;
#[cfg(feature = "test-kit")]
pub(crate) use csrf::SECRET_KEY;
pub use extract::SessionRejection;
pub use flash::{FlashMessage, FlashRejection, Flashes, Level};
pub use key::{KeyName, SessionKey};
pub(crate) use plan::{Outcome, Plan};

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use self::state::{Origin, State, Stored};
use crate::clock::to_ms;
use crate::config::Settings;
use crate::error::{Error, StoreError};
use crate::events::{EventKind, Operation};
use crate::expiry::Expiry;
use crate::id::transport::{read_id, Incoming, ReadId};
use crate::id::SessionId;

/// A user's session, as a handler sees it.
///
/// Extract it in any handler behind a [`SessionLayer`](crate::SessionLayer). Values are any
/// serde type, stored as JSON. Every data method is `async` because the first one loads the
/// session from the store (once per request; later calls use what was loaded).
///
/// ```
/// use sessionware::{Error, Session};
///
/// async fn login(session: Session) -> Result<&'static str, Error> {
///     // A new id after a privilege change defeats session fixation.
///     session.cycle_id().await?;
///     session.insert("user_id", 42_u64).await?;
///     Ok("welcome")
/// }
///
/// async fn logout(session: Session) -> Result<&'static str, Error> {
///     session.destroy().await?;
///     Ok("bye")
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The layer's settings, its store among them.
    settings: Arc<Settings>,
    incoming: Incoming,
    loaded: OnceCell<()>,
    state: Mutex<State>,
    /// The layer has sent the response: changes from here on need [`Session::save`].
    responded: AtomicBool,
}

impl Inner {
    fn responded(&self) -> bool {
        self.responded.load(Ordering::Acquire)
    }
}

impl Drop for Inner {
    /// The last handle is gone. Changes made after the response (in a WebSocket or a spawned
    /// task) and never saved are lost: say so, rather than drop them quietly. A warning here
    /// rather than an error from the write: a write cannot know whether a `save` will follow.
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.responded.load(Ordering::Acquire) && state.has_unsaved_changes() {
            tracing::warn!(
                session = ?state.id().map(|id| id.store_key().short()),
                "session changes made after the response were never saved and are lost; \
                 call `session.save().await` after changing a session outside a request"
            );
        }
    }
}

impl Session {
    pub(crate) fn new(settings: Arc<Settings>, incoming: Incoming) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                incoming,
                loaded: OnceCell::new(),
                state: Mutex::default(),
                responded: AtomicBool::new(false),
            }),
        }
    }

    /// The settings of the layer that made this session.
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Reads the value under `key`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed; [`Error::Deserialize`] if the stored value
    /// is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: impl KeyName<T>) -> Result<Option<T>, Error> {
        let key = key.key_name();
        self.load().await?;
        let state = self.state();
        state
            .data
            .get(key)
            .map(|value| T::deserialize(value))
            .transpose()
            .map_err(|source| Error::Deserialize {
                key: key.to_owned(),
                source,
            })
    }

    /// Stores `value` under `key`, replacing what was there.
    ///
    /// Inserting the value a key already holds changes nothing and costs no store write.
    ///
    /// # Errors
    ///
    /// [`Error::ReservedKey`] if `key` starts with `__` (the crate's own keys);
    /// [`Error::Serialize`] if `value` cannot be turned into JSON; [`Error::Store`] if loading the
    /// session failed; [`Error::TooLarge`] if the session would outgrow
    /// [`SessionLayer::with_max_session_size`](crate::SessionLayer::with_max_session_size) (the
    /// session is left as it was).
    pub async fn insert<T: Serialize>(&self, key: impl KeyName<T>, value: T) -> Result<(), Error> {
        let key = key.key_name();
        key::refuse_reserved(key)?;
        self.insert_any(key, value).await
    }

    /// [`insert`](Self::insert) without the check for the crate's own keys: for them.
    pub(super) async fn insert_any<T: Serialize>(&self, key: &str, value: T) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(|source| Error::Serialize {
            key: key.to_owned(),
            source,
        })?;
        self.load().await?;
        self.set_locally(key, value)
    }

    /// Removes the value under `key` and returns it, or `None` if there was none.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed; [`Error::Deserialize`] if the removed value
    /// is not a `T` (it is removed all the same).
    pub async fn remove<T: DeserializeOwned>(
        &self,
        key: impl KeyName<T>,
    ) -> Result<Option<T>, Error> {
        let key = key.key_name();
        self.load().await?;
        let old = self.state().remove(key);
        old.map(T::deserialize)
            .transpose()
            .map_err(|source| Error::Deserialize {
                key: key.to_owned(),
                source,
            })
    }

    /// Removes every value; the session itself (its id) stays, and so do the crate's own keys
    /// (the CSRF secret, so the forms of the user's other tabs keep working, and unread flash
    /// messages). To end the session, [`destroy`](Self::destroy) it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed.
    pub async fn clear(&self) -> Result<(), Error> {
        self.load().await?;
        self.state().clear_all();
        Ok(())
    }

    /// Gives the session a new id and keeps its data. Call it after login (or any privilege
    /// change) so an id planted or seen before cannot ride along; [`log_in`](Self::log_in)
    /// does it for you. The CSRF secret is replaced too
    /// ([`csrf_token`](Self::csrf_token)).
    ///
    /// The old id stops working once the response is out: the store moves the session
    /// atomically, and the new id goes out in the cookie.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed.
    pub async fn cycle_id(&self) -> Result<(), Error> {
        self.load().await?;
        self.rotate_csrf();
        if let Origin::Stored(stored) = &mut self.state().origin {
            stored.cycle = true;
        }
        Ok(())
    }

    /// Ends the session: it is deleted from the store and the client gets a removal cookie.
    ///
    /// The handle starts over as a fresh, empty session: values inserted after `destroy` go into
    /// a new session with a new id (for example a "you are logged out" message).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed.
    pub async fn destroy(&self) -> Result<(), Error> {
        self.load().await?;
        self.state().destroy();
        Ok(())
    }

    /// The id of the stored session this request works on.
    ///
    /// `None` until the session was loaded (by any data method), and for a fresh session, which
    /// gets its id when the layer saves it. After [`cycle_id`](Self::cycle_id) this is still the
    /// old id until the response is out.
    pub fn id(&self) -> Option<SessionId> {
        self.state().id().cloned()
    }

    /// The expiry policy of this session: its own, if set (now or in an earlier request, once
    /// loaded), otherwise the layer's.
    pub fn expiry(&self) -> Expiry {
        self.state()
            .settings
            .expiry
            .unwrap_or(self.inner.settings.expiry)
    }

    /// The absolute timeout of this session: its own, if set (bounded by
    /// [`SessionLayer::with_max_absolute_timeout`](crate::SessionLayer::with_max_absolute_timeout)),
    /// otherwise the layer's. The session ends this long after it was created.
    pub fn absolute_timeout(&self) -> std::time::Duration {
        self.inner
            .settings
            .deadlines
            .absolute(&self.state().settings)
    }

    /// Gives this session its own absolute timeout, saved with it; `None` returns to the
    /// layer's ([`SessionLayer::with_absolute_timeout`](crate::SessionLayer::with_absolute_timeout)).
    /// Longer than the layer's
    /// [`with_max_absolute_timeout`](crate::SessionLayer::with_max_absolute_timeout) (default 30
    /// days) is cut to it. Counted from the session's creation, like the layer's.
    ///
    /// This is "keep me signed in": one session may outlive the layer's 7-day default, up to
    /// the bound the layer sets. See [`set_expiry`](Self::set_expiry) for an example.
    pub fn set_absolute_timeout(&self, timeout: Option<std::time::Duration>) {
        let mut state = self.state();
        state.settings.absolute_timeout = timeout;
        state.absolute_set = true;
    }

    /// Sets this session's own expiry policy, saved with the session; `None` returns to the
    /// layer's default.
    ///
    /// A session still ends at its absolute timeout (the layer's, 7 days by default); for
    /// "keep me signed in" give it a longer one with
    /// [`set_absolute_timeout`](Self::set_absolute_timeout) too:
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use axum::{routing::get, Router};
    /// use sessionware::{Error, Expiry, MemoryStore, Session, SessionLayer};
    /// use tower::ServiceExt;
    ///
    /// const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);
    ///
    /// async fn remember_me(session: Session) -> Result<(), Error> {
    ///     session.insert("remember", true).await?;
    ///     session.set_expiry(Some(Expiry::OnInactivity(MONTH)));
    ///     session.set_absolute_timeout(Some(MONTH));
    ///     Ok(())
    /// }
    ///
    /// let app = Router::new()
    ///     .route("/", get(remember_me))
    ///     .layer(SessionLayer::new(MemoryStore::default()));
    /// let res = app.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
    /// let cookie = res.headers()["set-cookie"].to_str().unwrap();
    /// // The browser keeps the cookie for 30 days, and so does the server.
    /// assert!(cookie.contains("Max-Age=2592000"), "{cookie}");
    /// # });
    /// ```
    pub fn set_expiry(&self, expiry: Option<Expiry>) {
        let mut state = self.state();
        state.settings.expiry = expiry;
        state.expiry_set = true;
    }

    /// Where this session's events, metrics and store-call spans go.
    pub(crate) fn observer(&self) -> &crate::events::Observer {
        &self.inner.settings.observer
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few map operations that cannot leave the state half
        // changed, so a poisoned lock (a panic elsewhere while it was held) is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the request sent its session id in the id header rather than the cookie (see
    /// [`SessionLayer::with_header`](crate::SessionLayer::with_header)).
    pub(crate) fn id_in_header(&self) -> bool {
        self.inner.incoming.id_in_header()
    }

    /// Loads the session once: verifies the incoming id, then asks the store.
    async fn load(&self) -> Result<(), Error> {
        self.inner
            .loaded
            .get_or_try_init(|| async {
                let settings = &self.inner.settings;
                let (id, reissue) = match read_id(settings, &self.inner.incoming) {
                    ReadId::Valid { id, reissue } => (Some(id), reissue),
                    ReadId::Absent => (None, false),
                    ReadId::Rejected(reason) => {
                        settings.stats.refused(reason);
                        settings.observer.emit(EventKind::RefusedId, None, None);
                        (None, false)
                    }
                };
                let record = match &id {
                    Some(id) => match settings
                        .observer
                        .call(Operation::Load, settings.store.load(&id.store_key()))
                        .await
                    {
                        Ok(record) => record,
                        Err(StoreError::Corrupt(detail)) => {
                            tracing::error!(session = %id.store_key().short(), detail, "stored session is corrupt; starting a fresh session");
                            None
                        }
                        Err(error) => return Err(Error::Store(error)),
                    },
                    None => None,
                };
                let Some(id) = id else {
                    return Ok(());
                };
                let Some(record) = record else {
                    // Moved by a log-in (a cycle) while this request was on its way: the
                    // browser holds the new id by now. Saving here would start a new session
                    // whose cookie replaces it, logging the user out; nothing is saved and the
                    // cookie is left alone, as when the move happens during the request.
                    let key = id.store_key();
                    let moved = settings.store.was_moved(&key);
                    if settings.observer.call(Operation::WasMoved, moved).await? {
                        tracing::info!(
                            session = %key.short(),
                            "request carries an id a log-in moved moments ago; nothing is saved"
                        );
                        self.state().origin = Origin::Ended;
                        return Ok(());
                    }
                    settings.stats.unknown(&key.short());
                    settings.observer.emit(EventKind::UnknownId, None, Some(&key));
                    return Ok(());
                };
                let mut state = self.state();
                state.origin = Origin::Stored(Stored {
                    id,
                    created_at: to_ms(record.created_at),
                    expires_at: to_ms(record.expires_at),
                    reissue,
                    cycle: false,
                    owner: record.owner.map(Box::new),
                });
                if !state.expiry_set {
                    state.settings.expiry = record.expiry.expiry;
                }
                if !state.absolute_set {
                    state.settings.absolute_timeout = record.expiry.absolute_timeout;
                }
                // Changes made before the load (only `set_expiry` can) stay on top.
                state.data = record.data;
                Ok(())
            })
            .await
            .map(|_| ())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("id", &state.id())
            .field("loaded", &self.inner.loaded.initialized())
            .field("keys", &state.data.len())
            .finish_non_exhaustive()
    }
}
