//! [`MemoryStore`]: the embedded default.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{ChangeSet, Data, Outcome, Record, SessionStore};
use crate::error::StoreError;
use crate::expiry::{now_millis, Expiry};
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
/// - **Compact.** A session is kept as 48 bytes plus its values as one JSON text, filed under its
///   32-byte key. With 1,000,000 sessions holding one small value (`{"counter": n}`) the process
///   grows by about 200 bytes per session (203 measured), map overhead included (`cargo run --release
///   --example memory_footprint` measures it on your machine).
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

type Shard = HashMap<StoreKey, Entry, BuildHasherDefault<DigestHasher>>;

/// A stored session, kept small: the values as one JSON text (one allocation, a few dozen
/// bytes for a small session) and the expiry packed in 16 bytes. 48 bytes plus the text.
struct Entry {
    json: Box<str>,
    created_at: i64,
    expires_at: i64,
    expiry: PackedExpiry,
}

/// `Option<Expiry>` in 16 bytes, at millisecond precision (as every store keeps it).
#[derive(Clone, Copy)]
enum PackedExpiry {
    Default,
    OnSessionEnd,
    OnInactivity(u64),
    AtDateTime(i64),
}

impl From<Option<Expiry>> for PackedExpiry {
    fn from(expiry: Option<Expiry>) -> Self {
        match expiry {
            None => Self::Default,
            Some(Expiry::OnSessionEnd) => Self::OnSessionEnd,
            Some(Expiry::OnInactivity(d)) => {
                Self::OnInactivity(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            Some(Expiry::AtDateTime(at)) => Self::AtDateTime(
                i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
            ),
        }
    }
}

impl From<PackedExpiry> for Option<Expiry> {
    fn from(packed: PackedExpiry) -> Self {
        match packed {
            PackedExpiry::Default => None,
            PackedExpiry::OnSessionEnd => Some(Expiry::OnSessionEnd),
            PackedExpiry::OnInactivity(ms) => {
                Some(Expiry::OnInactivity(std::time::Duration::from_millis(ms)))
            }
            PackedExpiry::AtDateTime(ms) => {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .ok()
                    .map(Expiry::AtDateTime)
            }
        }
    }
}

impl Entry {
    fn new(record: &Record) -> Result<Self, StoreError> {
        Ok(Self {
            json: encode(&record.data)?,
            created_at: record.created_at,
            expires_at: record.expires_at,
            expiry: record.expiry.into(),
        })
    }

    fn to_record(&self) -> Result<Record, StoreError> {
        let data =
            serde_json::from_str(&self.json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Record::new(
            data,
            self.created_at,
            self.expires_at,
            self.expiry.into(),
        ))
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<(), StoreError> {
        let mut record = if changes.is_data_unchanged() {
            Record::new(
                Data::new(),
                self.created_at,
                self.expires_at,
                self.expiry.into(),
            )
        } else {
            self.to_record()?
        };
        changes.apply_to(&mut record);
        if !changes.is_data_unchanged() {
            self.json = encode(&record.data)?;
        }
        self.expires_at = record.expires_at;
        self.expiry = record.expiry.into();
        Ok(())
    }
}

fn encode(data: &Data) -> Result<Box<str>, StoreError> {
    // A fresh exact-size copy: shrinking serde_json's buffer in place would leave a hole
    // behind every entry.
    serde_json::to_string(data)
        .map(|json| Box::from(json.as_str()))
        .map_err(StoreError::backend)
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions the store holds, counting expired ones not purged yet.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len()).sum()
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
    let mut map = lock(shard);
    let before = map.len();
    map.retain(|_, entry| entry.expires_at > now);
    (before - map.len()) as u64
}

fn live_entry<'a>(map: &'a mut Shard, key: &StoreKey, now: i64) -> Option<&'a mut Entry> {
    if map.get(key).is_some_and(|e| e.expires_at <= now) {
        map.remove(key);
    }
    map.get_mut(key)
}

fn take_live(map: &mut Shard, key: &StoreKey, now: i64) -> Option<Entry> {
    map.remove(key).filter(|e| e.expires_at > now)
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = now_millis();
        live_entry(&mut lock(self.shard(key)), key, now)
            .map(|entry| entry.to_record())
            .transpose()
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Outcome, StoreError> {
        let now = now_millis();
        let entry = Entry::new(record)?;
        let outcome = {
            let mut map = lock(self.shard(key));
            if live_entry(&mut map, key, now).is_some() {
                Outcome::Collision
            } else {
                map.insert(*key, entry);
                Outcome::Done
            }
        };
        self.maybe_sweep(now);
        Ok(outcome)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Outcome, StoreError> {
        let now = now_millis();
        let mut map = lock(self.shard(key));
        Ok(match live_entry(&mut map, key, now) {
            Some(entry) => {
                entry.apply(changes)?;
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
            let mut map = lock(&self.inner.shards[a]);
            if live_entry(&mut map, new, now).is_some() {
                return Ok(Outcome::Collision);
            }
            let Some(mut entry) = take_live(&mut map, old, now) else {
                return Ok(Outcome::Missing);
            };
            // Put it back unchanged if the changes cannot be applied: nothing is lost.
            let applied = entry.apply(changes);
            map.insert(if applied.is_ok() { *new } else { *old }, entry);
            return applied.map(|()| Outcome::Done);
        }
        // Both shards stay locked for the whole move, always taken in index order, so no other
        // operation sees the session in both places or in neither, and two cycles cannot deadlock.
        let mut low = lock(&self.inner.shards[a.min(b)]);
        let mut high = lock(&self.inner.shards[a.max(b)]);
        let (old_map, new_map) = if a < b {
            (&mut *low, &mut *high)
        } else {
            (&mut *high, &mut *low)
        };
        if live_entry(new_map, new, now).is_some() {
            return Ok(Outcome::Collision);
        }
        let Some(mut entry) = take_live(old_map, old, now) else {
            return Ok(Outcome::Missing);
        };
        match entry.apply(changes) {
            Ok(()) => new_map.insert(*new, entry),
            Err(error) => {
                old_map.insert(*old, entry);
                return Err(error);
            }
        };
        Ok(Outcome::Done)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        lock(self.shard(key)).remove(key);
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
