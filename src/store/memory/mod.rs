//! [`MemoryStore`]: the embedded default.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

mod entry;
mod index;
mod table;

use self::entry::{Entry, Keys};
use self::index::Index;
use self::table::Table;
use super::{
    Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, MOVED_MARKER_MS,
};
use crate::clock::now_ms;
use crate::error::StoreError;
use crate::id::StoreKey;

/// Number of independently locked shards. A power of two; with 1,000,000 sessions a shard holds
/// about 250 entries. Sweeping a shard visits each of its entries (one cache miss each in a
/// large store), and a purge runs shard after shard, yielding to other tasks between two: the
/// shard is the longest stretch a purge keeps a worker thread from requests. With 256 shards
/// (some 0.6 ms a shard at 2,000,000 sessions) the requests' p99 during a purge of a million
/// sessions was 2.8 to 3.2 times its usual value, with 1,024 2.2 times, with 4,096 1.3 times
/// (`benchmark/scale/purge.sh`).
const SHARDS: usize = 4096;

/// Creates between two sweeps of one shard: at least this many, and at least as many as the
/// last swept shard kept, so that each create pays for sweeping about one entry, whatever the
/// store's size (a fixed "every 64th create" would make a create's share grow with the store).
const MIN_CREATES_PER_SWEEP: usize = 16;

/// Sweeps between two updates of the live-sessions gauge (feature `metrics`): counting locks
/// every shard, so it must not follow each sweep of a small shard.
const SWEEPS_PER_REPORT: usize = 64;

/// How many index entries a purge checks between two yields to the runtime.
const INDEX_STEP: usize = 4096;

/// Sessions in this process's memory: fast, and gone when the process exits.
///
/// - **No global lock.** Sessions are spread over 4,096 shards, each behind its own mutex, picked
///   by the session's key (a SHA-256, so evenly spread). Concurrent requests on different
///   sessions rarely meet; locks are held for a map operation, never across an `.await`.
/// - **Expired sessions are purged incrementally.** A load that finds an expired entry removes
///   it; creates sweep one shard at a time, in turn, as often as keeps the cost about one entry
///   swept per create (one shard per 16 creates, or per as many creates as a shard holds
///   sessions if that is more), so an expired session is reclaimed at the latest after about as
///   many creates as the store holds sessions (65,536 at least); [`delete_expired`](SessionStore::delete_expired)
///   (run it with [`PurgeTask`](super::PurgeTask) for a bound in time) sweeps shard by shard.
///   No step locks more than one shard, so there is never a stop-the-world pause.
/// - **Ready to use, and compact.** A session is one 88-byte allocation (its times, the second
///   half of its key, and its first value inline; more values go to a slice of `(key, value)`
///   pairs), filed in a 24-byte slot under the first half of its key, the second half compared
///   on every lookup. Keys are interned per shard. Loads and saves parse and write no JSON.
///   With one small value per session (`{"counter": n}`) the process grows by 130 to 150
///   bytes per session between 100,000 and 1,500,000 sessions, map overhead included; the
///   hand-written floor's `HashMap<Uuid, String>` takes 100 to 134 (in a clone of the
///   repository, `cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin
///   memory_footprint`, and `MAP=floor`, measure both on your machine). Parsed
///   values take more room than their JSON text when they are large nested structures (often
///   two to four times); the session size cap
///   ([`SessionLayer::with_max_session_size`](crate::SessionLayer::with_max_session_size))
///   counts the JSON text.
///
/// Cloning a `MemoryStore` gives another handle to the same sessions.
///
/// ```
/// use sessionware::{MemoryStore, SessionLayer};
///
/// let store = MemoryStore::default();
/// let layer = SessionLayer::new(store.clone());
/// assert_eq!(store.len(), 0);
/// # let _ = layer;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<Shards>,
}

struct Shards {
    shards: Box<[Mutex<Shard>]>,
    /// Creates since the last sweep.
    creates: AtomicUsize,
    /// The shard to sweep next (modulo [`SHARDS`]).
    next_sweep: AtomicUsize,
    /// How many sessions the last swept shard kept.
    last_swept_len: AtomicUsize,
    index: Index,
}

impl Default for Shards {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            creates: AtomicUsize::new(0),
            next_sweep: AtomicUsize::new(0),
            last_swept_len: AtomicUsize::new(0),
            index: Index::default(),
        }
    }
}

/// One shard: its sessions, the keys their values are filed under, and the keys its sessions
/// were moved away from by a cycle (until when the marker lasts).
#[derive(Default)]
struct Shard {
    map: Table,
    keys: Keys,
    moved: HashMap<StoreKey, i64>,
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions the store holds, counting expired ones not purged yet.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether the store holds no session at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the principal index holds: one per tied session, until the purge (or a
    /// [`list`](SessionStore::list) of its principal) drops those of sessions that are gone.
    ///
    /// ```
    /// use sessionware::store::{now, Data, Owner, Record, SessionStore};
    /// use sessionware::{MemoryStore, SessionId};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let record = Record::new(Data::new(), now() + std::time::Duration::from_secs(60)).with_owner(Owner::new("ann"));
    /// let _ = store.create(&SessionId::generate().store_key(), &record).await?;
    /// assert_eq!(store.indexed(), 1);
    /// assert_eq!(store.list("ann").await?.len(), 1);
    /// # Ok::<(), sessionware::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn indexed(&self) -> usize {
        self.inner.index.len()
    }

    /// Sets the `sessionware_sessions_live` gauge (feature `metrics`) to the sessions the store
    /// holds: after every [`SWEEPS_PER_REPORT`]th sweep and each purge, so that counting them
    /// is cheap next to the sweeps.
    fn report_live(&self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!("sessionware_sessions_live", "store" => "memory").set(self.len() as f64);
    }

    fn shard(&self, key: &StoreKey) -> &Mutex<Shard> {
        &self.inner.shards[shard_index(key)]
    }

    /// Sweeps the next shard once enough creates have paid for it (see
    /// [`MIN_CREATES_PER_SWEEP`]).
    fn maybe_sweep(&self, now: i64) {
        let inner = &self.inner;
        let due = MIN_CREATES_PER_SWEEP.max(inner.last_swept_len.load(Ordering::Relaxed));
        let creates = inner.creates.fetch_add(1, Ordering::Relaxed) + 1;
        // Only the create that resets the counter sweeps; a racing one tries again next time.
        if creates >= due
            && inner
                .creates
                .compare_exchange(creates, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let sweeps = inner.next_sweep.fetch_add(1, Ordering::Relaxed);
            let (_, kept) = sweep(&inner.shards[sweeps % SHARDS], now);
            inner.last_swept_len.store(kept, Ordering::Relaxed);
            if sweeps % SWEEPS_PER_REPORT == 0 {
                self.report_live();
            }
        }
    }
}

impl MemoryStore {
    /// The index entry `(principal, key)` as a listing, or `None` after dropping the entry if
    /// its session is gone (or, never in practice, belongs to someone else).
    fn listed(&self, principal: &str, key: StoreKey, now: i64) -> Option<Listed> {
        let listed = {
            let mut shard = lock(self.shard(&key));
            shard
                .map
                .live(&key, now)
                .filter(|entry| entry.owner().is_some_and(|o| o.principal == principal))
                .map(|entry| entry.listed(key))
        };
        if listed.is_none() {
            self.inner.index.remove(principal, &key);
        }
        listed
    }
}

fn shard_index(key: &StoreKey) -> usize {
    // Bytes 8.. are independent of the ones the hasher uses, so shards do not skew buckets.
    usize::from(u16::from_le_bytes([key.as_bytes()[8], key.as_bytes()[9]])) % SHARDS
}

/// Locks a shard. A panic while a shard was locked cannot leave an entry half-written (every
/// change is a single map operation), so a poisoned lock is safe to keep using.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes a shard's expired sessions; returns how many went and how many stayed.
fn sweep(shard: &Mutex<Shard>, now: i64) -> (u64, usize) {
    let mut shard = lock(shard);
    let before = shard.map.len();
    shard.map.retain(|entry| entry.expires_at > now);
    shard.moved.retain(|_, until| *until > now);
    shard.keys.prune();
    let kept = shard.map.len();
    ((before - kept) as u64, kept)
}

/// The body of a cycle, with the shards already locked: moves the live session `old` from
/// `from` (`None`: the same shard as `new`) to `new` in `to`, applying `changes` on the way.
fn move_session(
    from: Option<&mut Shard>,
    to: &mut Shard,
    index: &Index,
    keys: Rekey<'_>,
    changes: &ChangeSet,
    now: i64,
) -> Cycled {
    let Rekey { old, new, tie, .. } = keys;
    if to.map.is_taken(new, now) {
        return Cycled::Collision;
    }
    let from = match from {
        Some(shard) => shard,
        None => &mut *to,
    };
    let Some(entry) = from.map.live(old, now) else {
        return Cycled::Missing;
    };
    if !entry.preconditions_hold(changes) {
        return Cycled::Conflict;
    }
    let size = match entry.check_size(changes) {
        Ok(size) => size,
        Err(size) => return Cycled::TooLarge { size },
    };
    let Some(mut entry) = from.map.remove(old) else {
        return Cycled::Missing;
    };
    // Under the same lock as the move: no request sees the old key neither live nor moved.
    from.moved.insert(*old, now + MOVED_MARKER_MS);
    entry.apply(changes, &mut to.keys, size);
    if let Some(was) = entry.owner() {
        index.remove(&was.principal, old);
    }
    if let Some(owner) = tie {
        entry.tie(owner);
    }
    if let Some(owner) = entry.owner() {
        index.add(&owner.principal, *new);
    }
    to.map.insert(new, entry);
    Cycled::Done
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = now_ms();
        let mut shard = lock(self.shard(key));
        Ok(shard.map.live(key, now).map(|entry| entry.to_record()))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        let now = now_ms();
        let outcome = {
            let shard = &mut *lock(self.shard(key));
            match shard.map.vacancy(key, now) {
                None => Created::Collision,
                Some(vacancy) => {
                    let entry = Box::new(Entry::new(record, &mut shard.keys));
                    if let Some(owner) = &record.owner {
                        self.inner.index.add(&owner.principal, *key);
                    }
                    vacancy.fill(entry);
                    Created::Done
                }
            }
        };
        self.maybe_sweep(now);
        Ok(outcome)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        let now = now_ms();
        let shard = &mut *lock(self.shard(key));
        Ok(match shard.map.live(key, now) {
            Some(entry) if !entry.preconditions_hold(changes) => Applied::Conflict,
            Some(entry) => match entry.check_size(changes) {
                Ok(size) => {
                    entry.apply(changes, &mut shard.keys, size);
                    Applied::Done
                }
                Err(size) => Applied::TooLarge { size },
            },
            None => Applied::Missing,
        })
    }

    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        let now = now_ms();
        let index = &self.inner.index;
        let (a, b) = (shard_index(keys.old), shard_index(keys.new));
        if a == b {
            let shard = &mut lock(&self.inner.shards[a]);
            return Ok(move_session(None, shard, index, keys, changes, now));
        }
        // Both shards stay locked for the whole move, always taken in index order, so no other
        // operation sees the session in both places or in neither, and two cycles cannot deadlock.
        let mut low = lock(&self.inner.shards[a.min(b)]);
        let mut high = lock(&self.inner.shards[a.max(b)]);
        let (from, to) = if a < b {
            (&mut *low, &mut *high)
        } else {
            (&mut *high, &mut *low)
        };
        Ok(move_session(Some(from), to, index, keys, changes, now))
    }

    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = now_ms();
        let shard = lock(self.shard(key));
        Ok(shard.moved.get(key).is_some_and(|until| *until > now))
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut shard = lock(self.shard(key));
        let removed = shard.map.remove(key);
        if let Some(owner) = removed.as_deref().and_then(Entry::owner) {
            self.inner.index.remove(&owner.principal, key);
        }
        Ok(())
    }

    /// One shard at a time, yielding to the runtime after each: the purge shares the runtime's
    /// threads with requests, and a million expired sessions take some 150 ms to drop, which
    /// requests would otherwise wait for (on a one-thread runtime, all of them).
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut purged = 0;
        for shard in self.inner.shards.iter() {
            purged += sweep(shard, now).0;
            tokio::task::yield_now().await;
        }
        self.report_live();
        for (n, (principal, key)) in self.inner.index.entries().into_iter().enumerate() {
            self.listed(&principal, key, now);
            if n % INDEX_STEP == INDEX_STEP - 1 {
                tokio::task::yield_now().await;
            }
        }
        Ok(purged)
    }

    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let now = now_ms();
        let keys = self.inner.index.keys(principal);
        Ok(keys
            .into_iter()
            .filter_map(|key| self.listed(principal, key, now))
            .collect())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &SHARDS)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::from_ms;
    use std::time::Duration;

    use super::*;
    use crate::id::SessionId;
    use crate::store::Data;

    async fn create(store: &MemoryStore, expires_at: i64) {
        let record =
            Record::new(Data::new(), from_ms(expires_at)).with_created_at(from_ms(now_ms()));
        let key = SessionId::generate().store_key();
        assert_eq!(store.create(&key, &record).await.unwrap(), Created::Done);
    }

    /// Creates alone (no load, no `delete_expired`) reclaim expired sessions, within a number
    /// of creates of the order of the store's size.
    #[tokio::test]
    async fn creates_sweep_expired_sessions_away() {
        let store = MemoryStore::default();
        for _ in 0..1_000 {
            create(&store, now_ms() + 50).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.len(), 1_000, "nothing has swept yet");

        let live = 2 * SHARDS * MIN_CREATES_PER_SWEEP;
        for _ in 0..live {
            create(&store, now_ms() + 3_600_000).await;
        }
        assert_eq!(store.len(), live, "every expired session was swept away");
    }

    /// A purge lets other tasks of its runtime run while it works through the shards: on a
    /// one-thread runtime, a task that counts its turns gets many before the purge is done
    /// (without the yields it would get none: the purge would run to its end in one poll).
    #[tokio::test(flavor = "current_thread")]
    async fn a_purge_takes_turns_with_other_tasks() {
        let store = MemoryStore::default();
        for _ in 0..2_000 {
            create(&store, now_ms() + 20).await;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let turns = tokio::spawn({
            let done = done.clone();
            async move {
                let mut turns = 0_u32;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    turns += 1;
                    tokio::task::yield_now().await;
                }
                turns
            }
        });
        // Let the counter start before the purge.
        tokio::task::yield_now().await;
        assert_eq!(store.delete_expired().await.unwrap(), 2_000);
        done.store(true, std::sync::atomic::Ordering::Release);
        let turns = turns.await.unwrap();
        assert!(turns > 100, "the purge held the runtime: {turns} turns");
    }
}
