//! The write-back decision: one pure function from what a request did to its session to the
//! [`Plan`] the layer carries out.

use super::state::{Origin, State};
use crate::expiry::{Deadlines, Expiry};
use crate::id::SessionId;
use crate::store::ExpiryChange;

/// What saving a session takes: at most one store write, and what the response tells the
/// client. A plan names what to write; the values themselves are taken from the session's state
/// when the plan is carried out (moved, when nothing else can look at the state any more).
#[derive(Debug, PartialEq)]
pub(crate) enum Plan {
    /// Nothing to write and no cookie: the handler left the session alone, or only read it
    /// inside the touch window.
    Nothing,
    /// Delete the destroyed session and tell the client to forget its id.
    Forget { old: SessionId },
    /// Save the session's values (and its pending log-in) as a new session under a fresh id,
    /// after deleting the one it replaces.
    Create {
        replacing: Option<SessionId>,
        created_at: i64,
        expires_at: i64,
        max_age: Option<i64>,
    },
    /// Apply the pending changes to the stored session; send the cookie after if `resend`.
    Apply {
        id: SessionId,
        write: Write,
        resend: bool,
        max_age: Option<i64>,
    },
    /// Move the stored session to a fresh id with the pending changes, tied to the pending
    /// log-in if there is one.
    Cycle {
        id: SessionId,
        write: Write,
        max_age: Option<i64>,
        /// The principal the session had when it was loaded.
        was: Option<String>,
    },
    /// Extend the stored session's deadline; send the cookie after if `resend`.
    Touch {
        id: SessionId,
        expires_at: i64,
        resend: bool,
        max_age: Option<i64>,
    },
}

/// What a plan's change set carries besides the pending values: the new deadline, the change of
/// the session's own expiry settings, and the size cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Write {
    pub(crate) expires_at: i64,
    pub(crate) expiry: ExpiryChange,
    pub(crate) max_size: Option<usize>,
}

/// The layer's rules a plan follows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The layer's default expiry.
    pub(crate) expiry: Expiry,
    pub(crate) deadlines: Deadlines,
    pub(crate) max_size: Option<usize>,
}

/// Whether the handler loaded its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// It did: the plan may touch, save or create.
    Loaded,
    /// It did not (only `set_expiry` can have been called).
    Untouched,
}

/// How the handler's response went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Anything but a `5xx`: the changes are saved.
    Ok,
    /// A `5xx`: only a `destroy` is carried out (a logout never fails open), no data is saved.
    ServerError,
}

impl Outcome {
    /// The outcome of a response with `status`.
    pub(crate) fn of(status: http::StatusCode) -> Self {
        if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Ok
        }
    }
}

/// Decides how to save `state` at `now`, given whether the handler used the session and how
/// its response went.
pub(crate) fn plan(state: &State, used: Use, outcome: Outcome, rules: &Rules, now: i64) -> Plan {
    if matches!(state.origin, Origin::Ended) {
        // Ended or moved by someone else meanwhile: that request wins (see `Origin::Ended`).
        return Plan::Nothing;
    }
    if outcome == Outcome::ServerError || used == Use::Untouched {
        // Unloaded, only `set_expiry` can have been called: there is nothing to apply it to
        // without a load, and the layer loads before saving (see `Session::commit`).
        return match &state.origin {
            Origin::Destroyed(old) => Plan::Forget { old: old.clone() },
            Origin::New | Origin::Stored(_) | Origin::Ended => Plan::Nothing,
        };
    }
    let expiry = state.settings.expiry.unwrap_or(rules.expiry);
    let absolute = rules.deadlines.absolute(&state.settings);
    let expiry_changed = state.expiry_changed();
    let data_changed = state.data_changed();
    let stored = match &state.origin {
        Origin::Stored(stored) => stored,
        origin @ (Origin::New | Origin::Destroyed(_) | Origin::Ended) => {
            let replacing = match origin {
                Origin::Destroyed(old) => Some(old.clone()),
                _ => None,
            };
            if state.data.is_empty() && state.log_in.is_none() {
                return match replacing {
                    Some(old) => Plan::Forget { old },
                    None => Plan::Nothing,
                };
            }
            let expires_at = rules.deadlines.expires_at(expiry, absolute, now, now);
            return Plan::Create {
                replacing,
                created_at: now,
                expires_at,
                max_age: max_age(expiry, expires_at, now),
            };
        }
    };

    let next = rules
        .deadlines
        .expires_at(expiry, absolute, stored.created_at, now);
    let max_age_next = max_age(expiry, next, now);
    if stored.cycle || data_changed || expiry_changed {
        let write = Write {
            expires_at: next,
            expiry: if expiry_changed {
                ExpiryChange::Set(state.settings)
            } else {
                ExpiryChange::Keep
            },
            max_size: rules.max_size,
        };
        if stored.cycle {
            return Plan::Cycle {
                id: stored.id.clone(),
                write,
                max_age: max_age_next,
                was: stored.owner.as_ref().map(|owner| owner.principal.clone()),
            };
        }
        return Plan::Apply {
            id: stored.id.clone(),
            write,
            resend: expiry_changed || stored.reissue || max_age_next.is_some(),
            max_age: max_age_next,
        };
    }
    if rules.deadlines.touch_due(expiry, stored.expires_at, next) {
        return Plan::Touch {
            id: stored.id.clone(),
            expires_at: next,
            resend: stored.reissue || max_age_next.is_some(),
            max_age: max_age_next,
        };
    }
    if stored.reissue {
        // The id goes out again under the current key, but only once the store has confirmed
        // it is still live (a touch that keeps the deadline): a session cycled meanwhile by a
        // login in another tab must not have its old id sent over the login's new one.
        return Plan::Touch {
            id: stored.id.clone(),
            expires_at: stored.expires_at,
            resend: true,
            max_age: max_age(expiry, stored.expires_at, now),
        };
    }
    Plan::Nothing
}

/// The cookie's `Max-Age` in seconds for a session ending at `expires_at`; `None` for a
/// browser-session cookie.
pub(super) fn max_age(expiry: Expiry, expires_at: i64, now: i64) -> Option<i64> {
    (!matches!(expiry, Expiry::OnSessionEnd)).then(|| expires_at.saturating_sub(now) / 1000)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::expiry::ExpirySettings;
    use crate::session::state::Stored;
    use crate::store::KeyChange;

    const NOW: i64 = 1_000_000;
    const IDLE: Duration = Duration::from_secs(100);

    fn rules(expiry: Expiry) -> Rules {
        Rules {
            expiry,
            deadlines: Deadlines {
                session_end_idle: IDLE,
                absolute: Duration::from_secs(3600),
                max_absolute: Duration::from_secs(7200),
            },
            max_size: Some(1000),
        }
    }

    fn stored(id: &SessionId, expires_at: i64) -> Origin {
        Origin::Stored(Stored {
            id: id.clone(),
            created_at: NOW - 10_000,
            expires_at,
            reissue: false,
            cycle: false,
            owner: None,
        })
    }

    /// A state on `origin`, changed by `edit`.
    fn state(origin: Origin, edit: impl FnOnce(&mut State)) -> State {
        let mut state = State {
            origin,
            ..State::default()
        };
        edit(&mut state);
        state
    }

    fn set(state: &mut State, key: &str, value: serde_json::Value) {
        state.data.insert(key.to_owned(), value.clone());
        state.updates.insert(key.to_owned(), KeyChange::Set(value));
    }

    /// The decision table: each row is a situation a request can leave its session in, and
    /// the plan it must lead to.
    #[test]
    fn every_situation_has_its_plan() {
        let id = SessionId::generate();
        let end = rules(Expiry::OnSessionEnd);
        let idle = rules(Expiry::OnInactivity(IDLE));
        // A deadline set just now: no touch due. One set long ago: a touch is due.
        let fresh_deadline = NOW + 100_000;
        let old_deadline = NOW + 10_000;
        type Check = fn(&Plan, &SessionId) -> bool;
        let rows: Vec<(&str, State, Use, Outcome, &Rules, Check)> = vec![
            (
                "untouched, not loaded",
                State::default(),
                Use::Untouched,
                Outcome::Ok,
                &end,
                |p, _| *p == Plan::Nothing,
            ),
            (
                "new session, only read",
                state(Origin::New, |_| {}),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, _| *p == Plan::Nothing,
            ),
            (
                "ended by another request meanwhile, then changed",
                state(Origin::Ended, |s| {
                    set(s, "a", json!(1));
                    s.expiry_set = true;
                }),
                Use::Loaded,
                Outcome::Ok,
                &idle,
                |p, _| *p == Plan::Nothing,
            ),
            (
                "new session with data",
                state(Origin::New, |s| set(s, "a", json!(1))),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, _| matches!(p, Plan::Create { replacing: None, max_age: None, created_at: NOW, expires_at } if *expires_at == NOW + IDLE.as_millis() as i64),
            ),
            (
                "new session with data, idle expiry: Max-Age",
                state(Origin::New, |s| set(s, "a", json!(1))),
                Use::Loaded,
                Outcome::Ok,
                &idle,
                |p, _| {
                    matches!(
                        p,
                        Plan::Create {
                            max_age: Some(100),
                            ..
                        }
                    )
                },
            ),
            (
                "stored, read inside the touch window",
                state(stored(&id, fresh_deadline), |_| {}),
                Use::Loaded,
                Outcome::Ok,
                &idle,
                |p, _| *p == Plan::Nothing,
            ),
            (
                "stored, read after a quarter of the idle period",
                state(stored(&id, old_deadline), |_| {}),
                Use::Loaded,
                Outcome::Ok,
                &idle,
                |p, id| matches!(p, Plan::Touch { id: got, expires_at, resend: true, max_age: Some(100) } if got == id && *expires_at == NOW + 100_000),
            ),
            (
                "stored, changed",
                state(stored(&id, fresh_deadline), |s| set(s, "a", json!(2))),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, id| matches!(p, Plan::Apply { id: got, write, resend: false, .. } if got == id && write.max_size == Some(1000) && write.expiry == ExpiryChange::Keep),
            ),
            (
                "stored, cleared",
                state(stored(&id, fresh_deadline), |s| s.clear = true),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, _| matches!(p, Plan::Apply { .. }),
            ),
            (
                "stored, own expiry set",
                state(stored(&id, fresh_deadline), |s| {
                    s.settings = ExpirySettings::from(Some(Expiry::OnInactivity(IDLE)));
                    s.expiry_set = true;
                }),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, _| matches!(p, Plan::Apply { resend: true, max_age: Some(100), write, .. } if matches!(write.expiry, ExpiryChange::Set(_))),
            ),
            (
                "stored, cycled",
                state(stored(&id, fresh_deadline), |s| {
                    if let Origin::Stored(st) = &mut s.origin {
                        st.cycle = true
                    }
                }),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, id| matches!(p, Plan::Cycle { id: got, .. } if got == id),
            ),
            (
                "stored, verified with a previous key",
                state(stored(&id, fresh_deadline), |s| {
                    if let Origin::Stored(st) = &mut s.origin {
                        st.reissue = true
                    }
                }),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, id| matches!(p, Plan::Touch { id: got, expires_at, resend: true, max_age: None } if got == id && *expires_at == NOW + 100_000),
            ),
            (
                "destroyed",
                state(stored(&id, fresh_deadline), State::destroy),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, id| matches!(p, Plan::Forget { old } if old == id),
            ),
            (
                "destroyed, then data for a new session",
                state(stored(&id, fresh_deadline), |s| {
                    s.destroy();
                    set(s, "bye", json!(true));
                }),
                Use::Loaded,
                Outcome::Ok,
                &end,
                |p, id| matches!(p, Plan::Create { replacing: Some(old), .. } if old == id),
            ),
            (
                "5xx after a change: nothing saved",
                state(stored(&id, fresh_deadline), |s| set(s, "a", json!(2))),
                Use::Loaded,
                Outcome::ServerError,
                &end,
                |p, _| *p == Plan::Nothing,
            ),
            (
                "5xx after a destroy: still logged out",
                state(stored(&id, fresh_deadline), |s| {
                    s.destroy();
                    set(s, "x", json!(1));
                }),
                Use::Loaded,
                Outcome::ServerError,
                &end,
                |p, id| matches!(p, Plan::Forget { old } if old == id),
            ),
        ];
        for (what, state, used, outcome, rules, check) in rows {
            let plan = plan(&state, used, outcome, rules, NOW);
            assert!(check(&plan, &id), "{what}: {plan:?}");
        }
    }
}
