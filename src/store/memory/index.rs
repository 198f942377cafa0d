//! The principal index of [`MemoryStore`](super::MemoryStore): which store keys each principal's
//! sessions have.
//!
//! Lock order: a session shard, then an index shard, never the other way round. An entry is
//! added while the session's shard is locked, so no one who can see the tied session can miss
//! its entry. Entries of sessions that are gone are dropped by `list` and by the purge; a key
//! that is gone never comes back (keys are random), so dropping one late is safe.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use crate::id::StoreKey;

const SHARDS: usize = 16;

type Keys = HashMap<String, HashSet<StoreKey>>;

pub(super) struct Index {
    shards: Box<[Mutex<Keys>]>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Index {
    fn shard(&self, principal: &str) -> MutexGuard<'_, Keys> {
        let mut hasher = DefaultHasher::new();
        principal.hash(&mut hasher);
        // The remainder is below SHARDS, so it fits a usize on every platform.
        let at = (hasher.finish() % SHARDS as u64) as usize;
        self.shards[at]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn add(&self, principal: &str, key: StoreKey) {
        let mut shard = self.shard(principal);
        match shard.get_mut(principal) {
            Some(keys) => {
                keys.insert(key);
            }
            None => {
                shard.insert(principal.to_owned(), HashSet::from([key]));
            }
        }
    }

    pub(super) fn remove(&self, principal: &str, key: &StoreKey) {
        let mut shard = self.shard(principal);
        if let Some(keys) = shard.get_mut(principal) {
            keys.remove(key);
            if keys.is_empty() {
                shard.remove(principal);
            }
        }
    }

    pub(super) fn keys(&self, principal: &str) -> Vec<StoreKey> {
        self.shard(principal)
            .get(principal)
            .map(|keys| keys.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every `(principal, key)` entry, shard by shard (for the purge).
    pub(super) fn entries(&self) -> Vec<(String, StoreKey)> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (principal, keys) in shard.iter() {
                all.extend(keys.iter().map(|key| (principal.clone(), *key)));
            }
        }
        all
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                shard.values().map(HashSet::len).sum::<usize>()
            })
            .sum()
    }
}
