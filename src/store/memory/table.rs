//! One shard's sessions: a hash table filed by half of each store key, the entries boxed.
//!
//! Why this shape: a hash table keeps between 12% and 52% of its slots empty, so every byte of
//! a slot costs up to twice over. A slot here is 24 bytes, the first 16 bytes of the store key
//! and a pointer; the entry (the key's other 16 bytes, the times, the values) sits in one
//! allocation of its own, fully used. A slot with the whole 32-byte key and the entry inline
//! was 72 bytes: 218 bytes per small session at 1,000,000 sessions (162 to 225 between 100,000
//! and 1,500,000), against 130 to 150 now (`cargo run --release --manifest-path
//! benchmark/capacity/Cargo.toml --bin memory_footprint`).
//!
//! The second half of the key is still compared on every lookup, so the table answers for the
//! exact key: two keys sharing their first 16 bytes (never seen in practice with SHA-256, and
//! not something a client can aim for without finding a preimage) do not see each other's
//! session; the second one's create is refused as a collision and the layer draws another id.

use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::entry::Entry;
use crate::id::StoreKey;

/// The half of a store key the table is filed by.
type Head = [u8; 16];

/// The half of a store key kept in its entry.
pub(super) type Tail = [u8; 16];

fn split(key: &StoreKey) -> (Head, Tail) {
    let mut head = [0u8; 16];
    let mut tail = [0u8; 16];
    head.copy_from_slice(&key.as_bytes()[..16]);
    tail.copy_from_slice(&key.as_bytes()[16..]);
    (head, tail)
}

/// The keys are SHA-256 digests, already uniformly random: hashing them again is wasted work.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // The last write is the head itself (a length prefix may come first): its first 8 bytes.
        if let Some(word) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*word);
        }
    }
}

/// A free slot of the table, from [`Table::vacancy`].
pub(super) struct Vacancy<'a> {
    slot: Slot<'a, Head, Box<Entry>>,
    tail: Tail,
}

impl Vacancy<'_> {
    /// Files `entry` in the slot, under the key the slot was found for.
    pub(super) fn fill(self, mut entry: Box<Entry>) {
        entry.tail = self.tail;
        match self.slot {
            Slot::Vacant(slot) => {
                slot.insert(entry);
            }
            Slot::Occupied(mut expired) => {
                expired.insert(entry);
            }
        }
    }
}

/// A shard's sessions by store key.
#[derive(Default)]
pub(super) struct Table(HashMap<Head, Box<Entry>, BuildHasherDefault<DigestHasher>>);

impl Table {
    /// The session stored under exactly `key`, if it is live; an expired entry in its slot is
    /// removed on the way.
    pub(super) fn live(&mut self, key: &StoreKey, now: i64) -> Option<&mut Entry> {
        let (head, tail) = split(key);
        // One probe of the table (the head is `Copy`, so the entry API costs nothing more). On
        // a miss it makes room for one insert: a table at its capacity grows one create early.
        match self.0.entry(head) {
            Slot::Occupied(slot) if slot.get().expires_at <= now => {
                slot.remove();
                None
            }
            Slot::Occupied(slot) => {
                let entry = &mut **slot.into_mut();
                (entry.tail == tail).then_some(entry)
            }
            Slot::Vacant(_) => None,
        }
    }

    /// Whether `key`'s slot holds a live session (its own, or one whose key shares its head):
    /// a create or a cycle to `key` must then be refused as a collision.
    pub(super) fn is_taken(&mut self, key: &StoreKey, now: i64) -> bool {
        self.vacancy(key, now).is_none()
    }

    /// The slot `key` would be filed in, if no live session holds it (an expired one there is
    /// replaced when the slot is filled): a create's check and insert in one probe.
    pub(super) fn vacancy(&mut self, key: &StoreKey, now: i64) -> Option<Vacancy<'_>> {
        let (head, tail) = split(key);
        let slot = self.0.entry(head);
        if let Slot::Occupied(taken) = &slot {
            if taken.get().expires_at > now {
                return None;
            }
        }
        Some(Vacancy { slot, tail })
    }

    /// Files `entry` under `key`, replacing an expired session in its slot. The caller has
    /// checked [`is_taken`](Self::is_taken) under the same lock.
    pub(super) fn insert(&mut self, key: &StoreKey, mut entry: Box<Entry>) {
        let (head, tail) = split(key);
        entry.tail = tail;
        self.0.insert(head, entry);
    }

    /// Takes out the session stored under exactly `key`, live or not.
    pub(super) fn remove(&mut self, key: &StoreKey) -> Option<Box<Entry>> {
        let (head, tail) = split(key);
        if self.0.get(&head)?.tail != tail {
            return None;
        }
        self.0.remove(&head)
    }

    /// Keeps the sessions for which `keep` holds.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.0.retain(|_, entry| keep(entry));
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_ms;
    use crate::store::{Data, Record};

    fn key(head: u8, tail: u8) -> StoreKey {
        let mut bytes = [head; 32];
        bytes[16..].fill(tail);
        StoreKey::from_hex(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .expect("64 hex digits")
    }

    fn entry(expires_at: i64) -> Box<Entry> {
        let record = Record::new(Data::new(), from_ms(expires_at)).with_created_at(from_ms(0));
        Box::new(Entry::new(&record, &mut Default::default()))
    }

    /// Two keys with the same first half: the table answers for the exact key only, and the
    /// second key's slot counts as taken (its create is a collision), so neither session can
    /// be read, changed or deleted through the other key.
    #[test]
    fn keys_sharing_a_head_never_see_each_others_session() {
        let (mine, theirs) = (key(7, 1), key(7, 2));
        let mut table = Table::default();
        table.insert(&mine, entry(100));
        assert!(table.live(&mine, 0).is_some());
        assert!(table.live(&theirs, 0).is_none());
        assert!(table.is_taken(&theirs, 0));
        assert!(table.remove(&theirs).is_none());
        assert_eq!(table.len(), 1);
        assert!(table.remove(&mine).is_some());
        assert!(!table.is_taken(&theirs, 0));
    }

    /// A vacancy is refused while a live session holds the slot, whoever's key it is, and
    /// replaces an expired one when filled.
    #[test]
    fn a_vacancy_is_only_where_no_live_session_is() {
        let (old, new) = (key(5, 1), key(5, 2));
        let mut table = Table::default();
        table.insert(&old, entry(10));
        assert!(table.vacancy(&new, 5).is_none());
        assert!(table.vacancy(&old, 5).is_none());
        let Some(vacancy) = table.vacancy(&new, 10) else {
            panic!("the expired session's slot is free");
        };
        vacancy.fill(entry(20));
        assert_eq!(table.len(), 1);
        assert!(table.live(&old, 10).is_none());
        assert!(table.live(&new, 10).is_some());
    }

    /// An expired entry frees its slot: for a create under any key sharing its head, and on
    /// the next lookup, which removes it.
    #[test]
    fn an_expired_entry_leaves_its_slot_on_the_next_lookup() {
        let (old, new) = (key(9, 1), key(9, 2));
        let mut table = Table::default();
        table.insert(&old, entry(10));
        assert!(table.live(&old, 5).is_some());
        assert!(!table.is_taken(&new, 10));
        assert!(table.live(&new, 10).is_none());
        assert_eq!(table.len(), 0);
    }
}
