//! [`CachingStore`]: a fast store in front of a shared one.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
/// (PostgreSQL, Redis, SQLite): loads are served from the cache when it holds a fresh copy;
/// every write goes to the backing store and evicts the cached copy, so the next load reads the
/// backing store again. It pays off for read-mostly sessions (most requests only read).
///
/// # Coherence
///
/// - **On this instance** the cache never serves what the backing store no longer has, nor an
///   older version than it: delete, cycle and every write go to the backing store, then evict
///   the cached copy; a load that raced with a write drops what it cached.
/// - **Across instances** a cached copy is trusted for at most
///   [`with_max_staleness`](Self::with_max_staleness) (default 2 s) after this instance loaded
///   it. A session destroyed or changed through another instance is seen here
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
    /// Writes finished through this store; a load that saw it change drops what it cached.
    writes: Arc<AtomicU64>,
    /// Keys whose cached copy must not be served: a write or a fill was cancelled (the request
    /// was dropped, for example when its client went away) before it could evict.
    stale: Arc<Mutex<HashSet<StoreKey>>>,
}

/// Marks a key stale unless disarmed: cancellation-safe eviction, since `Drop` runs even when
/// the future that holds it is dropped halfway.
struct StaleOnDrop<'a> {
    key: StoreKey,
    writes: &'a AtomicU64,
    stale: &'a Mutex<HashSet<StoreKey>>,
    armed: bool,
}

impl Drop for StaleOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.writes.fetch_add(1, Ordering::AcqRel);
            self.stale
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(self.key);
        }
    }
}

impl<Cache: SessionStore, Backing: SessionStore> CachingStore<Cache, Backing> {
    /// Puts `cache` in front of `backing`.
    pub fn new(cache: Cache, backing: Backing) -> Self {
        Self {
            cache,
            backing,
            max_staleness: millis(DEFAULT_MAX_STALENESS),
            writes: Arc::default(),
            stale: Arc::default(),
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

    fn guard(&self, key: &StoreKey) -> StaleOnDrop<'_> {
        StaleOnDrop {
            key: *key,
            writes: &self.writes,
            stale: &self.stale,
            armed: true,
        }
    }

    /// Whether a cancelled write or fill left `key`'s cached copy untrustworthy (and forgets it).
    fn take_stale(&self, key: &StoreKey) -> bool {
        let mut stale = self.stale.lock().unwrap_or_else(|p| p.into_inner());
        !stale.is_empty() && stale.remove(key)
    }

    /// After a write to the backing store (done, refused or failed): bump the write counter,
    /// then evict the cached copy. Evicting rather than applying the same change to the cache
    /// keeps the two from diverging when concurrent writes reach them in different orders.
    async fn written(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.cache.delete(key).await
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl<Cache: SessionStore, Backing: SessionStore> SessionStore for CachingStore<Cache, Backing> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if self.take_stale(key) {
            self.cache.delete(key).await?;
        }
        if let Some(mut record) = self.cache.load(key).await? {
            if let Some(real) = record.data.remove(REAL_EXPIRY).and_then(|v| v.as_i64()) {
                if real > now_millis() {
                    record.expires_at = real;
                    return Ok(Some(record));
                }
            }
            self.cache.delete(key).await?;
        }
        let epoch = self.writes.load(Ordering::Acquire);
        let record = self.backing.load(key).await?;
        if let Some(record) = &record {
            let mut guard = self.guard(key);
            self.fill(key, record).await?;
            // A write on this instance finished meanwhile: what was read may be older than it,
            // so the copy goes (the write's own eviction may have run before the fill).
            if self.writes.load(Ordering::Acquire) != epoch {
                self.cache.delete(key).await?;
            }
            guard.armed = false;
        }
        Ok(record)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Outcome, StoreError> {
        let outcome = self.backing.create(key, record).await?;
        if outcome == Outcome::Done {
            // A brand-new random key: no one else can be reading or writing it yet.
            self.fill(key, record).await?;
        }
        Ok(outcome)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Outcome, StoreError> {
        let mut guard = self.guard(key);
        let outcome = self.backing.apply(key, changes).await;
        self.written(key).await?;
        guard.armed = false;
        outcome
    }

    async fn cycle(
        &self,
        old: &StoreKey,
        new: &StoreKey,
        changes: &ChangeSet,
    ) -> Result<Outcome, StoreError> {
        let mut guard = self.guard(old);
        let outcome = self.backing.cycle(old, new, changes).await;
        self.written(old).await?;
        guard.armed = false;
        outcome
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        // Evict first: even if the backing store fails, this instance stops serving the session.
        let mut guard = self.guard(key);
        self.cache.delete(key).await?;
        let result = self.backing.delete(key).await;
        self.written(key).await?;
        guard.armed = false;
        result
    }

    async fn touch(&self, key: &StoreKey, expires_at: i64) -> Result<Outcome, StoreError> {
        let mut guard = self.guard(key);
        let outcome = self.backing.touch(key, expires_at).await;
        self.written(key).await?;
        guard.armed = false;
        outcome
    }

    async fn delete_expired(&self) -> Result<u64, StoreError> {
        self.cache.delete_expired().await?;
        self.backing.delete_expired().await
    }
}
