//! One stored session in [`MemoryStore`](super::MemoryStore), laid out for speed and size.
//!
//! The values are kept ready to use, as a boxed slice of `(key, value)` pairs: loading a session
//! clones them into a [`Data`] map and saving edits them in place, with no JSON to parse or to
//! write. Keys are interned per shard (every session names the same few keys: `user_id`,
//! `counter`, ...), so a small session costs one allocation, its slice, beside its map slot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::expiry::Expiry;
use crate::store::{entry_size, ChangeSet, Data, Record, EMPTY_SIZE};

/// The distinct keys of one shard's sessions, each allocated once and shared.
#[derive(Default)]
pub(super) struct Keys(HashSet<Arc<str>>);

impl Keys {
    fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(key) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(key);
        self.0.insert(Arc::clone(&shared));
        shared
    }

    /// Forgets keys no session uses any more, so apps that build key names from data (one key
    /// per item, say) do not grow the table for ever.
    pub(super) fn prune(&mut self) {
        self.0.retain(|key| Arc::strong_count(key) > 1);
    }
}

/// A stored session: 40 bytes plus its pairs.
pub(super) struct Entry {
    data: Box<[(Arc<str>, Value)]>,
    created_at: i64,
    pub(super) expires_at: i64,
    expiry: PackedExpiry,
}

impl Entry {
    pub(super) fn new(record: &Record, keys: &mut Keys) -> Self {
        Self {
            data: record
                .data
                .iter()
                .map(|(key, value)| (keys.intern(key), value.clone()))
                .collect(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            expiry: record.expiry.into(),
        }
    }

    pub(super) fn to_record(&self) -> Record {
        let data: Data = self
            .data
            .iter()
            .map(|(key, value)| (String::from(&**key), value.clone()))
            .collect();
        Record::new(data, self.created_at, self.expires_at, self.expiry.into())
    }

    /// Whether `changes` fit the size cap: `Err(size)` if they would take the values over it
    /// (the same count as [`ChangeSet::check_size`], on the slice).
    pub(super) fn check_size(&self, changes: &ChangeSet) -> Result<(), usize> {
        let Some(cap) = changes.size_cap() else {
            return Ok(());
        };
        let old = |key: &str| self.data.iter().find(|(k, _)| **k == *key).map(|(_, v)| v);
        let mut size = EMPTY_SIZE;
        if !changes.clear {
            size += self
                .data
                .iter()
                .map(|(key, value)| entry_size(key, value))
                .sum::<usize>();
        }
        for (key, value) in &changes.updates {
            if !changes.clear {
                if let Some(old) = old(key) {
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

    /// Applies `changes` in place. It cannot fail, so an entry is never left half-changed.
    pub(super) fn apply(&mut self, changes: &ChangeSet, keys: &mut Keys) {
        if !changes.is_data_unchanged() {
            let mut data = std::mem::take(&mut self.data).into_vec();
            if changes.clear {
                data.clear();
            }
            for (key, value) in &changes.updates {
                let slot = data.iter().position(|(k, _)| **k == **key);
                match (slot, value) {
                    (Some(i), Some(value)) => data[i].1 = value.clone(),
                    (None, Some(value)) => data.push((keys.intern(key), value.clone())),
                    (Some(i), None) => {
                        data.swap_remove(i);
                    }
                    (None, None) => {}
                }
            }
            self.data = data.into_boxed_slice();
        }
        self.expires_at = changes.expires_at;
        if let Some(expiry) = changes.expiry {
            self.expiry = expiry.into();
        }
    }
}

/// `Option<Expiry>` in 8 bytes, at millisecond precision (as every store keeps it): the variant
/// in the low two bits, the milliseconds above them (61 bits: ±36 million years).
#[derive(Clone, Copy)]
struct PackedExpiry(i64);

const DEFAULT: i64 = 0;
const ON_SESSION_END: i64 = 1;
const ON_INACTIVITY: i64 = 2;
const AT_DATE_TIME: i64 = 3;
const MAX_MILLIS: i64 = i64::MAX >> 2;
const MIN_MILLIS: i64 = i64::MIN >> 2;

impl From<Option<Expiry>> for PackedExpiry {
    fn from(expiry: Option<Expiry>) -> Self {
        let (tag, millis) = match expiry {
            None => (DEFAULT, 0),
            Some(Expiry::OnSessionEnd) => (ON_SESSION_END, 0),
            Some(Expiry::OnInactivity(d)) => (
                ON_INACTIVITY,
                i64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS),
            ),
            Some(Expiry::AtDateTime(at)) => (
                AT_DATE_TIME,
                i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(MAX_MILLIS),
            ),
        };
        Self((millis.clamp(MIN_MILLIS, MAX_MILLIS) << 2) | tag)
    }
}

impl From<PackedExpiry> for Option<Expiry> {
    fn from(packed: PackedExpiry) -> Self {
        let millis = packed.0 >> 2;
        match packed.0 & 3 {
            ON_SESSION_END => Some(Expiry::OnSessionEnd),
            ON_INACTIVITY => Some(Expiry::OnInactivity(Duration::from_millis(
                u64::try_from(millis).unwrap_or(0),
            ))),
            AT_DATE_TIME => {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
                    .ok()
                    .map(Expiry::AtDateTime)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_expiry_round_trips_at_millisecond_precision() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let before_1970 = time::OffsetDateTime::from_unix_timestamp(-86_400).unwrap();
        for expiry in [
            None,
            Some(Expiry::OnSessionEnd),
            Some(Expiry::OnInactivity(Duration::from_millis(1_500))),
            Some(Expiry::OnInactivity(Duration::ZERO)),
            Some(Expiry::AtDateTime(at)),
            Some(Expiry::AtDateTime(before_1970)),
        ] {
            let packed = PackedExpiry::from(expiry);
            assert_eq!(Option::<Expiry>::from(packed), expiry);
        }
    }

    #[test]
    fn interned_keys_are_shared_and_pruned_when_unused() {
        let mut keys = Keys::default();
        let record = Record::new(
            Data::from([("counter".to_owned(), Value::from(1))]),
            0,
            1,
            None,
        );
        let a = Entry::new(&record, &mut keys);
        let b = Entry::new(&record, &mut keys);
        assert!(Arc::ptr_eq(&a.data[0].0, &b.data[0].0));
        assert_eq!(b.to_record(), record);
        drop((a, b));
        keys.prune();
        assert!(keys.0.is_empty());
    }

    #[test]
    fn apply_sets_replaces_removes_and_clears() {
        let mut keys = Keys::default();
        let mut record = Record::new(
            Data::from([
                ("a".to_owned(), Value::from(1)),
                ("b".to_owned(), Value::from(2)),
            ]),
            0,
            10,
            None,
        );
        let mut entry = Entry::new(&record, &mut keys);
        let changes = ChangeSet::new(20)
            .with_update("a", Some(Value::from("x")))
            .with_update("b", None)
            .with_update("c", Some(Value::from(3)))
            .with_expiry(Some(Expiry::OnSessionEnd));
        entry.apply(&changes, &mut keys);
        changes.apply_to(&mut record);
        assert_eq!(entry.to_record(), record);

        let clear = ChangeSet::new(30)
            .with_clear()
            .with_update("d", Some(Value::from(4)));
        entry.apply(&clear, &mut keys);
        clear.apply_to(&mut record);
        assert_eq!(entry.to_record(), record);
    }
}
