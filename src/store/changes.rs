//! [`ChangeSet`]: what one request changed in a session, with [`KeyChange`], [`Precondition`]
//! and [`ExpiryChange`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use super::size::check_after;
use super::{Data, Record};
use crate::expiry::ExpirySettings;

/// What one request changed in an existing session, applied by the store in one atomic step.
///
/// Order of application: `clear` (drop every key), then each of `updates` ([`KeyChange::Set`]
/// sets the key, [`KeyChange::Remove`] removes it), then the new `expires_at` and, if present, the new `expiry`. `updates`
/// and `expect` are maps, so each names a key at most once. Keys not named are left as they
/// are in the store, which is how two requests writing different keys both win; two requests
/// writing the same key: the last applied wins, unless a precondition (below) guards the key.
///
/// **Size cap.** When `max_size` is set and the change set sets at least one key, the store
/// computes the size the session's values would have after the change, as it stores them
/// ([`data_size`](super::data_size), or the length of the stored JSON text), and refuses the whole change set
/// with `TooLarge` ([`Applied::TooLarge`](super::Applied::TooLarge), [`Cycled::TooLarge`](super::Cycled::TooLarge)) if it is over. The cap is checked where concurrent change sets
/// meet, so no interleaving of requests can grow a stored session past it. A change set that
/// only removes keys or moves the deadline is never refused (it cannot grow the session).
///
/// **Preconditions** (compare-and-set). Each entry of `expect` names a key and what it must
/// hold when the change set is applied ([`Precondition`]: a value, compared as JSON values, or
/// absence). If any does not hold, the store changes nothing and answers `Conflict`
/// ([`Applied::Conflict`](super::Applied::Conflict), [`Cycled::Conflict`](super::Cycled::Conflict)),
/// in the same atomic step as the write: this is what
/// [`Session::update`](crate::Session::update) builds on to lose no update of one key.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use sessionware::store::{now, Applied, ChangeSet, Created, Precondition, Record, SessionStore};
/// use sessionware::{MemoryStore, SessionId};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::default();
/// let key = SessionId::generate().store_key();
/// let minute = Duration::from_secs(60);
/// let record = Record::new([("n".to_owned(), json!(1))].into(), now() + minute);
/// assert_eq!(store.create(&key, &record).await.unwrap(), Created::Done);
///
/// // "Set n to 2 if it is still 1": done; the same again conflicts, n is 2 now.
/// let incr = ChangeSet::new(now() + minute)
///     .with_expected("n", Precondition::Equals(json!(1)))
///     .with_set("n", json!(2));
/// assert_eq!(store.apply(&key, &incr).await.unwrap(), Applied::Done);
/// assert_eq!(store.apply(&key, &incr).await.unwrap(), Applied::Conflict);
/// assert_eq!(store.load(&key).await.unwrap().unwrap().data["n"], json!(2));
/// # });
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Drop every key before applying `updates`.
    pub clear: bool,
    /// Per-key changes.
    pub updates: BTreeMap<String, KeyChange>,
    /// The session's new deadline.
    pub expires_at: SystemTime,
    /// Whether the session's own expiry settings change, and to what.
    pub expiry: ExpiryChange,
    /// The largest the session's values may be after the change, in bytes; `None` for no cap.
    pub max_size: Option<usize>,
    /// Preconditions: what each key must hold for the change set to apply.
    pub expect: BTreeMap<String, Precondition>,
}

impl ChangeSet {
    /// A change set that only moves the deadline (a "touch").
    pub fn new(expires_at: SystemTime) -> Self {
        Self {
            clear: false,
            updates: BTreeMap::new(),
            expires_at,
            expiry: ExpiryChange::Keep,
            max_size: None,
            expect: BTreeMap::new(),
        }
    }

    /// Sets `key` to `value` (replacing an earlier change of the same key).
    #[must_use]
    pub fn with_set(mut self, key: impl Into<String>, value: Value) -> Self {
        self.updates.insert(key.into(), KeyChange::Set(value));
        self
    }

    /// Removes `key` (replacing an earlier change of the same key).
    #[must_use]
    pub fn with_remove(mut self, key: impl Into<String>) -> Self {
        self.updates.insert(key.into(), KeyChange::Remove);
        self
    }

    /// Drops every key before the updates.
    #[must_use]
    pub fn with_clear(mut self) -> Self {
        self.clear = true;
        self
    }

    /// Replaces the session's own expiry settings: an [`ExpirySettings`], or an
    /// `Option<Expiry>` (with the layer's absolute timeout; `None`: back to the layer's
    /// settings).
    #[must_use]
    pub fn with_expiry(mut self, expiry: impl Into<ExpirySettings>) -> Self {
        self.expiry = ExpiryChange::Set(expiry.into());
        self
    }

    /// Adds a precondition on `key` (see the type docs); replaces an earlier precondition on
    /// the same key.
    #[must_use]
    pub fn with_expected(mut self, key: impl Into<String>, expected: Precondition) -> Self {
        self.expect.insert(key.into(), expected);
        self
    }

    /// Whether `data` meets every precondition: the reference check for stores that keep parsed
    /// values.
    pub fn preconditions_hold(&self, data: &Data) -> bool {
        self.expect
            .iter()
            .all(|(key, expected)| expected.holds(data.get(key)))
    }

    /// Caps the session's size after the change (see the type docs).
    #[must_use]
    pub fn with_max_size(mut self, bytes: usize) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The cap a store must check for this change set: `Some` only when a cap is set and at
    /// least one key is set (removals and deadline moves cannot grow a session).
    pub fn size_cap(&self) -> Option<usize> {
        self.max_size
            .filter(|_| self.updates.values().any(|change| change.value().is_some()))
    }

    /// Whether the change set fits the cap when applied to `data`: `Err(size)` with the size
    /// the values would have, if it does not. The reference check for stores that keep parsed
    /// values.
    ///
    /// ```
    /// use serde_json::json;
    /// use sessionware::store::{now, ChangeSet, Data};
    ///
    /// let data: Data = [("a".to_owned(), json!("x".repeat(90)))].into();
    /// let grow = ChangeSet::new(now()).with_set("b", json!("y".repeat(90))).with_max_size(150);
    /// assert_eq!(grow.check_size(&data), Err(196)); // 2 + 2 × (3 + 92 + 2)
    /// let replace = ChangeSet::new(now()).with_set("a", json!("y".repeat(90))).with_max_size(150);
    /// assert_eq!(replace.check_size(&data), Ok(()));
    /// ```
    pub fn check_size(&self, data: &Data) -> Result<(), usize> {
        check_after(self, data.iter().map(|(key, value)| (key.as_str(), value)))
    }

    /// Whether the data is untouched (only the deadline or expiry moves).
    pub fn is_data_unchanged(&self) -> bool {
        !self.clear && self.updates.is_empty()
    }

    /// Applies the change set to a record in memory: the reference semantics every store
    /// reproduces in its own backend.
    pub fn apply_to(&self, record: &mut Record) {
        if self.clear {
            record.data.clear();
        }
        for (key, change) in &self.updates {
            match change {
                KeyChange::Set(value) => record.data.insert(key.clone(), value.clone()),
                KeyChange::Remove => record.data.remove(key),
            };
        }
        record.expires_at = self.expires_at;
        if let ExpiryChange::Set(expiry) = self.expiry {
            record.expiry = expiry;
        }
    }
}

/// What a [`ChangeSet`] does to one key.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyChange {
    /// Set the key to this value.
    Set(Value),
    /// Remove the key (nothing if it is absent).
    Remove,
}

impl KeyChange {
    /// The key's value after the change: `None` for a removal.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Self::Set(value) => Some(value),
            Self::Remove => None,
        }
    }
}

/// What a key must hold for a [`ChangeSet`] to apply (compare-and-set).
///
/// ```
/// use serde_json::json;
/// use sessionware::store::Precondition;
///
/// assert!(Precondition::Equals(json!(1)).holds(Some(&json!(1))));
/// assert!(!Precondition::Equals(json!(1)).holds(None));
/// assert!(Precondition::Absent.holds(None));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Precondition {
    /// The key holds this value, compared as JSON values.
    Equals(Value),
    /// The key is absent.
    Absent,
}

impl Precondition {
    /// Whether a key whose current value is `current` (`None`: absent) meets it.
    pub fn holds(&self, current: Option<&Value>) -> bool {
        current == self.expected()
    }

    /// The value the key must hold; `None` when it must be absent.
    pub fn expected(&self) -> Option<&Value> {
        match self {
            Self::Equals(value) => Some(value),
            Self::Absent => None,
        }
    }

    /// The precondition that the key still holds `current` (`None`: is still absent).
    pub(crate) fn still(current: Option<Value>) -> Self {
        current.map_or(Self::Absent, Self::Equals)
    }
}

/// What a [`ChangeSet`] does to a session's own [`ExpirySettings`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpiryChange {
    /// Leave them as stored.
    #[default]
    Keep,
    /// Replace them (with [`ExpirySettings::default`]: back to the layer's settings).
    Set(ExpirySettings),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A key named twice in a hand-built change set is one change, the last: the size check
    /// counts it once, and every store ends with the last value (set, or removed).
    #[test]
    fn a_key_set_twice_is_one_change() {
        let big = || json!("y".repeat(90));
        let twice = ChangeSet::new(SystemTime::UNIX_EPOCH)
            .with_set("a", big())
            .with_set("a", big())
            .with_max_size(150);
        assert_eq!(twice.updates.len(), 1);
        assert_eq!(twice.check_size(&Data::new()), Ok(()));

        let removed = ChangeSet::new(SystemTime::UNIX_EPOCH)
            .with_set("a", big())
            .with_remove("a");
        assert_eq!(removed.updates.get("a"), Some(&KeyChange::Remove));
        assert_eq!(removed.size_cap(), None);
    }
}
