//! [`State`]: what one request knows about its session and what its handler changed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::expiry::ExpirySettings;
use crate::id::SessionId;
use crate::store::{Data, Owner};

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
    /// Per-key changes since load: `Some` set, `None` removed. Kept for a stored session only:
    /// a new one is saved whole (see [`State::record`]). A B-tree, not a hash map: a request
    /// changes a handful of keys, and comparing a few strings costs less than hashing them
    /// with a DoS-resistant hasher (the keys may be built from request data).
    pub(super) updates: BTreeMap<String, Option<Value>>,
    /// Every key was dropped before `updates`.
    pub(super) clear: bool,
    /// Serialized size of `data`, computed on the first insert when a cap is set.
    pub(super) size: Option<usize>,
    /// What an earlier [`Session::save`](crate::Session::save) in this request owes the
    /// response (a new id's cookie, say), unless the final save supersedes it.
    pub(super) pending_cookie: Option<super::CookieAction>,
    /// The owner [`Session::log_in`](super::Session::log_in) ties the session to when it is
    /// next saved.
    /// (Boxed: rare, and the state is moved whole when a request starts.)
    pub(super) log_in: Option<Box<Owner>>,
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

impl State {
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

    /// Notes that `key` was set (`Some`) or removed (`None`), for the change set that saves a
    /// stored session. A session not stored yet is created with all its values, so nothing is
    /// noted for it: that saves a copy of every key and value a new session gets.
    pub(super) fn record(&mut self, key: &str, value: Option<Value>) {
        if matches!(self.origin, Origin::Stored(_)) {
            put(&mut self.updates, key, value);
        }
    }

    /// Sets `key` to `value` in the request's view, noting the change (see [`State::record`]).
    pub(super) fn set(&mut self, key: &str, value: Value) {
        if matches!(self.origin, Origin::Stored(_)) {
            put(&mut self.updates, key, Some(value.clone()));
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

    /// The principal the session is tied to, counting a log-in not saved yet.
    pub(super) fn principal(&self) -> Option<&str> {
        let stored = match &self.origin {
            Origin::Stored(stored) => stored.owner.as_ref(),
            Origin::New | Origin::Destroyed(_) | Origin::Ended => None,
        };
        self.log_in
            .as_deref()
            .or(stored.map(|owner| &**owner))
            .map(|owner| owner.principal.as_str())
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
        let origin = match std::mem::take(&mut self.origin) {
            Origin::Stored(stored) => Origin::Destroyed(stored.id),
            other => other,
        };
        *self = State {
            origin,
            ..State::default()
        };
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
