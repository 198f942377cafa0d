//! Flash messages: set in one request, shown in the next, and never again.

use std::sync::atomic::{AtomicU64, Ordering};

use axum_core::extract::FromRequestParts;
use http::request::Parts;
use serde::{Deserialize, Serialize};

use super::swap::{OnNew, Swap};
use super::{Session, SessionRejection};
use crate::clock::now_ms;
use crate::defaults;
use crate::error::Error;
use crate::store::{KeyChange, Precondition};

/// The prefix of the session keys that hold flash messages, one key per message. Keys that
/// start with `__` are the crate's own.
const PREFIX: &str = "__flash.";

/// Distinguishes messages set in the same millisecond by this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// How a flash message should be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Neutral information.
    Info,
    /// Something worked ("Signed in").
    Success,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Error,
}

impl Level {
    /// The level's name in lower case (`info`, `success`, `warning`, `error`): a CSS class.
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One flash message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashMessage {
    /// How to show it.
    pub level: Level,
    /// What it says.
    pub text: String,
    /// When it was set (Unix milliseconds) and its place among messages set together: the
    /// order messages are shown in.
    #[serde(rename = "at")]
    set_at: i64,
    #[serde(rename = "n")]
    sequence: u64,
}

impl Session {
    /// Adds a flash message: kept in the session for the next request that takes the messages
    /// ([`take_flashes`](Self::take_flashes) or the [`Flashes`] extractor), typically the page
    /// a redirect leads to. Each message is a value of its own, so requests adding messages at
    /// once all keep theirs. It is saved with the response, so a message added by a request that
    /// fails with a `5xx` is not kept. A session keeps at most [`MAX_UNREAD_FLASHES`](crate::defaults::MAX_UNREAD_FLASHES) unread
    /// messages; adding one more drops the oldest.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed; [`Error::TooLarge`] if the session would
    /// outgrow its size cap.
    pub async fn flash(&self, level: Level, text: impl Into<String>) -> Result<(), Error> {
        let message = FlashMessage {
            level,
            text: text.into(),
            set_at: now_ms(),
            sequence: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        };
        let key = format!("{PREFIX}{:016x}", rand_u64());
        self.insert_any(&key, message).await?;
        self.drop_oldest_flashes();
        Ok(())
    }

    /// Keeps at most [`MAX_UNREAD_FLASHES`](crate::defaults::MAX_UNREAD_FLASHES) messages: a session nobody reads the messages of
    /// (an API client, a bot following redirects) does not grow with every one.
    fn drop_oldest_flashes(&self) {
        let mut state = self.state();
        let mut messages: Vec<((i64, u64), String)> = state
            .data
            .iter()
            .filter(|(key, _)| key.starts_with(PREFIX))
            .map(|(key, value)| {
                // A value that is not a message sorts first: it is dropped first.
                let order = FlashMessage::deserialize(value)
                    .map_or((i64::MIN, 0), |message| (message.set_at, message.sequence));
                (order, key.clone())
            })
            .collect();
        if messages.len() <= defaults::MAX_UNREAD_FLASHES {
            return;
        }
        messages.sort_unstable();
        let excess = messages.len() - defaults::MAX_UNREAD_FLASHES;
        for (_, key) in messages.into_iter().take(excess) {
            state.remove(&key);
        }
    }

    /// Takes the flash messages: returns them in the order they were set and removes them in
    /// one store step, so that of two requests taking them at once exactly one gets each
    /// message. Takes effect at once (a later `5xx` does not bring them back).
    ///
    /// ```
    /// use axum::{body::Body, http::{header, Request}, response::Redirect, routing::get, Router};
    /// use sessionware::{Error, Flashes, Level, MemoryStore, Session, SessionLayer};
    /// use tower::ServiceExt;
    ///
    /// async fn save(session: Session) -> Result<Redirect, Error> {
    ///     session.flash(Level::Success, "Saved").await?;
    ///     Ok(Redirect::to("/"))
    /// }
    ///
    /// async fn page(Flashes(messages): Flashes) -> String {
    ///     messages.iter().map(|m| format!("{}: {}", m.level.as_str(), m.text)).collect()
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let app = Router::new()
    ///     .route("/save", get(save))
    ///     .route("/", get(page))
    ///     .layer(SessionLayer::new(MemoryStore::default()));
    /// let response = app.clone().oneshot(Request::get("/save").body(Body::empty()).unwrap()).await.unwrap();
    /// let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    /// let cookie = cookie.split(';').next().unwrap().to_owned();
    ///
    /// let page = || Request::get("/").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    /// let body = |r: axum::response::Response| axum::body::to_bytes(r.into_body(), 64);
    /// let first = app.clone().oneshot(page()).await.unwrap();
    /// assert_eq!(body(first).await.unwrap(), "success: Saved");
    /// let second = app.oneshot(page()).await.unwrap();
    /// assert_eq!(body(second).await.unwrap(), "", "shown once");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed; [`Error::Conflict`] if other requests kept changing
    /// the messages for every attempt.
    pub async fn take_flashes(&self) -> Result<Vec<FlashMessage>, Error> {
        let mut messages = self
            .swap(PREFIX, OnNew::Pending, |state| {
                let mut swap = Swap::default();
                let mut messages = Vec::new();
                // The view's messages: the stored ones and this request's own (which the
                // store does not hold yet: expected absent, and their removal only drops them
                // from the pending changes).
                for (key, value) in state.data.iter().filter(|(key, _)| key.starts_with(PREFIX)) {
                    let stored = state.stored(key).cloned();
                    swap.expect.insert(key.clone(), Precondition::still(stored));
                    swap.updates.insert(key.clone(), KeyChange::Remove);
                    // A value that is not a message (written by hand) is removed, not shown.
                    if let Ok(message) = FlashMessage::deserialize(value) {
                        messages.push(message);
                    }
                }
                let swap = (!swap.updates.is_empty()).then_some(swap);
                Ok((swap, messages))
            })
            .await?;
        messages.sort_by_key(|message| (message.set_at, message.sequence));
        Ok(messages)
    }
}

/// A random key suffix: unique among the messages of one session.
fn rand_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4();
    let (high, _) = bytes.as_u64_pair();
    high
}

/// The flash messages for this request, taken from the session (see
/// [`Session::take_flashes`]): an extractor for the handlers that render them.
///
/// **The messages are taken when the extractor runs**, before the handler: if a later
/// extractor rejects the request or the handler redirects without showing them, they are gone.
/// Where that can happen, take them in the handler, where they are rendered, with
/// [`Session::take_flashes`].
///
/// Rejected like [`Session`] when the route is not behind a
/// [`SessionLayer`](crate::SessionLayer); a store failure is a `500` ([`Error`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flashes(pub Vec<FlashMessage>);

impl<S: Send + Sync> FromRequestParts<S> for Flashes {
    type Rejection = FlashRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(FlashRejection::Missing)?;
        let messages = session
            .take_flashes()
            .await
            .map_err(FlashRejection::Failed)?;
        Ok(Flashes(messages))
    }
}

/// Why [`Flashes`] could not be extracted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlashRejection {
    /// The route is not behind a [`SessionLayer`](crate::SessionLayer).
    #[error(transparent)]
    Missing(SessionRejection),
    /// Taking the messages failed.
    #[error(transparent)]
    Failed(Error),
}

impl axum_core::response::IntoResponse for FlashRejection {
    fn into_response(self) -> axum_core::response::Response {
        match self {
            FlashRejection::Missing(missing) => missing.into_response(),
            FlashRejection::Failed(error) => error.into_response(),
        }
    }
}
