//! After a save: what it stored ([`Saved`]), and bringing the request's state up to date with
//! it ([`settle`]).

use std::collections::BTreeMap;

use super::commit::CookieAction;
use super::state::{Origin, State, Stored};
use crate::clock::now_ms;
use crate::id::SessionId;
use crate::store::{ChangeSet, KeyChange, Owner};

/// What a carried-out plan changed, for bringing the state up to date.
pub(super) enum Saved {
    /// Nothing in the store changed.
    Unchanged,
    /// The session is stored under `id` now, with these times.
    Stored {
        id: SessionId,
        created_at: Option<i64>,
        expires_at: i64,
        /// The owner the save tied the session to (a log-in), if it did.
        tied: Option<Owner>,
        values: SavedValues,
    },
    /// This request destroyed the session: what it saves next goes into a new one.
    Forgotten,
    /// Someone else ended or moved the session with this id meanwhile: nothing more is saved
    /// (see [`Origin::Ended`]).
    Ended(SessionId),
    /// Nothing was written: another request replaced the session's expiry policy since this
    /// one read it (see [`EXPIRY_TAG`](super::state::EXPIRY_TAG)). The pending changes are back in the state.
    PolicyChanged,
}

/// Which of the session's values a save wrote.
pub(super) enum SavedValues {
    /// None (a touch).
    None,
    /// All of them: the session was created.
    All,
    /// These changes: a `clear` (if `clear`) and these keys.
    Changes {
        clear: bool,
        updates: BTreeMap<String, KeyChange>,
    },
}

/// What settling needs of a saved change set.
pub(super) fn saved_values(changes: ChangeSet) -> SavedValues {
    SavedValues::Changes {
        clear: changes.clear,
        updates: changes.updates,
    }
}

/// The outcome of a save that kept the session under its id, now ending at `expires_at`: the
/// cookie is sent again only if `resend`.
pub(super) fn still_stored(
    id: &SessionId,
    expires_at: i64,
    values: SavedValues,
    resend: bool,
    max_age: Option<i64>,
) -> (CookieAction, Saved) {
    let action = if resend {
        CookieAction::Set {
            id: id.clone(),
            max_age,
        }
    } else {
        CookieAction::Keep
    };
    let saved = Saved::Stored {
        id: id.clone(),
        created_at: None,
        expires_at,
        tied: None,
        values,
    };
    (action, saved)
}

/// Brings `state` up to date after a save: it now works on the stored session (under its new
/// id after a create or cycle), and the changes that were saved are no longer pending. Changes
/// made while the save ran (from another task holding the session) stay pending.
pub(super) fn settle(state: &mut State, saved: Saved) {
    let (id, created_at, expires_at, tied, values) = match saved {
        Saved::Unchanged => {
            if let Origin::Stored(stored) = &mut state.origin {
                stored.reissue = false;
            }
            return;
        }
        Saved::Forgotten => {
            *state = State::default();
            return;
        }
        Saved::Ended(id) => {
            state.end(&id);
            return;
        }
        // Handled by `carry_out`, which plans again instead.
        Saved::PolicyChanged => return,
        Saved::Stored {
            id,
            created_at,
            expires_at,
            tied,
            values,
        } => (id, created_at, expires_at, tied, values),
    };
    let created_at = match (&state.origin, created_at) {
        (_, Some(created_at)) => created_at,
        (Origin::Stored(stored), None) => stored.created_at,
        (_, None) => now_ms(),
    };
    // The session's owner now: the log-in just saved (unless another task asked for a
    // different one meanwhile, which stays pending), else the one it had.
    let owner = match tied {
        Some(tied) if state.log_in.as_deref() == Some(&tied) => state.log_in.take(),
        Some(tied) => Some(Box::new(tied)),
        None => match &mut state.origin {
            Origin::Stored(stored) => stored.owner.take(),
            Origin::New | Origin::Destroyed(_) | Origin::Ended => None,
        },
    };
    state.origin = Origin::Stored(Stored {
        id,
        created_at,
        expires_at,
        reissue: false,
        cycle: false,
        owner,
    });
    match values {
        // A new session holds all the data the handler had.
        SavedValues::All => {
            state.updates.clear();
            state.clear = false;
            state.baseline = Default::default();
        }
        SavedValues::Changes { clear, updates } => {
            if !state.updates.is_empty() {
                let saved = |key: &String, change: &KeyChange| updates.get(key) == Some(change);
                state.updates.retain(|key, value| !saved(key, value));
            }
            if clear {
                state.clear = false;
            }
            state.saved(clear, &updates);
        }
        SavedValues::None => {}
    }
    state.expiry_set = false;
    state.absolute_set = false;
}
