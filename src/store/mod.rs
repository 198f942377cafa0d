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
//! Implement [`SessionStore`] and keep every point of its contract; prove it with the contract's
//! test suite, `sessionware::conformance` (feature `store-conformance`): one line in your
//! store's tests, `sessionware::store_conformance!(MyStore::new())`. The module's docs walk
//! through a complete store of some 200 lines (`examples/custom_store.rs`).

mod caching;
mod changes;
mod memory;
mod outcome;
mod owner;
#[cfg(feature = "postgres")]
mod postgres;
mod purge;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod size;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use caching::CachingStore;
pub use changes::{ChangeSet, ExpiryChange, KeyChange, Precondition};
pub use memory::MemoryStore;
pub use outcome::{Applied, Created, Cycled, Touched};
pub use owner::{Listed, Owner, Rekey};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use purge::{PurgeError, PurgeTask};
pub use record::Record;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub(crate) use size::EMPTY as EMPTY_SIZE;
pub use size::{data_size, entry_size};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::Value;

pub use crate::clock::now;
use crate::error::StoreError;
use crate::id::StoreKey;

/// [`MOVED_MARKER`](crate::defaults::MOVED_MARKER) in milliseconds, as the stores write it.
#[allow(clippy::cast_possible_truncation)] // 60 000 fits
pub(crate) const MOVED_MARKER_MS: i64 = crate::defaults::MOVED_MARKER.as_millis() as i64;

/// A session's data: JSON values by key, in key order.
///
/// A B-tree rather than a hash map: a session holds a handful of keys, and comparing a few
/// short strings costs less than hashing each with a DoS-resistant hasher on every `get` and
/// `insert` (keys may be built from request data, so a fast unkeyed hash is not an option).
/// Iteration is in key order, so two loads of one session list its values alike.
pub type Data = BTreeMap<String, Value>;

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
///   [`cycle`](Self::cycle) change nothing and answer `Missing` when the session is absent or
///   expired. Only [`create`](Self::create) brings a key to life.
/// - **No adoption.** [`create`](Self::create) and [`cycle`](Self::cycle) never overwrite a key
///   that exists: they answer `Collision` and the caller draws another id.
/// - **Size cap.** [`apply`](Self::apply) and [`cycle`](Self::cycle) refuse a change set that
///   would take the session over its [`ChangeSet::max_size`] with `TooLarge`, checked
///   atomically with the write (see [`ChangeSet`]).
/// - **Preconditions.** [`apply`](Self::apply) and [`cycle`](Self::cycle) refuse a change set
///   whose [`ChangeSet::expect`] does not hold with `Conflict`, checked atomically with the
///   write: compare-and-set on single keys.
///
/// Each write answers with a type of its own ([`Created`], [`Applied`], [`Cycled`],
/// [`Touched`]) that names only what the contract lets it answer.
/// - **Owners.** A session created with [`Record::owner`], or cycled with [`Rekey::tie`], is
///   listed by [`list`](Self::list) under its principal until it is deleted, expires or is
///   cycled again (then it is listed under its new key, with the same owner). A cycle without a
///   tie keeps the owner. Listing and deleting by principal cost in proportion to the
///   principal's sessions, never to all sessions.
/// - **Listed or dead.** A session that is live and tied is always listed: a store whose index
///   is written apart from the session writes the index entry first and removes it last, so a
///   failure between the steps can leave a stale entry (which [`list`](Self::list) and
///   [`delete_expired`](Self::delete_expired) drop) but never an unlisted live session.
/// - **Tie time.** A session's [`Owner::tied_at`] is stored with it: [`load`](Self::load)
///   returns it in the record's owner and [`list`](Self::list) in [`Listed::tied_at`]; a cycle
///   with a tie takes the tie's, a cycle without one keeps it.
/// - **Moved ids.** A [`cycle`](Self::cycle) leaves a marker under the old key, in the same
///   atomic step, that [`was_moved`](Self::was_moved) reports for [`MOVED_MARKER`](crate::defaults::MOVED_MARKER): a
///   request still carrying the old id (a tab that loaded before the log-in completed) learns
///   that the session moved rather than ended, and leaves the cookie alone. Everything else
///   treats a marker as absent.
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

    /// Inserts a new session if `key` is free: [`Created::Done`], or [`Created::Collision`]
    /// without touching the existing one. An expired record under `key` counts as free.
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError>;

    /// Applies `changes` to a live session ([`Applied::Done`]), or does nothing and answers
    /// [`Applied::Missing`] (not live), [`Applied::TooLarge`] (over the size cap) or
    /// [`Applied::Conflict`] (a precondition does not hold).
    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError>;

    /// Moves a live session from `old` to `new`, applying `changes` on the way: afterwards
    /// `old` is gone and `new` holds the data. [`Cycled::Missing`] if `old` is not live,
    /// [`Cycled::Collision`] if `new` is taken, [`Cycled::TooLarge`] if the changes would take
    /// it over the size cap, [`Cycled::Conflict`] if a precondition does not hold; in each case
    /// nothing changes.
    ///
    /// The session keeps its owner, or takes [`Rekey::tie`] if given; see the owner points of
    /// the contract.
    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError>;

    /// Whether `key` was moved to another key by a [`cycle`](Self::cycle) less than
    /// [`MOVED_MARKER`](crate::defaults::MOVED_MARKER) ago. The layer asks only for an id it could not load.
    ///
    /// The default answers `false`: a store without markers treats a moved id as unknown
    /// (a request racing a log-in may then start a new session whose cookie replaces the
    /// log-in's).
    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let _ = key;
        Ok(false)
    }
    /// Deletes a session (and its index entry). Deleting an absent session is not an error.
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Moves a live session's deadline to `expires_at` without touching its data.
    ///
    /// The default applies an empty [`ChangeSet`]; stores override it when a cheaper command
    /// exists.
    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
        Ok(self.apply(key, &ChangeSet::new(expires_at)).await?.into())
    }

    /// Removes every expired session and returns how many. Must not block other operations for
    /// long: stores work through their data in bounded steps.
    async fn delete_expired(&self) -> Result<u64, StoreError>;

    /// The live sessions tied to `principal`, in no particular order. Entries of sessions that
    /// turn out to be gone are dropped from the index on the way.
    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError>;

    /// Deletes every session tied to `principal` and returns how many were live.
    ///
    /// The default lists them and deletes each; a session tied by a `create` or `cycle` that
    /// races this call is either deleted or still listed afterwards, never live and unlisted.
    async fn delete_all(&self, principal: &str) -> Result<u64, StoreError> {
        let listed = self.list(principal).await?;
        for session in &listed {
            self.delete(&session.key).await?;
        }
        Ok(listed.len() as u64)
    }
}
