//! Where sessions live: the [`SessionStore`] trait and its implementations.
//!
//! A store holds one [`Record`] per session, filed under a [`StoreKey`] (the SHA-256 of the
//! session id; stores never see the id itself). The layer never reads a record, edits it and
//! writes it back whole: it sends the store a [`ChangeSet`] (per key set/remove, clear, new
//! deadline), which the store applies atomically and only to a live session. That is what lets
//! concurrent requests on one session write different keys without losing any, and what keeps a
//! destroyed session destroyed.
//!
//! | store | feature | notes |
//! |---|---|---|
//! | [`MemoryStore`] | always | sharded in-process map; expired entries purged incrementally |
//! | [`CachingStore`] | always | a cache store in front of a shared one |
//! | `SqliteStore` | `sqlite` | embedded database file (or in-memory), WAL, one writer connection |
//! | `PostgresStore` | `postgres` | `jsonb` rows, every operation one statement |
//! | `RedisStore` | `redis` | one hash per session, Lua scripts, native TTLs; standalone or cluster |
//!
//! Expired sessions are absent for every operation of every store; [`PurgeTask`] reclaims their
//! space periodically (`RedisStore` needs none: Redis expires keys itself).
//!
//! # Writing a store
//!
//! Implement [`SessionStore`] and keep every point of its contract; the conformance suite in
//! `tests/conformance/` checks them and can be pointed at a new store.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod batch;
mod caching;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod purge;
#[cfg(feature = "redis")]
mod redis;
mod size;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use caching::{CachingStore, DEFAULT_MAX_STALENESS};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use purge::{PurgeError, PurgeFailure, PurgeTask};
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub(crate) use size::EMPTY as EMPTY_SIZE;
pub use size::{data_size, entry_size};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::StoreError;
use crate::expiry::{now_millis, ExpirySettings};
use crate::id::StoreKey;

/// A session's data: JSON values by key.
pub type Data = HashMap<String, Value>;

/// One stored session.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The session's values.
    pub data: Data,
    /// When the session was created, in Unix milliseconds (the base of the absolute timeout).
    pub created_at: i64,
    /// When the session ends, in Unix milliseconds. A store must treat a record whose
    /// `expires_at` is not in the future as absent, on every operation.
    pub expires_at: i64,
    /// The session's own expiry settings, if a handler set any (the default: the layer's).
    /// Stores persist them with [`ExpirySettings::encode`].
    pub expiry: ExpirySettings,
}

impl Record {
    /// A record with these values and times.
    ///
    /// `expiry` is the session's own settings: an [`ExpirySettings`], or just an
    /// `Option<Expiry>` (with the layer's absolute timeout).
    pub fn new(
        data: Data,
        created_at: i64,
        expires_at: i64,
        expiry: impl Into<ExpirySettings>,
    ) -> Self {
        Self {
            data,
            created_at,
            expires_at,
            expiry: expiry.into(),
        }
    }

    /// Whether the record is still live at `now` (Unix milliseconds).
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now
    }
}

/// What one request changed in an existing session, applied by the store in one atomic step.
///
/// Order of application: `clear` (drop every key), then each of `updates` (`Some` sets the key,
/// `None` removes it), then the new `expires_at` and, if present, the new `expiry`. Keys in
/// `updates` are distinct. Keys not named are left as they are in the store, which is how two
/// requests writing different keys both win; two requests writing the same key: the last
/// applied wins.
///
/// **Size cap.** When `max_size` is set and the change set sets at least one key, the store
/// computes the size the session's values would have after the change, as it stores them
/// ([`data_size`], or the length of the stored JSON text), and refuses the whole change set
/// with [`Outcome::TooLarge`] if it is over. The cap is checked where concurrent change sets
/// meet, so no interleaving of requests can grow a stored session past it. A change set that
/// only removes keys or moves the deadline is never refused (it cannot grow the session).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Drop every key before applying `updates`.
    pub clear: bool,
    /// Per-key changes: `Some(value)` sets, `None` removes.
    pub updates: Vec<(String, Option<Value>)>,
    /// The session's new deadline, Unix milliseconds.
    pub expires_at: i64,
    /// Whether the session's own expiry settings change, and to what.
    pub expiry: ExpiryChange,
    /// The largest the session's values may be after the change, in bytes; `None` for no cap.
    pub max_size: Option<usize>,
}

impl ChangeSet {
    /// A change set that only moves the deadline (a "touch").
    pub fn new(expires_at: i64) -> Self {
        Self {
            expires_at,
            ..Self::default()
        }
    }

    /// Adds a change of one key.
    pub fn with_update(mut self, key: impl Into<String>, value: Option<Value>) -> Self {
        self.updates.push((key.into(), value));
        self
    }

    /// Drops every key before the updates.
    pub fn with_clear(mut self) -> Self {
        self.clear = true;
        self
    }

    /// Replaces the session's own expiry settings: an [`ExpirySettings`], or an
    /// `Option<Expiry>` (with the layer's absolute timeout; `None`: back to the layer's
    /// settings).
    pub fn with_expiry(mut self, expiry: impl Into<ExpirySettings>) -> Self {
        self.expiry = ExpiryChange::Set(expiry.into());
        self
    }

    /// Caps the session's size after the change (see the type docs).
    pub fn with_max_size(mut self, bytes: usize) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The cap a store must check for this change set: `Some` only when a cap is set and at
    /// least one key is set (removals and deadline moves cannot grow a session).
    pub fn size_cap(&self) -> Option<usize> {
        self.max_size
            .filter(|_| self.updates.iter().any(|(_, value)| value.is_some()))
    }

    /// Whether the change set fits the cap when applied to `data`: `Err(size)` with the size
    /// the values would have, if it does not. The reference check for stores that keep parsed
    /// values.
    ///
    /// ```
    /// use serde_json::json;
    /// use sessionware::store::{ChangeSet, Data};
    ///
    /// let data: Data = [("a".to_owned(), json!("x".repeat(90)))].into();
    /// let grow = ChangeSet::new(0).with_update("b", Some(json!("y".repeat(90)))).with_max_size(150);
    /// assert_eq!(grow.check_size(&data), Err(196)); // 2 + 2 × (3 + 92 + 2)
    /// let replace = ChangeSet::new(0).with_update("a", Some(json!("y".repeat(90)))).with_max_size(150);
    /// assert_eq!(replace.check_size(&data), Ok(()));
    /// ```
    pub fn check_size(&self, data: &Data) -> Result<(), usize> {
        let Some(cap) = self.size_cap() else {
            return Ok(());
        };
        let mut size = if self.clear {
            size::EMPTY
        } else {
            data_size(data)
        };
        for (key, value) in &self.updates {
            if !self.clear {
                if let Some(old) = data.get(key) {
                    size = size.saturating_sub(entry_size(key, old));
                }
            }
            if let Some(value) = value {
                size = size.saturating_add(entry_size(key, value));
            }
        }
        if size > cap {
            Err(size)
        } else {
            Ok(())
        }
    }

    /// Whether the data is untouched (only the deadline or expiry moves).
    pub fn is_data_unchanged(&self) -> bool {
        !self.clear && self.updates.is_empty()
    }

    /// Applies the change set to a record in memory: the reference semantics every store
    /// reproduces in its own backend.
    pub fn apply_to(&self, record: &mut Record) {
        if self.clear {
            record.data.clear();
        }
        for (key, value) in &self.updates {
            match value {
                Some(value) => record.data.insert(key.clone(), value.clone()),
                None => record.data.remove(key),
            };
        }
        record.expires_at = self.expires_at;
        if let ExpiryChange::Set(expiry) = self.expiry {
            record.expiry = expiry;
        }
    }
}

/// What a [`ChangeSet`] does to a session's own [`ExpirySettings`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpiryChange {
    /// Leave them as stored.
    #[default]
    Keep,
    /// Replace them (with [`ExpirySettings::default`]: back to the layer's settings).
    Set(ExpirySettings),
}

/// The result of a store write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// The write happened.
    Done,
    /// Nothing changed: the session does not exist, was deleted, or has expired.
    Missing,
    /// Nothing changed: the new key is already taken (create and cycle only).
    Collision,
    /// Nothing changed: the session's values would be `size` bytes, over the change set's
    /// [`max_size`](ChangeSet::max_size) (apply and cycle only).
    TooLarge {
        /// The size the session's values would have had, as the store counts it.
        size: usize,
    },
}

/// A place to keep sessions.
///
/// # Contract
///
/// Every store keeps all of these; the conformance suite checks each against every store.
/// - **Keys.** Sessions are filed under a [`StoreKey`], a SHA-256 of the id; the raw id never
///   reaches a store.
/// - **Expiry.** A record whose `expires_at` is not in the future does not exist, for every
///   operation, whether or not it was purged yet.
/// - **Atomicity.** Each method is one atomic step: a concurrent reader sees the record before
///   or after it, never half of it.
/// - **No resurrection.** [`apply`](Self::apply), [`touch`](Self::touch) and
///   [`cycle`](Self::cycle) change nothing and return [`Outcome::Missing`] when the session is
///   absent or expired. Only [`create`](Self::create) brings a key to life.
/// - **No adoption.** [`create`](Self::create) and [`cycle`](Self::cycle) never overwrite a key
///   that exists: they return [`Outcome::Collision`] and the caller draws another id.
/// - **Size cap.** [`apply`](Self::apply) and [`cycle`](Self::cycle) refuse a change set that
///   would take the session over its [`ChangeSet::max_size`] with [`Outcome::TooLarge`],
///   checked atomically with the write (see [`ChangeSet`]).
/// - **Corrupt data** is reported as [`StoreError::Corrupt`], never a panic.
///
/// # Errors
///
/// Every method returns [`StoreError::Backend`] when the backend fails; the layer turns it into
/// a `500` response and saves nothing.
#[async_trait]
pub trait SessionStore: fmt::Debug + Send + Sync + 'static {
    /// Loads a live session; `Ok(None)` if it is absent or expired.
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError>;

    /// Inserts a new session if `key` is free: [`Outcome::Done`], or [`Outcome::Collision`]
    /// without touching the existing one. An expired record under `key` counts as free.
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Outcome, StoreError>;

    /// Applies `changes` to a live session ([`Outcome::Done`]), or does nothing and returns
    /// [`Outcome::Missing`] (not live) or [`Outcome::TooLarge`] (over the size cap).
    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Outcome, StoreError>;

    /// Moves a live session from `old` to `new`, applying `changes` on the way: afterwards
    /// `old` is gone and `new` holds the data. [`Outcome::Missing`] if `old` is not live,
    /// [`Outcome::Collision`] if `new` is taken, [`Outcome::TooLarge`] if the changes would
    /// take it over the size cap; in each case nothing changes.
    async fn cycle(
        &self,
        old: &StoreKey,
        new: &StoreKey,
        changes: &ChangeSet,
    ) -> Result<Outcome, StoreError>;

    /// Deletes a session. Deleting an absent session is not an error.
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Moves a live session's deadline to `expires_at` without touching its data.
    ///
    /// The default applies an empty [`ChangeSet`]; stores override it when a cheaper command
    /// exists.
    async fn touch(&self, key: &StoreKey, expires_at: i64) -> Result<Outcome, StoreError> {
        self.apply(key, &ChangeSet::new(expires_at)).await
    }

    /// Removes every expired session and returns how many. Must not block other operations for
    /// long: stores work through their data in bounded steps.
    async fn delete_expired(&self) -> Result<u64, StoreError>;
}

/// Current time in Unix milliseconds, as stores compare it to `expires_at`.
pub fn now() -> i64 {
    now_millis()
}
