//! [`CachingStore`]: a fast store in front of a shared one.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{ChangeSet, Outcome, Record, SessionStore};
use crate::error::StoreError;
use crate::expiry::now_millis;
use crate::id::StoreKey;

/// Data key under which the cache keeps the session's real deadline (its own `expires_at` is the
/// end of the freshness window). It starts with a NUL byte, which no sensible application key
/// does; it is never visible to handlers.
const REAL_EXPIRY: &str = "\u{0}sessionware:expires_at";

/// The default [`CachingStore::with_max_staleness`]: 2 seconds.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(2);

/// A cache store (usually [`MemoryStore`](super::MemoryStore)) in front of a backing store
/// (PostgreSQL, Redis, SQLite): loads are served from the cache when it holds a fresh copy,
/// every write goes to the backing store first.
///
/// # Coherence
///
/// - **On this instance** the cache never serves what the backing store no longer has: delete,
///   cycle and every write go to the backing store first, then update or evict the cache, and a
///   write the backing store refuses ([`Outcome::Missing`]) evicts the cached copy.
/// - **Across instances** a cached copy is trusted for at most
///   [`with_max_staleness`](Self::with_max_staleness) (default 2 s) after this instance last
///   loaded or wrote it. A session destroyed or changed through another instance is seen here
///   within that bound; a write through this instance to a session destroyed elsewhere is refused
///   at once (the backing store checks liveness), so nothing is resurrected.
///
/// ```
/// use std::time::Duration;
/// use sessionware::store::CachingStore;
/// use sessionware::{MemoryStore, SessionLayer};
///
/// // In production the backing store is shared, e.g. a `PostgresStore`.
/// let backing = MemoryStore::default();
/// let store = CachingStore::new(MemoryStore::default(), backing)
///     .with_max_staleness(Duration::from_millis(500));
/// let layer = SessionLayer::new(store);
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct CachingStore<Cache, Backing> {
    cache: Cache,
    backing: Backing,
    max_staleness: i64,
}

impl<Cache: SessionStore, Backing: SessionStore> CachingStore<Cache, Backing> {
    /// Puts `cache` in front of `backing`.
    pub fn new(cache: Cache, backing: Backing) -> Self {
        Self {
            cache,
            backing,
            max_staleness: millis(DEFAULT_MAX_STALENESS),
        }
    }

    /// How long a cached copy is served without asking the backing store: the bound on how late
    /// this instance sees changes made through other instances. Default 2 seconds.
    pub fn with_max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = millis(max_staleness);
        self
    }

    /// The cache store.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The backing store.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The cache's deadline for a copy taken now: the end of the freshness window, never later
    /// than the session's own deadline.
    fn window(&self, expires_at: i64) -> i64 {
        expires_at.min(now_millis().saturating_add(self.max_staleness))
    }

    async fn fill(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let mut cached = record.clone();
        cached
            .data
            .insert(REAL_EXPIRY.to_owned(), Value::from(record.expires_at));
        cached.expires_at = self.window(record.expires_at);
        // A concurrent fill may have won; either copy is as fresh.
        let _ = self.cache.create(key, &cached).await?;
        Ok(())
    }

    /// Mirrors a write the backing store accepted, restarting the freshness window.
    async fn mirror(&self, key: &StoreKey, changes: &ChangeSet) -> Result<(), StoreError> {
        let mut cached = changes.clone();
        cached.updates.push((
            REAL_EXPIRY.to_owned(),
            Some(Value::from(changes.expires_at)),
        ));
        cached.expires_at = self.window(changes.expires_at);
        // Not cached (or window over): nothing to mirror; the next load fills it.
        let _ = self.cache.apply(key, &cached).await?;
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl<Cache: SessionStore, Backing: SessionStore> SessionStore for CachingStore<Cache, Backing> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if let Some(mut record) = self.cache.load(key).await? {
            if let Some(real) = record.data.remove(REAL_EXPIRY).and_then(|v| v.as_i64()) {
                if real > now_millis() {
                    record.expires_at = real;
                    return Ok(Some(record));
                }
            }
            self.cache.delete(key).await?;
        }
        let record = self.backing.load(key).await?;
        if let Some(record) = &record {
            self.fill(key, record).await?;
        }
        Ok(record)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Outcome, StoreError> {
        let outcome = self.backing.create(key, record).await?;
        if outcome == Outcome::Done {
            self.fill(key, record).await?;
        }
        Ok(outcome)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Outcome, StoreError> {
        let outcome = self.backing.apply(key, changes).await;
        match outcome {
            Ok(Outcome::Done) => self.mirror(key, changes).await?,
            // Refused or failed: the cached copy can no longer be trusted.
            _ => self.cache.delete(key).await?,
        }
        outcome
    }

    async fn cycle(
        &self,
        old: &StoreKey,
        new: &StoreKey,
        changes: &ChangeSet,
    ) -> Result<Outcome, StoreError> {
        let outcome = self.backing.cycle(old, new, changes).await;
        if !matches!(outcome, Ok(Outcome::Collision)) {
            self.cache.delete(old).await?;
        }
        outcome
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        // Evict first: even if the backing store fails, this instance stops serving the session.
        self.cache.delete(key).await?;
        self.backing.delete(key).await
    }

    async fn touch(&self, key: &StoreKey, expires_at: i64) -> Result<Outcome, StoreError> {
        let outcome = self.backing.touch(key, expires_at).await;
        match outcome {
            Ok(Outcome::Done) => self.mirror(key, &ChangeSet::new(expires_at)).await?,
            _ => self.cache.delete(key).await?,
        }
        outcome
    }

    async fn delete_expired(&self) -> Result<u64, StoreError> {
        self.cache.delete_expired().await?;
        self.backing.delete_expired().await
    }
}
