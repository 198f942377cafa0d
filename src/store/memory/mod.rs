//! [`MemoryStore`]: the embedded default.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

mod entry;

use self::entry::{Entry, Keys};
use super::{ChangeSet, Outcome, Record, SessionStore};
use crate::error::StoreError;
use crate::expiry::now_millis;
use crate::id::StoreKey;

/// Number of independently locked shards. A power of two; with 1,000,000 sessions a shard holds
/// about 4,000 entries, so purging one shard holds its lock for tens of microseconds.
const SHARDS: usize = 256;

/// Every this many creates, one shard (in turn) is swept for expired entries.
const PURGE_EVERY: usize = 64;

/// Sessions in this process's memory: fast, and gone when the process exits.
///
/// - **No global lock.** Sessions are spread over 256 shards, each behind its own mutex, picked
///   by the session's key (a SHA-256, so evenly spread). Concurrent requests on different
///   sessions rarely meet; locks are held for a map operation, never across an `.await`.
/// - **Expired sessions are purged incrementally.** A load that finds an expired entry removes
///   it; every 64th create sweeps one shard, in turn; [`delete_expired`](SessionStore::delete_expired)
///   sweeps shard by shard. No step locks more than one shard, so there is never a
///   stop-the-world pause.
/// - **Ready to use, and compact.** A session is kept as 40 bytes plus its values as a slice of
///   `(key, value)` pairs, filed under its 32-byte key; keys are interned per shard, so a small
///   session is one allocation beside its map slot. Loads and saves parse and write no JSON.
///   With 1,000,000 sessions holding one small value (`{"counter": n}`) the process grows by
///   about 220 bytes per session (218 measured), map overhead included (`cargo run --release
///   --example memory_footprint` measures it on your machine). Parsed values take more room
///   than their JSON text when they are large nested structures (often two to four times);
///   the session size cap ([`SessionLayer::with_max_session_size`](crate::SessionLayer::with_max_session_size))
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
    creates: AtomicUsize,
    next_sweep: AtomicUsize,
}

impl Default for Shards {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            creates: AtomicUsize::new(0),
            next_sweep: AtomicUsize::new(0),
        }
    }
}

/// The keys are SHA-256 digests, already uniformly random: hashing them again is wasted work.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = u64::from_le_bytes(word);
        }
    }
}

/// One shard: its sessions, and the keys their values are filed under.
#[derive(Default)]
struct Shard {
    map: Map,
    keys: Keys,
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

    fn shard(&self, key: &StoreKey) -> &Mutex<Shard> {
        &self.inner.shards[shard_index(key)]
    }

    /// Sweeps one shard, in turn, every [`PURGE_EVERY`] creates.
    fn maybe_sweep(&self, now: i64) {
        if self.inner.creates.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == 0 {
            let next = self.inner.next_sweep.fetch_add(1, Ordering::Relaxed) % SHARDS;
            sweep(&self.inner.shards[next], now);
        }
    }
}

fn shard_index(key: &StoreKey) -> usize {
    // Bytes 8.. are independent of the ones the hasher uses, so shards do not skew buckets.
    usize::from(key.as_bytes()[8]) % SHARDS
}

/// Locks a shard. A panic while a shard was locked cannot leave an entry half-written (every
/// change is a single map operation), so a poisoned lock is safe to keep using.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sweep(shard: &Mutex<Shard>, now: i64) -> u64 {
    let mut shard = lock(shard);
    let before = shard.map.len();
    shard.map.retain(|_, entry| entry.expires_at > now);
    shard.keys.prune();
    (before - shard.map.len()) as u64
}

type Map = HashMap<StoreKey, Entry, BuildHasherDefault<DigestHasher>>;

fn live_entry<'a>(map: &'a mut Map, key: &StoreKey, now: i64) -> Option<&'a mut Entry> {
    if map.get(key).is_some_and(|e| e.expires_at <= now) {
        map.remove(key);
    }
    map.get_mut(key)
}

fn take_live(map: &mut Map, key: &StoreKey, now: i64) -> Option<Entry> {
    map.remove(key).filter(|e| e.expires_at > now)
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = now_millis();
        let mut shard = lock(self.shard(key));
        Ok(live_entry(&mut shard.map, key, now).map(|entry| entry.to_record()))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Outcome, StoreError> {
        let now = now_millis();
        let outcome = {
            let shard = &mut *lock(self.shard(key));
            if live_entry(&mut shard.map, key, now).is_some() {
                Outcome::Collision
            } else {
                let entry = Entry::new(record, &mut shard.keys);
                shard.map.insert(*key, entry);
                Outcome::Done
            }
        };
        self.maybe_sweep(now);
        Ok(outcome)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Outcome, StoreError> {
        let now = now_millis();
        let shard = &mut *lock(self.shard(key));
        Ok(match live_entry(&mut shard.map, key, now) {
            Some(entry) => {
                entry.apply(changes, &mut shard.keys);
                Outcome::Done
            }
            None => Outcome::Missing,
        })
    }

    async fn cycle(
        &self,
        old: &StoreKey,
        new: &StoreKey,
        changes: &ChangeSet,
    ) -> Result<Outcome, StoreError> {
        let now = now_millis();
        let (a, b) = (shard_index(old), shard_index(new));
        if a == b {
            let shard = &mut *lock(&self.inner.shards[a]);
            if live_entry(&mut shard.map, new, now).is_some() {
                return Ok(Outcome::Collision);
            }
            let Some(mut entry) = take_live(&mut shard.map, old, now) else {
                return Ok(Outcome::Missing);
            };
            entry.apply(changes, &mut shard.keys);
            shard.map.insert(*new, entry);
            return Ok(Outcome::Done);
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
        if live_entry(&mut to.map, new, now).is_some() {
            return Ok(Outcome::Collision);
        }
        let Some(mut entry) = take_live(&mut from.map, old, now) else {
            return Ok(Outcome::Missing);
        };
        entry.apply(changes, &mut to.keys);
        to.map.insert(*new, entry);
        Ok(Outcome::Done)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        lock(self.shard(key)).map.remove(key);
        Ok(())
    }

    async fn delete_expired(&self) -> Result<u64, StoreError> {
        let now = now_millis();
        Ok(self.inner.shards.iter().map(|s| sweep(s, now)).sum())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &SHARDS)
            .finish_non_exhaustive()
    }
}
