//! One stored session in [`MemoryStore`](super::MemoryStore), laid out for speed and size.
//!
//! The values are kept ready to use, as `(key, value)` pairs: loading a session clones them into
//! a [`Data`] map and saving edits them in place, with no JSON to parse or to write. Keys are
//! interned per shard (every session names the same few keys: `user_id`, `counter`, ...), and a
//! session with one value keeps it inline, so a small session is one allocation (the entry,
//! 88 bytes) beside its 24-byte slot in the shard's table.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::table::Tail;
use crate::clock::{from_ms, to_ms};
use crate::expiry::ExpirySettings;
use crate::id::StoreKey;
use crate::store::{
    entry_size, ChangeSet, Data, ExpiryChange, KeyChange, Listed, Owner, Record,
    EMPTY_SIZE as EMPTY,
};

/// The distinct keys of one shard's sessions, each allocated once and shared.
#[derive(Default)]
pub(super) struct Keys {
    interned: HashSet<Arc<str>>,
    /// The count at which interning prunes first: twice the count the last prune left (at
    /// least [`MIN_PRUNE_AT`]), so pruning costs O(1) per interned key, amortized.
    prune_at: usize,
}

/// The fewest keys a shard interns before interning prunes.
const MIN_PRUNE_AT: usize = 1024;

impl Keys {
    fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(shared) = self.interned.get(key) {
            return Arc::clone(shared);
        }
        // Keys the shard's sessions no longer use go before the table grows further: sweeps
        // prune too, but they run on creates, and an app whose existing sessions keep writing
        // new key names (one per item, say) may create none for a long time.
        if self.interned.len() >= self.prune_at.max(MIN_PRUNE_AT) {
            self.prune();
        }
        let shared: Arc<str> = Arc::from(key);
        self.interned.insert(Arc::clone(&shared));
        shared
    }

    /// Forgets keys no session uses any more, so apps that build key names from data (one key
    /// per item, say) do not grow the table for ever.
    pub(super) fn prune(&mut self) {
        self.interned.retain(|key| Arc::strong_count(key) > 1);
        self.prune_at = self.interned.len() * 2;
    }

    /// How many keys are interned.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.interned.len()
    }
}

/// One value of a session, under its interned key.
type Pair = (Arc<str>, Value);

/// A session's values: most sessions hold one or two, so one is kept inline (no allocation of
/// its own) and more go to a boxed slice.
enum Pairs {
    One(Pair),
    /// `size`: the pairs' [`entry_size`]s summed, kept up to date by each change, so that a
    /// write's size check costs what the write changes, not what the session holds. (A single
    /// value is counted when needed: it is what a change to another key would count anyway.)
    Many {
        pairs: Box<[Pair]>,
        size: usize,
    },
}

impl Pairs {
    fn as_slice(&self) -> &[Pair] {
        match self {
            Pairs::One(pair) => std::slice::from_ref(pair),
            Pairs::Many { pairs, .. } => pairs,
        }
    }

    /// The pairs `pairs` yields; one goes inline without passing through a `Vec`.
    fn collect(mut pairs: impl ExactSizeIterator<Item = Pair>) -> Self {
        if pairs.len() == 1 {
            if let Some(pair) = pairs.next() {
                return Pairs::One(pair);
            }
        }
        Pairs::from(pairs.collect::<Vec<_>>())
    }

    fn as_mut_slice(&mut self) -> &mut [Pair] {
        match self {
            Pairs::One(pair) => std::slice::from_mut(pair),
            Pairs::Many { pairs, .. } => pairs,
        }
    }

    fn into_vec(self) -> Vec<Pair> {
        match self {
            Pairs::One(pair) => vec![pair],
            Pairs::Many { pairs, .. } => pairs.into_vec(),
        }
    }

    /// The pairs' [`entry_size`]s summed.
    #[cfg(test)]
    fn size(&self) -> usize {
        match self {
            Pairs::One((key, value)) => entry_size(key, value),
            Pairs::Many { size, .. } => *size,
        }
    }

    /// `pairs`, whose [`entry_size`]s sum to `size`.
    fn with_size(mut pairs: Vec<Pair>, size: usize) -> Self {
        match pairs.pop() {
            Some(pair) if pairs.is_empty() => Pairs::One(pair),
            Some(pair) => {
                pairs.push(pair);
                Pairs::Many {
                    pairs: pairs.into_boxed_slice(),
                    size,
                }
            }
            // An empty boxed slice allocates nothing.
            None => Pairs::empty(),
        }
    }

    fn empty() -> Self {
        Pairs::Many {
            pairs: Box::default(),
            size: 0,
        }
    }
}

impl From<Vec<Pair>> for Pairs {
    fn from(pairs: Vec<Pair>) -> Self {
        let size = pairs
            .iter()
            .map(|(key, value)| entry_size(key, value))
            .sum();
        Pairs::with_size(pairs, size)
    }
}

/// A stored session: 88 bytes, its first value included (and its [`Extra`], if it has one).
pub(super) struct Entry {
    /// The second half of the session's store key (the first half files it: see
    /// [`Table`](super::table::Table)); set when the entry is filed.
    pub(super) tail: Tail,
    data: Pairs,
    created_at: i64,
    pub(super) expires_at: i64,
    extra: Option<Box<Extra>>,
}

impl Entry {
    pub(super) fn new(record: &Record, keys: &mut Keys) -> Self {
        let pairs = record
            .data
            .iter()
            .map(|(key, value)| (keys.intern(key), value.clone()));
        Self {
            tail: Tail::default(),
            data: Pairs::collect(pairs),
            created_at: to_ms(record.created_at),
            expires_at: to_ms(record.expires_at),
            extra: Extra::boxed(record.expiry, record.owner.clone()),
        }
    }

    pub(super) fn to_record(&self) -> Record {
        // Inserted one by one: `collect` into a B-tree goes through a sorted `Vec` first, an
        // allocation more for the one or two values most sessions hold.
        let mut data = Data::new();
        for (key, value) in self.data.as_slice() {
            data.insert(String::from(&**key), value.clone());
        }
        // A literal, not `Record::new`: that reads the clock for a `created_at` replaced at once.
        Record {
            data,
            created_at: from_ms(self.created_at),
            expires_at: from_ms(self.expires_at),
            expiry: self.expiry(),
            owner: self.owner().cloned(),
        }
    }

    fn expiry(&self) -> ExpirySettings {
        self.extra
            .as_ref()
            .map_or_else(ExpirySettings::default, |extra| extra.expiry)
    }

    /// The principal and label the session is tied to.
    pub(super) fn owner(&self) -> Option<&Owner> {
        self.extra.as_ref().and_then(|extra| extra.owner.as_ref())
    }

    /// What the store lists for this session.
    pub(super) fn listed(&self, key: StoreKey) -> Listed {
        let owner = self.owner();
        let label = owner.and_then(|owner| owner.label.clone());
        let tied_at = owner.and_then(|owner| owner.tied_at);
        let (created_at, expires_at) = (from_ms(self.created_at), from_ms(self.expires_at));
        Listed::new(key, created_at, expires_at, label).with_tied_at(tied_at)
    }

    /// Ties the session to `owner`.
    pub(super) fn tie(&mut self, owner: &Owner) {
        self.extra = Extra::boxed(self.expiry(), Some(owner.clone()));
    }

    /// The size of the values after `changes` (the pairs' [`entry_size`]s summed, without the
    /// braces), if they fit the size cap; `Err(size)` with the size [`data_size`] gives if they
    /// would take the values over it (the same count as [`ChangeSet::check_size`]). What
    /// [`apply`](Self::apply) needs to keep the size. It counts the entries `changes` sets
    /// and those it replaces or removes, never the others.
    ///
    /// [`data_size`]: crate::store::data_size
    pub(super) fn check_size(&self, changes: &ChangeSet) -> Result<usize, usize> {
        let set: usize = changes
            .updates
            .iter()
            .filter_map(|(key, change)| change.value().map(|value| entry_size(key, value)))
            .sum();
        let kept = if changes.clear {
            0
        } else {
            match &self.data {
                Pairs::One((key, _)) if changes.updates.contains_key(&**key) => 0,
                Pairs::One((key, value)) => entry_size(key, value),
                Pairs::Many { pairs, size } => {
                    let replaced: usize = changes
                        .updates
                        .keys()
                        .filter_map(|key| pairs.iter().find(|(k, _)| **k == **key))
                        .map(|(key, value)| entry_size(key, value))
                        .sum();
                    // Never below: `size` is the sum that `replaced` is part of.
                    size.saturating_sub(replaced)
                }
            }
        };
        let size = kept.saturating_add(set);
        match changes.size_cap() {
            Some(cap) if EMPTY.saturating_add(size) > cap => Err(EMPTY.saturating_add(size)),
            _ => Ok(size),
        }
    }

    /// Whether the preconditions of `changes` hold (see [`ChangeSet::preconditions_hold`]).
    pub(super) fn preconditions_hold(&self, changes: &ChangeSet) -> bool {
        changes.expect.iter().all(|(key, expected)| {
            let current = self
                .data
                .as_slice()
                .iter()
                .find(|(k, _)| **k == **key)
                .map(|(_, v)| v);
            expected.holds(current)
        })
    }

    /// Whether `changes` only give new values to keys the session already has.
    fn replaces_in_place(&self, changes: &ChangeSet) -> bool {
        let pairs = self.data.as_slice();
        !changes.clear
            && changes.updates.iter().all(|(key, change)| {
                change.value().is_some() && pairs.iter().any(|(k, _)| **k == **key)
            })
    }

    /// Applies `changes` in place; `size` is what [`check_size`](Self::check_size) gave for
    /// them. It cannot fail, so an entry is never left half-changed.
    pub(super) fn apply(&mut self, changes: &ChangeSet, keys: &mut Keys, size: usize) {
        if self.replaces_in_place(changes) {
            // The common save (new values for keys the session has): no reshaping, no allocation.
            let pairs = self.data.as_mut_slice();
            for (key, change) in &changes.updates {
                if let (Some(slot), KeyChange::Set(value)) =
                    (pairs.iter_mut().find(|(k, _)| **k == **key), change)
                {
                    slot.1 = value.clone();
                }
            }
            if let Pairs::Many { size: kept, .. } = &mut self.data {
                *kept = size;
            }
        } else if !changes.is_data_unchanged() {
            let taken = std::mem::replace(&mut self.data, Pairs::empty());
            let mut data = taken.into_vec();
            if changes.clear {
                data.clear();
            }
            for (key, change) in &changes.updates {
                let slot = data.iter().position(|(k, _)| **k == **key);
                match (slot, change) {
                    (Some(i), KeyChange::Set(value)) => data[i].1 = value.clone(),
                    (None, KeyChange::Set(value)) => data.push((keys.intern(key), value.clone())),
                    (Some(i), KeyChange::Remove) => {
                        data.swap_remove(i);
                    }
                    (None, KeyChange::Remove) => {}
                }
            }
            self.data = Pairs::with_size(data, size);
        }
        self.expires_at = to_ms(changes.expires_at);
        if let ExpiryChange::Set(expiry) = changes.expiry {
            let owner = self.extra.take().and_then(|extra| extra.owner);
            self.extra = Extra::boxed(expiry, owner);
        }
    }
}

/// What few sessions have, kept out of line so that the others pay one null pointer for it:
/// their own expiry settings and their owner.
#[derive(Clone, Default, PartialEq)]
struct Extra {
    expiry: ExpirySettings,
    owner: Option<Owner>,
}

impl Extra {
    /// The box for these settings; `None` when they are all defaults and there is no owner.
    fn boxed(expiry: ExpirySettings, owner: Option<Owner>) -> Option<Box<Extra>> {
        (!expiry.is_default() || owner.is_some()).then(|| Box::new(Extra { expiry, owner }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_ms;
    use crate::store::Precondition;

    /// An entry is 88 bytes whatever its settings (they live out of line, boxed only when a
    /// session has some of its own), its first value included.
    #[test]
    fn entries_stay_small_and_keep_their_settings() {
        assert_eq!(std::mem::size_of::<Entry>(), 88);
        let mut keys = Keys::default();
        let own = ExpirySettings::from(Some(crate::Expiry::OnSessionEnd))
            .with_absolute_timeout(Some(std::time::Duration::from_millis(1500)));
        let record = Record::new(Data::new(), from_ms(1))
            .with_created_at(from_ms(0))
            .with_expiry(own);
        let entry = Entry::new(&record, &mut keys);
        assert!(entry.extra.is_some());
        assert_eq!(entry.to_record(), record);
        let plain = Entry::new(
            &Record::new(Data::new(), from_ms(1)).with_created_at(from_ms(0)),
            &mut keys,
        );
        assert!(plain.extra.is_none());
        let owned = record.with_owner(Owner::new("u").with_label("phone"));
        let mut entry = Entry::new(&owned, &mut keys);
        assert_eq!(entry.to_record(), owned);
        let size = entry
            .check_size(&ChangeSet::new(from_ms(2)).with_expiry(None))
            .unwrap();
        entry.apply(
            &ChangeSet::new(from_ms(2)).with_expiry(None),
            &mut keys,
            size,
        );
        assert_eq!(
            entry.owner(),
            owned.owner.as_ref(),
            "a new expiry keeps the owner"
        );
    }

    #[test]
    fn interned_keys_are_shared_and_pruned_when_unused() {
        let mut keys = Keys::default();
        let record = Record::new(
            Data::from([("counter".to_owned(), Value::from(1))]),
            from_ms(1),
        )
        .with_created_at(from_ms(0));
        let a = Entry::new(&record, &mut keys);
        let b = Entry::new(&record, &mut keys);
        assert!(Arc::ptr_eq(
            &a.data.as_slice()[0].0,
            &b.data.as_slice()[0].0
        ));
        assert!(matches!(a.data, Pairs::One(_)), "one value is kept inline");
        assert_eq!(b.to_record(), record);
        drop((a, b));
        keys.prune();
        assert!(keys.interned.is_empty());
    }

    /// A session that keeps writing new key names and dropping the old ones, while no session
    /// is created (so no sweep runs), does not grow its shard's interned keys without bound.
    #[test]
    fn interned_keys_stay_bounded_without_creates() {
        let mut keys = Keys::default();
        let record = Record::new(Data::new(), from_ms(1)).with_created_at(from_ms(0));
        let mut entry = Entry::new(&record, &mut keys);
        for i in 0..100_000 {
            let changes = ChangeSet::new(from_ms(1))
                .with_set(format!("item-{i}"), Value::from(i))
                .with_remove(format!("item-{}", i.max(1) - 1));
            let size = entry.check_size(&changes).unwrap();
            entry.apply(&changes, &mut keys, size);
        }
        assert!(
            keys.len() <= 2 * MIN_PRUNE_AT,
            "{} keys interned",
            keys.len()
        );
    }

    /// A session moves between one inline value, several in a slice and none, and reads back
    /// the same at every step.
    #[test]
    fn values_move_between_inline_and_slice_intact() {
        let mut keys = Keys::default();
        let mut record = Record::new(Data::from([("a".to_owned(), Value::from(1))]), from_ms(10))
            .with_created_at(from_ms(0));
        let mut entry = Entry::new(&record, &mut keys);
        assert!(matches!(entry.data, Pairs::One(_)));
        let steps = [
            ChangeSet::new(from_ms(10)).with_set("b", Value::from(2)),
            ChangeSet::new(from_ms(10)).with_remove("a"),
            ChangeSet::new(from_ms(10)).with_set("b", Value::from("two")),
            ChangeSet::new(from_ms(10)).with_remove("b"),
            ChangeSet::new(from_ms(10)).with_set("c", Value::from(3)),
        ];
        let shapes = ["many", "one", "one", "many", "one"];
        for (changes, shape) in steps.iter().zip(shapes) {
            let size = entry.check_size(changes).unwrap();
            entry.apply(changes, &mut keys, size);
            changes.apply_to(&mut record);
            assert_eq!(entry.to_record(), record);
            let inline = matches!(entry.data, Pairs::One(_));
            assert_eq!(inline, shape == "one", "after {changes:?}");
        }
        assert!(entry.preconditions_hold(
            &ChangeSet::new(from_ms(10)).with_expected("c", Precondition::Equals(Value::from(3)))
        ));
    }

    #[test]
    fn apply_sets_replaces_removes_and_clears() {
        let mut keys = Keys::default();
        let mut record = Record::new(
            Data::from([
                ("a".to_owned(), Value::from(1)),
                ("b".to_owned(), Value::from(2)),
            ]),
            from_ms(10),
        )
        .with_created_at(from_ms(0));
        let mut entry = Entry::new(&record, &mut keys);
        let changes = ChangeSet::new(from_ms(20))
            .with_set("a", Value::from("x"))
            .with_remove("b")
            .with_set("c", Value::from(3))
            .with_expiry(Some(crate::Expiry::OnSessionEnd));
        let size = entry.check_size(&changes).unwrap();
        entry.apply(&changes, &mut keys, size);
        changes.apply_to(&mut record);
        assert_eq!(entry.to_record(), record);

        let clear = ChangeSet::new(from_ms(30))
            .with_clear()
            .with_set("d", Value::from(4));
        let size = entry.check_size(&clear).unwrap();
        entry.apply(&clear, &mut keys, size);
        clear.apply_to(&mut record);
        assert_eq!(entry.to_record(), record);
    }

    /// The size an entry keeps follows every kind of change (values replaced in place, added,
    /// removed, cleared; one value and many) and equals the count [`data_size`] makes afresh,
    /// and the cap is checked against it exactly.
    ///
    /// [`data_size`]: crate::store::data_size
    #[test]
    fn the_kept_size_is_the_size() {
        use crate::store::data_size;
        let mut keys = Keys::default();
        let mut record = Record::new(Data::new(), from_ms(10)).with_created_at(from_ms(0));
        let mut entry = Entry::new(&record, &mut keys);
        let big = serde_json::json!({"items": [1, 2, 3], "note": "a \"quoted\" text"});
        let steps = [
            ChangeSet::new(from_ms(20)).with_set("a", Value::from(1)),
            ChangeSet::new(from_ms(20)).with_set("a", big.clone()),
            ChangeSet::new(from_ms(20)).with_set("b", Value::from("two")),
            ChangeSet::new(from_ms(20)).with_set("b", Value::from("three")),
            ChangeSet::new(from_ms(20))
                .with_set("c", big.clone())
                .with_set("d", Value::Null),
            ChangeSet::new(from_ms(20)).with_set("a", Value::from(-12)),
            ChangeSet::new(from_ms(20))
                .with_remove("c")
                .with_remove("zz"),
            ChangeSet::new(from_ms(20))
                .with_remove("a")
                .with_remove("d"),
            ChangeSet::new(from_ms(20)).with_set("e", Value::from(true)),
            ChangeSet::new(from_ms(20))
                .with_clear()
                .with_set("f", big.clone()),
            ChangeSet::new(from_ms(20)).with_remove("f"),
            ChangeSet::new(from_ms(20)).with_set("g", Value::from(7)),
        ];
        for changes in &steps {
            let size = entry.check_size(changes).unwrap();
            entry.apply(changes, &mut keys, size);
            changes.apply_to(&mut record);
            assert_eq!(entry.to_record().data, record.data);
            assert_eq!(EMPTY + entry.data.size(), data_size(&record.data));
            assert_eq!(EMPTY + size, data_size(&record.data));

            // At the cap a change fits; one byte under, it is refused with the size it needs.
            let next = ChangeSet::new(from_ms(20)).with_set("h", big.clone());
            let mut after = record.clone();
            next.clone().apply_to(&mut after);
            let needed = data_size(&after.data);
            let at_cap = next.clone().with_max_size(needed);
            assert_eq!(entry.check_size(&at_cap), Ok(needed - EMPTY));
            let under = next.with_max_size(needed - 1);
            assert_eq!(entry.check_size(&under), Err(needed));
        }
    }
}
