//! [`CachingStore`]: a fast store in front of a shared one.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use super::{Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, Touched};
use crate::clock::{from_ms, millis, now_ms, to_ms};
use crate::defaults;
use crate::error::StoreError;
use crate::id::StoreKey;

/// Data key under which the cache keeps the session's real deadline (its own `expires_at` is the
/// end of the freshness window). It starts with a NUL byte, which no sensible application key
/// does; it is never visible to handlers.
const REAL_EXPIRY: &str = "\u{0}sessionware:expires_at";

/// Data key under which the cache keeps the copy's epoch: the write counter read before the
/// backing store was (the copy reflects every write counted before it). Hidden like
/// [`REAL_EXPIRY`].
const EPOCH: &str = "\u{0}sessionware:epoch";

/// The most keys the stale set holds (about 40 bytes each, so some 160 KiB at most). A cancelled
/// write that finds it full distrusts every cached copy older than itself instead of adding its
/// key, and empties the set.
const MAX_STALE_KEYS: usize = 4096;

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
/// # Cancelled writes
///
/// A write or fill cancelled halfway (the request was dropped, for example because its client
/// went away) cannot evict the cached copy, which may now be older than the backing store: it
/// marks the key stale instead, and the next load of that key evicts the copy and reads the
/// backing store. Marks of keys that are never loaded again (cycled or destroyed sessions) are
/// bounded: when 4096 are pending, the next cancelled write distrusts every cached copy taken
/// before it and forgets the marks. Each copy records the write counter as it was before its
/// backing store read (its epoch), every cancelled write bumps that counter, and a copy whose
/// epoch is older than the last such flush is evicted instead of served, so no stale copy is
/// ever served, and none of this depends on the clock. The price of a flush is one backing
/// store read per cached session, which the freshness window costs anyway every
/// [`with_max_staleness`](Self::with_max_staleness).
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
    /// Writes finished or cancelled through this store; a load that saw it change drops what
    /// it cached. Read before a fill's backing store read, it is the copy's [`EPOCH`].
    writes: Arc<AtomicU64>,
    /// Keys whose cached copy must not be served: a write or a fill was cancelled (the request
    /// was dropped, for example when its client went away) before it could evict. At most
    /// [`MAX_STALE_KEYS`].
    stale: Arc<Mutex<HashSet<StoreKey>>>,
    /// Cached copies whose epoch is below this are not served: a cancelled write found the
    /// stale set full and forgot its marks, which this stands in for.
    distrust_below: Arc<AtomicU64>,
}

/// Marks a key stale unless disarmed: cancellation-safe eviction, since `Drop` runs even when
/// the future that holds it is dropped halfway.
struct StaleOnDrop<'a> {
    key: StoreKey,
    writes: &'a AtomicU64,
    stale: &'a Mutex<HashSet<StoreKey>>,
    distrust_below: &'a AtomicU64,
    armed: bool,
}

impl Drop for StaleOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Every copy whose backing store read could have missed this write was read before
            // this bump, so its epoch is below `bumped`; copies read after it are fresh.
            // (A u64 counter does not wrap in practice.)
            let bumped = self.writes.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
            let mut stale = self
                .stale
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if stale.len() < MAX_STALE_KEYS || stale.contains(&self.key) {
                stale.insert(self.key);
            } else {
                // Full: distrust every copy older than this write, which covers all the marks
                // (each was made at an earlier bump) and this one. Raised before the marks go,
                // under the lock a load takes before its cache read: a load sees the marks or
                // the raised bar, never neither.
                self.distrust_below.fetch_max(bumped, Ordering::AcqRel);
                stale.clear();
            }
        }
    }
}

impl<Cache: SessionStore, Backing: SessionStore> CachingStore<Cache, Backing> {
    /// Puts `cache` in front of `backing`.
    pub fn new(cache: Cache, backing: Backing) -> Self {
        Self {
            cache,
            backing,
            max_staleness: millis(defaults::MAX_STALENESS),
            writes: Arc::default(),
            stale: Arc::default(),
            distrust_below: Arc::default(),
        }
    }

    /// How long a cached copy is served without asking the backing store: the bound on how late
    /// this instance sees changes made through other instances. Default 2 seconds.
    #[must_use]
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
    fn window(&self, expires_at: SystemTime) -> SystemTime {
        from_ms(to_ms(expires_at).min(now_ms().saturating_add(self.max_staleness)))
    }

    /// Caches a copy of `record`, read from the backing store after the write counter read
    /// `epoch`.
    async fn fill(&self, key: &StoreKey, record: &Record, epoch: u64) -> Result<(), StoreError> {
        let mut cached = record.clone();
        cached.data.insert(
            REAL_EXPIRY.to_owned(),
            Value::from(to_ms(record.expires_at)),
        );
        cached.data.insert(EPOCH.to_owned(), Value::from(epoch));
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
            distrust_below: &self.distrust_below,
            armed: true,
        }
    }

    /// Whether a cancelled write or fill left `key`'s cached copy untrustworthy (and forgets it).
    fn take_stale(&self, key: &StoreKey) -> bool {
        let mut stale = self.stale.lock().unwrap_or_else(|p| p.into_inner());
        !stale.is_empty() && stale.remove(key)
    }

    /// Takes a cached copy's bookkeeping out of its data: its real deadline if it may be
    /// served, `None` if it must be evicted (expired, taken before a flush of the stale set, or
    /// missing the bookkeeping).
    fn trusted(&self, cached: &mut Record) -> Option<i64> {
        let real = cached.data.remove(REAL_EXPIRY).and_then(|v| v.as_i64());
        let epoch = cached.data.remove(EPOCH).and_then(|v| v.as_u64());
        // Read after the copy was: a flush that came before this load's cache read is seen.
        let distrust_below = self.distrust_below.load(Ordering::Acquire);
        match (real, epoch) {
            (Some(real), Some(epoch)) if real > now_ms() && epoch >= distrust_below => Some(real),
            _ => None,
        }
    }

    /// How many keys are marked stale (for tests of the bound).
    #[cfg(test)]
    fn stale_len(&self) -> usize {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// After a write to the backing store (done, refused or failed): bump the write counter,
    /// then evict the cached copy. Evicting rather than applying the same change to the cache
    /// keeps the two from diverging when concurrent writes reach them in different orders.
    async fn written(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.cache.delete(key).await
    }
}

#[async_trait]
impl<Cache: SessionStore, Backing: SessionStore> SessionStore for CachingStore<Cache, Backing> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if self.take_stale(key) {
            self.cache.delete(key).await?;
        }
        if let Some(mut record) = self.cache.load(key).await? {
            if let Some(real) = self.trusted(&mut record) {
                record.expires_at = from_ms(real);
                return Ok(Some(record));
            }
            self.cache.delete(key).await?;
        }
        let epoch = self.writes.load(Ordering::Acquire);
        let record = self.backing.load(key).await?;
        if let Some(record) = &record {
            let mut guard = self.guard(key);
            self.fill(key, record, epoch).await?;
            // A write on this instance finished meanwhile: what was read may be older than it,
            // so the copy goes (the write's own eviction may have run before the fill).
            if self.writes.load(Ordering::Acquire) != epoch {
                self.cache.delete(key).await?;
            }
            guard.armed = false;
        }
        Ok(record)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        // Read before the backing store, like a load's: the copy's epoch (see `fill`).
        let epoch = self.writes.load(Ordering::Acquire);
        let outcome = self.backing.create(key, record).await?;
        if outcome == Created::Done {
            // A brand-new random key: no one else can be reading or writing it yet.
            self.fill(key, record, epoch).await?;
        }
        Ok(outcome)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        let mut guard = self.guard(key);
        let outcome = self.backing.apply(key, changes).await;
        self.written(key).await?;
        guard.armed = false;
        outcome
    }

    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        let mut guard = self.guard(keys.old);
        let outcome = self.backing.cycle(keys, changes).await;
        self.written(keys.old).await?;
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

    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        // Only the backing store's cycle leaves markers (every instance sees them there).
        self.backing.was_moved(key).await
    }

    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
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

    /// The backing store's list: the cache may not hold every session of the principal.
    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.backing.list(principal).await
    }

    // `delete_all` is the default: list, then `delete` each through this store, so every
    // revoked session's copy here is evicted at once.
}

#[cfg(test)]
mod tests {
    use crate::clock::from_ms;
    use std::future::{pending, poll_fn, Future};
    use std::pin::pin;
    use std::task::Poll;

    use serde_json::json;

    use super::*;
    use crate::id::SessionId;
    use crate::store::MemoryStore;

    /// A backing store whose writes land (a memory store's do at once) and then never return,
    /// so a write polled once and dropped is cancelled after it landed.
    #[derive(Debug, Default)]
    struct Hanging(MemoryStore);

    #[async_trait]
    impl SessionStore for Hanging {
        async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
            self.0.load(key).await
        }
        async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
            self.0.create(key, record).await
        }
        async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
            let _landed = self.0.apply(key, changes).await;
            pending().await
        }
        async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
            self.0.cycle(keys, changes).await
        }
        async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
            self.0.delete(key).await
        }
        async fn delete_expired(&self) -> Result<u64, StoreError> {
            self.0.delete_expired().await
        }
        async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
            self.0.list(principal).await
        }
    }

    /// Polls `future` once, checks that it is still pending, and drops it: a request cancelled
    /// halfway, without timers.
    async fn cancel_after_one_poll(future: impl Future) {
        let mut future = pin!(future);
        poll_fn(|cx| {
            assert!(
                future.as_mut().poll(cx).is_pending(),
                "it was not cut short"
            );
            Poll::Ready(())
        })
        .await;
    }

    fn set_a(value: i64) -> ChangeSet {
        ChangeSet::new(from_ms(now_ms() + 60_000)).with_set("a", json!(value))
    }

    #[tokio::test]
    async fn cancelled_writes_on_keys_never_loaded_again_keep_the_stale_set_bounded() {
        let store = CachingStore::new(MemoryStore::default(), Hanging::default());
        let mut largest = 0;
        for _ in 0..10_000 {
            let key = SessionId::generate().store_key();
            cancel_after_one_poll(store.apply(&key, &set_a(1))).await;
            largest = largest.max(store.stale_len());
        }
        assert!(
            largest <= MAX_STALE_KEYS,
            "the stale set grew to {largest} keys"
        );
        assert!(store.distrust_below.load(Ordering::Acquire) > 0);
    }

    #[tokio::test]
    async fn after_a_flush_older_copies_are_evicted_and_newer_ones_served() {
        // A long window: no copy expires during the test, so only the flush can evict one.
        let store = CachingStore::new(MemoryStore::default(), Hanging::default())
            .with_max_staleness(Duration::from_secs(600));
        let t = now_ms();
        let record = Record::new([("a".to_owned(), json!(1))].into(), from_ms(t + 600_000))
            .with_created_at(from_ms(t));
        let key = SessionId::generate().store_key();
        assert_eq!(store.create(&key, &record).await.unwrap(), Created::Done);
        assert_eq!(store.load(&key).await.unwrap().unwrap().data["a"], json!(1));

        // Changed behind the cache's back, as through another instance: the copy is older.
        assert_eq!(
            store.backing().0.apply(&key, &set_a(2)).await.unwrap(),
            Applied::Done
        );
        assert_eq!(store.load(&key).await.unwrap().unwrap().data["a"], json!(1));

        // Enough cancelled writes elsewhere to flush the stale set: the copy is not served...
        for _ in 0..=MAX_STALE_KEYS {
            let other = SessionId::generate().store_key();
            cancel_after_one_poll(store.apply(&other, &set_a(1))).await;
        }
        assert!(store.distrust_below.load(Ordering::Acquire) > 0, "no flush");
        assert_eq!(store.load(&key).await.unwrap().unwrap().data["a"], json!(2));

        // ...but the copy taken since is: the cache still works after a flush.
        assert_eq!(
            store.backing().0.apply(&key, &set_a(3)).await.unwrap(),
            Applied::Done
        );
        let served = store.load(&key).await.unwrap().unwrap();
        assert_eq!(
            served.data["a"],
            json!(2),
            "a copy taken after the flush was distrusted"
        );
        assert_eq!(
            served.data.len(),
            1,
            "the cache's bookkeeping leaked into the data"
        );
    }
}
