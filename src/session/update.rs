//! Writing now rather than at the end of the request: [`Session::update`] (compare-and-set on
//! one key), [`Session::save`] and [`Session::touch`].

use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::state::Origin;
use super::swap::{OnNew, Swap};
use super::{size, KeyName, Session};
use crate::clock::now_ms;
use crate::error::Error;
use crate::store::{KeyChange, Precondition};

/// A random wait before attempt `attempt + 1`: up to 100 µs, doubling per conflict, at most
/// 6.4 ms.
pub(super) fn backoff(attempt: usize) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let ceiling = 100_u64 << attempt.min(6);
    // `RandomState` is randomly seeded: enough randomness to spread the racers apart.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    std::time::Duration::from_micros(random % ceiling)
}

impl Session {
    /// Changes the value under `key` by `f` and stores the result at once, without losing a
    /// concurrent change of the same key: the same-key counterpart of per-key change sets.
    ///
    /// `f` gets the current value (`None` if there is none) and returns the new one. The new
    /// value is written in one store step, and only if the key still holds what `f` saw
    /// (compare-and-set: [`ChangeSet::expect`](crate::store::ChangeSet::expect)); if another
    /// request changed it meanwhile, `update` waits a random moment (growing with each
    /// conflict, at most a few milliseconds), reads the key again and reruns `f`, up to
    /// [`UPDATE_ATTEMPTS`](crate::defaults::UPDATE_ATTEMPTS) times. No lock is taken: requests that do not touch the key never
    /// wait. Two tabs adding to one cart, or a counter, keep every change.
    ///
    /// It takes effect at once, not at the end of the request, so the value it returns is the
    /// one stored; the request's other changes are still saved at the end. On a session that
    /// does not exist yet, `update` creates it (with whatever the handler inserted before): the
    /// one store call a new session costs anyway, and its cookie goes out with the response.
    /// An `insert` or `remove` of the same key earlier in the request is replaced by `update`'s
    /// result.
    ///
    /// A 5xx response does not undo it (it was saved before the response was decided). If the
    /// stored session ends or moves meanwhile (a logout, or a login in another tab), that
    /// request wins: `update` writes nothing and returns `f(None)`, and nothing else this
    /// request does to the session is saved; its response leaves the cookie alone, so the
    /// browser keeps the id the login set.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use axum::{routing::get, Router};
    /// use http_body_util::BodyExt;
    /// use sessionware::{Error, MemoryStore, Session, SessionLayer};
    /// use tower::ServiceExt;
    ///
    /// async fn add_to_cart(session: Session) -> Result<String, Error> {
    ///     let items = session
    ///         .update("cart", |cart: Option<Vec<String>>| {
    ///             let mut cart = cart.unwrap_or_default();
    ///             cart.push("apple".to_owned());
    ///             cart
    ///         })
    ///         .await?;
    ///     Ok(items.len().to_string())
    /// }
    ///
    /// let app = Router::new()
    ///     .route("/add", get(add_to_cart))
    ///     .layer(SessionLayer::new(MemoryStore::default()));
    /// let res = app.clone().oneshot(http::Request::get("/add").body(axum::body::Body::empty()).unwrap()).await.unwrap();
    /// let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    /// assert_eq!(&res.into_body().collect().await.unwrap().to_bytes()[..], b"1");
    ///
    /// let again = http::Request::get("/add").header("cookie", cookie).body(axum::body::Body::empty()).unwrap();
    /// let res = app.oneshot(again).await.unwrap();
    /// assert_eq!(&res.into_body().collect().await.unwrap().to_bytes()[..], b"2");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ReservedKey`] if `key` starts with `__`; [`Error::SessionEnded`] if, after the
    /// response, the session has ended (nothing was written);
    /// [`Error::Conflict`] if the key kept changing for [`UPDATE_ATTEMPTS`](crate::defaults::UPDATE_ATTEMPTS) attempts;
    /// [`Error::Deserialize`] if the stored value is not a `T`; [`Error::Serialize`] if the new
    /// one cannot be turned into JSON; [`Error::TooLarge`] if the session would outgrow the
    /// size cap; [`Error::ResponseSent`] if it would have to create the session after the
    /// response has gone (its cookie could not reach the client); [`Error::Store`] if the store
    /// failed.
    pub async fn update<T, F>(&self, key: impl KeyName<T>, mut f: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T,
    {
        let key = key.key_name();
        super::key::refuse_reserved(key)?;
        self.swap(key, OnNew::SaveNow, |state| {
            // `f` sees the request's view (an earlier insert in this request included); the
            // write expects what the store holds.
            let current = state
                .data
                .get(key)
                .cloned()
                .map(T::deserialize)
                .transpose()
                .map_err(|source| Error::Deserialize {
                    key: key.to_owned(),
                    source,
                })?;
            let next = f(current);
            let value = serde_json::to_value(&next).map_err(|source| Error::Serialize {
                key: key.to_owned(),
                source,
            })?;
            let swap = Swap {
                expect: [(
                    key.to_owned(),
                    Precondition::still(state.stored(key).cloned()),
                )]
                .into(),
                updates: [(key.to_owned(), KeyChange::Set(value))].into(),
            };
            Ok((Some(swap), next))
        })
        .await
    }

    /// Writes the changes made so far now, as the end of the request would, and keeps the handle
    /// usable (later changes need another `save`, or the end of the request).
    ///
    /// For a `Session` moved into a WebSocket handler, an SSE stream or a spawned task: the
    /// layer saves at the end of the request, before the response leaves, so changes made after
    /// that are saved only by `save`. Changes made after the response and never saved are
    /// reported by a `tracing` warning when the last handle is dropped.
    ///
    /// A kept handle's values are a snapshot: what was stored when it last read or wrote.
    /// Another request (a second socket of the same browser) may have changed them since;
    /// [`reload`](Self::reload) reads them again. So a value that other requests change too is
    /// best written with [`update`](Self::update), which stores at once and loses no
    /// concurrent change; `insert` + `save` writes the snapshot's idea of it (the last writer
    /// wins).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use sessionware::{Error, MemoryStore, Session};
    ///
    /// // In a WebSocket handler, after the upgrade response has gone:
    /// async fn on_message(session: &Session, text: &str) -> Result<u64, Error> {
    ///     // A counter two sockets share: `update`, not get + insert + save.
    ///     let n = session.update("messages", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
    ///     // A value only this socket writes: insert, then save.
    ///     session.insert("last_message", text).await?;
    ///     session.save().await?;
    ///     Ok(n)
    /// }
    /// # let _ = on_message;
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::SessionEnded`] after the response if the session has ended (logged out or
    /// revoked elsewhere, expired): nothing was saved. As at the end of a request
    /// ([`Error::Store`], [`Error::TooLarge`]), and
    /// [`Error::ResponseSent`] if saving needs a new id (a new session, or a `cycle_id`) after
    /// the response has gone: the client could never learn it.
    pub async fn save(&self) -> Result<(), Error> {
        self.save_now().await
    }

    /// Extends the session's idle deadline now, as a request that reads it would (but whether
    /// or not a quarter of the idle period has passed): for a WebSocket that stays open for
    /// hours without a request, so the session does not expire under it.
    ///
    /// # Errors
    ///
    /// [`Error::SessionEnded`] after the response if the session has ended; [`Error::Store`]
    /// if the store failed.
    pub async fn touch(&self) -> Result<(), Error> {
        self.touch_now().await
    }

    /// Reads the stored values again, keeping this handle's unsaved changes on top: for a
    /// handle kept after the response (a WebSocket's), whose values are a snapshot of what
    /// was stored when it last read or wrote (see [`save`](Self::save)).
    ///
    /// # Errors
    ///
    /// [`Error::SessionEnded`] after the response if the session has ended; [`Error::Store`]
    /// if the store failed.
    pub async fn reload(&self) -> Result<(), Error> {
        self.load().await?;
        self.refuse_if_ended()?;
        self.reread().await?;
        self.refuse_if_ended()
    }

    /// Called by the layer once the response is decided: from now on, changes need `save`. A
    /// failed (`5xx`) response's changes were not saved and are dropped.
    pub(crate) fn finish(&self, outcome: super::plan::Outcome) {
        if outcome == super::plan::Outcome::ServerError {
            let mut state = self.state();
            state.discard_changes();
            if matches!(state.origin, Origin::New) {
                state.data.clear();
            }
        }
        self.inner.responded.store(true, Ordering::Release);
    }

    /// The deadline a write now gives a session created at `created_at`.
    pub(super) fn next_deadline(&self, created_at: i64) -> i64 {
        let rules = self.rules();
        let state = self.state();
        let expiry = state.settings.expiry.unwrap_or(rules.expiry);
        let absolute = rules.deadlines.absolute(&state.settings);
        rules
            .deadlines
            .expires_at(expiry, absolute, created_at, now_ms())
    }

    /// Sets `key` in this request's view, to be saved with the request (size cap included):
    /// `insert`, `insert_fields`, and on a new session `update` and the other swaps (CSRF).
    /// Setting the value the key already holds changes nothing (and so saves nothing).
    pub(super) fn set_locally(&self, key: &str, value: Value) -> Result<(), Error> {
        let mut state = self.state();
        if state.data.get(key) == Some(&value) {
            return Ok(());
        }
        if let Some(limit) = self.inner.settings.max_size {
            let size = size::after_insert(&state, key, &value);
            if size > limit {
                return Err(Error::TooLarge {
                    key: key.to_owned(),
                    size,
                    limit,
                });
            }
            state.size = Some(size);
        }
        state.set(key, value);
        Ok(())
    }
}
