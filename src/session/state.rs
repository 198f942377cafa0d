//! [`State`]: what one request knows about its session and what its handler changed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::expiry::ExpirySettings;
use crate::id::SessionId;
use crate::store::{Data, KeyChange, Owner};

/// The session key of the session's expiry-policy tag: a fresh random value written with every
/// change of the session's own expiry settings, and expected (as read) by every write that
/// moves the deadline. A write whose deadline was computed under a policy another request
/// has replaced meanwhile (a "keep me signed in" saved in another tab) conflicts, and is
/// planned again on the stored policy: it never shortens a remember-me or overruns the
/// session's own end with the layer's idle time.
pub(crate) const EXPIRY_TAG: &str = "__expiry";

/// Everything known about the session after it was loaded, and what the handler changed.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Which stored session, if any, this request works on.
    pub(super) origin: Origin,
    /// The session's own expiry settings, as stored or as set by the handler.
    pub(super) settings: ExpirySettings,
    /// The handler set the session's own expiry policy.
    pub(super) expiry_set: bool,
    /// The handler set the session's own absolute timeout.
    pub(super) absolute_set: bool,
    /// The values as the handler sees them.
    pub(super) data: Data,
    /// Per-key changes since load. Kept for a stored session only:
    /// a new one is saved whole (see [`State::record`]). A B-tree, not a hash map: a request
    /// changes a handful of keys, and comparing a few strings costs less than hashing them
    /// with a DoS-resistant hasher (the keys may be built from request data).
    pub(super) updates: BTreeMap<String, KeyChange>,
    /// Every key was dropped before `updates`.
    pub(super) clear: bool,
    /// What the store holds under the keys this request changed: the side every
    /// compare-and-set precondition is built from (see [`State::stored`]).
    pub(super) baseline: Baseline,
    /// Serialized size of `data`, computed on the first insert when a cap is set.
    pub(super) size: Option<usize>,
    /// What an earlier [`Session::save`](crate::Session::save) in this request owes the
    /// response (a new id's cookie, say), unless the final save supersedes it.
    pub(super) pending_cookie: Option<super::CookieAction>,
    /// The owner [`Session::log_in`](super::Session::log_in) ties the session to when it is
    /// next saved.
    /// (Boxed: rare, and the state is moved whole when a request starts.)
    pub(super) log_in: Option<Box<Owner>>,
    /// The principal of the session this request destroyed, for the event reporting it.
    pub(super) destroyed_principal: Option<String>,
}

/// The stored session behind a request: none, the one it loaded, or the one it destroyed.
#[derive(Debug, Default)]
pub(super) enum Origin {
    /// None: no id was sent, it was unknown, or the session was not loaded. What the handler
    /// inserts goes into a new session.
    #[default]
    New,
    /// The stored session this request loaded.
    Stored(Stored),
    /// The handler destroyed this stored session; what it inserts afterwards goes into a new
    /// one.
    Destroyed(SessionId),
    /// The stored session this request loaded ended or moved while the request used it: a
    /// write found it gone (a logout, a login or an expiry elsewhere). Nothing the request does
    /// to the session from then on is saved and the cookie is left alone: the browser may hold
    /// the id a racing login has just set, which a new session's cookie would replace. This is
    /// what the end of the request does when its own save finds the session gone. Only a
    /// log-in, a deliberate new start, turns it back into [`Origin::New`].
    Ended,
}

/// A loaded session, and what only a loaded session can have.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) id: SessionId,
    pub(super) created_at: i64,
    pub(super) expires_at: i64,
    /// The client's id verified with a previous key: re-send it under the current one.
    pub(super) reissue: bool,
    /// The handler asked for a new id.
    pub(super) cycle: bool,
    /// Whom the stored session is tied to, as loaded (or as saved since).
    pub(super) owner: Option<Box<Owner>>,
}

/// What the store held, as last read or written by this request, under the keys whose value
/// in the request's view differs from it. A key found in neither map holds in the store what
/// the view shows. Kept so that a compare-and-set expects what the store holds, not the
/// request's own pending change (which would never match, and conflict on every attempt).
#[derive(Debug, Default)]
pub(super) struct Baseline {
    /// The stored value of each key changed since the store was last read (`None`: absent).
    before: BTreeMap<String, Option<Value>>,
    /// The stored values when a pending `clear` dropped them from the view.
    cleared: Option<Data>,
}

/// What a [`Baseline`] knows of the value stored under a key.
enum Lookup<'a> {
    /// Nothing: the key is unchanged, the view shows what the store holds.
    Unchanged,
    /// The store holds this (`None`: the key is absent).
    Held(Option<&'a Value>),
}

impl Baseline {
    /// What the store holds under `key`, if the baseline knows.
    fn lookup(&self, key: &str) -> Lookup<'_> {
        match (self.before.get(key), &self.cleared) {
            (Some(before), _) => Lookup::Held(before.as_ref()),
            (None, Some(cleared)) => Lookup::Held(cleared.get(key)),
            (None, None) => Lookup::Unchanged,
        }
    }
}

impl State {
    /// The value the store holds under `key` as this request last read or wrote it, apart from
    /// the request's pending changes: what a precondition on `key` must expect. `None` for a
    /// session that is not stored.
    pub(super) fn stored(&self, key: &str) -> Option<&Value> {
        if !matches!(self.origin, Origin::Stored(_)) {
            return None;
        }
        match self.baseline.lookup(key) {
            Lookup::Held(stored) => stored,
            Lookup::Unchanged => self.data.get(key),
        }
    }

    /// Notes what the store holds under `key` before the view changes it (first change only).
    fn remember_stored(&mut self, key: &str) {
        if matches!(self.origin, Origin::Stored(_))
            && self.baseline.cleared.is_none()
            && !self.baseline.before.contains_key(key)
        {
            let stored = self.data.get(key).cloned();
            self.baseline.before.insert(key.to_owned(), stored);
        }
    }

    /// Removes `key` from the request's view, noting the change; returns the value it held.
    pub(super) fn remove(&mut self, key: &str) -> Option<Value> {
        if !self.data.contains_key(key) {
            return None;
        }
        self.remember_stored(key);
        let old = self.data.remove(key)?;
        self.size = super::size::after_remove(self.size, key, &old);
        self.record(key, KeyChange::Remove);
        Some(old)
    }

    /// Drops every value from the request's view (saved as a `clear`).
    pub(super) fn clear_all(&mut self) {
        if self.data.is_empty() && self.updates.is_empty() {
            return;
        }
        let view = std::mem::take(&mut self.data);
        // The crate's own keys (the CSRF secret, unread flash messages) are not the app's
        // values: they survive, written again after the clear, so the forms of the user's
        // other tabs keep working.
        let own: Vec<(String, Value)> = view
            .iter()
            .filter(|(key, _)| key.starts_with(super::key::RESERVED_PREFIX))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if matches!(self.origin, Origin::Stored(_)) && self.baseline.cleared.is_none() {
            // Keys changed before hold their stored value in `before`; the rest, in the view.
            self.baseline.cleared = Some(view);
        }
        self.updates.clear();
        self.clear = true;
        self.size = None;
        for (key, value) in own {
            self.set(&key, value);
        }
        if self.data.is_empty() {
            self.size = Some(super::size::EMPTY);
        }
    }

    /// A compare-and-set wrote `updates` to the store: the view and the baseline take them,
    /// and they are no longer pending (unless a pending `clear` would drop them at the end of
    /// the request, which must then write them again).
    pub(super) fn written(&mut self, updates: BTreeMap<String, KeyChange>) {
        self.size = None;
        for (key, change) in updates {
            match &change {
                KeyChange::Set(value) => put(&mut self.data, &key, value.clone()),
                KeyChange::Remove => {
                    self.data.remove(&key);
                }
            }
            if self.clear {
                self.baseline
                    .before
                    .insert(key.clone(), change.value().cloned());
                self.updates.insert(key, change);
            } else {
                self.baseline.before.remove(&key);
                self.updates.remove(&key);
            }
        }
    }

    /// The store was read again and holds `record`: the view becomes its values with the
    /// pending changes on top, the baseline what it holds under the changed keys, and the
    /// session's own expiry settings and deadline the stored ones (unless this request set
    /// them).
    pub(super) fn reread(&mut self, record: crate::store::Record) {
        if !self.expiry_set {
            self.settings.expiry = record.expiry.expiry;
        }
        if !self.absolute_set {
            self.settings.absolute_timeout = record.expiry.absolute_timeout;
        }
        if let Origin::Stored(stored) = &mut self.origin {
            stored.expires_at = crate::clock::to_ms(record.expires_at);
        }
        let mut data = record.data;
        self.size = None;
        if self.clear {
            let mut view = Data::new();
            apply_updates(&mut view, &self.updates);
            self.data = view;
            self.baseline = Baseline {
                before: BTreeMap::new(),
                cleared: Some(data),
            };
            return;
        }
        self.baseline.cleared = None;
        self.baseline.before = self
            .updates
            .keys()
            .map(|key| (key.clone(), data.get(key).cloned()))
            .collect();
        apply_updates(&mut data, &self.updates);
        self.data = data;
    }

    /// Drops the pending changes: the view shows what the store holds again (a failed
    /// response saves nothing).
    pub(super) fn discard_changes(&mut self) {
        let baseline = std::mem::take(&mut self.baseline);
        if let Some(cleared) = baseline.cleared {
            self.data = cleared;
        }
        for (key, before) in baseline.before {
            match before {
                Some(value) => self.data.insert(key, value),
                None => self.data.remove(&key),
            };
        }
        self.updates.clear();
        self.clear = false;
        self.size = None;
    }

    /// A save wrote `clear` and `saved` (and the changes still pending were made while it
    /// ran): the baseline keeps what the store now holds under the keys still pending.
    pub(super) fn saved(&mut self, clear: bool, saved: &BTreeMap<String, KeyChange>) {
        let old = std::mem::take(&mut self.baseline);
        let before = self
            .updates
            .keys()
            .map(|key| {
                let stored = match saved.get(key) {
                    Some(change) => change.value().cloned(),
                    None if clear => None,
                    None => match old.lookup(key) {
                        Lookup::Held(stored) => stored.cloned(),
                        Lookup::Unchanged => None,
                    },
                };
                (key.clone(), stored)
            })
            .collect();
        self.baseline = Baseline {
            before,
            cleared: if clear { None } else { old.cleared },
        };
    }

    /// A write that moves the deadline expects the policy tag it read; one that changes the
    /// policy also writes a fresh tag (see [`EXPIRY_TAG`]). Returns the expected value.
    pub(super) fn tag_policy(&mut self) -> Option<Value> {
        let read = self.stored(EXPIRY_TAG).cloned();
        if self.expiry_changed() {
            let tag = uuid::Uuid::new_v4().simple().to_string();
            self.set(EXPIRY_TAG, Value::String(tag));
            self.size = None;
        }
        read
    }

    /// Whether the handler changed the session's own expiry settings.
    pub(super) fn expiry_changed(&self) -> bool {
        self.expiry_set || self.absolute_set
    }

    /// Whether anything is waiting to be saved.
    pub(super) fn has_unsaved_changes(&self) -> bool {
        if matches!(self.origin, Origin::Ended) {
            // Never saved, by design (and logged when the end was found).
            return false;
        }
        let cycle = matches!(&self.origin, Origin::Stored(stored) if stored.cycle);
        let fresh_data =
            matches!(self.origin, Origin::New | Origin::Destroyed(_)) && !self.data.is_empty();
        self.data_changed()
            || self.log_in.is_some()
            || self.expiry_changed()
            || cycle
            || fresh_data
            || matches!(self.origin, Origin::Destroyed(_))
    }

    /// Notes a change of `key`, for the change set that saves a
    /// stored session. A session not stored yet is created with all its values, so nothing is
    /// noted for it: that saves a copy of every key and value a new session gets.
    fn record(&mut self, key: &str, change: KeyChange) {
        if matches!(self.origin, Origin::Stored(_)) {
            put(&mut self.updates, key, change);
        }
    }

    /// Sets `key` to `value` in the request's view, noting the change (see [`State::record`]).
    pub(super) fn set(&mut self, key: &str, value: Value) {
        self.remember_stored(key);
        if matches!(self.origin, Origin::Stored(_)) {
            put(&mut self.updates, key, KeyChange::Set(value.clone()));
        }
        put(&mut self.data, key, value);
    }

    /// Whether the handler changed the values.
    pub(super) fn data_changed(&self) -> bool {
        self.clear || !self.updates.is_empty()
    }

    /// The stored session's id, if this request works on one.
    pub(super) fn id(&self) -> Option<&SessionId> {
        match &self.origin {
            Origin::Stored(stored) => Some(&stored.id),
            Origin::New | Origin::Destroyed(_) | Origin::Ended => None,
        }
    }

    /// The owner the session is tied to, counting a log-in not saved yet.
    pub(super) fn owner(&self) -> Option<&Owner> {
        let stored = match &self.origin {
            Origin::Stored(stored) => stored.owner.as_deref(),
            Origin::New | Origin::Destroyed(_) | Origin::Ended => None,
        };
        self.log_in.as_deref().or(stored)
    }

    /// The principal the session is tied to, counting a log-in not saved yet.
    pub(super) fn principal(&self) -> Option<&str> {
        self.owner().map(|owner| owner.principal.as_str())
    }

    /// Notes that a write found the stored session `id` gone (see [`Origin::Ended`]): the
    /// values and pending changes are dropped, and nothing is saved from here on. Returns
    /// `false`, changing nothing, if the state no longer works on `id`: another handle of the
    /// request moved it on meanwhile (to a session it created or cycled).
    pub(super) fn end(&mut self, id: &SessionId) -> bool {
        if self.id() != Some(id) {
            return false;
        }
        *self = State {
            origin: Origin::Ended,
            ..State::default()
        };
        true
    }

    /// Ends the stored session: the state starts over as a new, empty session that will
    /// replace it.
    pub(super) fn destroy(&mut self) {
        let destroyed_principal = match &self.origin {
            Origin::Stored(stored) => stored.owner.as_ref().map(|o| o.principal.clone()),
            _ => self.destroyed_principal.take(),
        };
        let origin = match std::mem::take(&mut self.origin) {
            Origin::Stored(stored) => Origin::Destroyed(stored.id),
            other => other,
        };
        *self = State {
            origin,
            destroyed_principal,
            ..State::default()
        };
    }
}

/// Applies per-key changes to `data`.
fn apply_updates(data: &mut Data, updates: &BTreeMap<String, KeyChange>) {
    for (key, change) in updates {
        match change {
            KeyChange::Set(value) => put(data, key, value.clone()),
            KeyChange::Remove => {
                data.remove(key);
            }
        }
    }
}

/// Sets `key` in `map`, copying the key only when it is new: a handler that rewrites a key
/// (a counter, a timestamp) does not pay for a fresh `String` each time.
fn put<V>(map: &mut BTreeMap<String, V>, key: &str, value: V) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}
