//! Compare-and-set over any keys of a session, in one store step: what [`Session::update`],
//! flash messages and CSRF secrets are built on.

use std::collections::BTreeMap;

use super::commit::{ended_elsewhere, too_large};
use super::state::Origin;
use super::state::{State, EXPIRY_TAG};
use super::Session;
use crate::clock::{from_ms, to_ms};
use crate::error::Error;
use crate::events::{EventKind, Operation};
use crate::store::{Applied, ChangeSet, KeyChange, Precondition};

/// What one step of a compare-and-set writes, and what must still hold for it to be written.
#[derive(Debug, Default)]
pub(super) struct Swap {
    /// What each key must hold.
    pub(super) expect: BTreeMap<String, Precondition>,
    /// Each key's change.
    pub(super) updates: BTreeMap<String, KeyChange>,
}

/// Where a compare-and-set on a session that is not stored yet (a new session) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnNew {
    /// Into the session's pending changes, saved with the response (and dropped with a `5xx`).
    Pending,
    /// Saved at once: the session is created now.
    SaveNow,
}

impl Session {
    /// Runs `step` on the session's current values; writes the [`Swap`] it returns in one store
    /// step if what it expects still holds, and otherwise waits a random moment, rereads the
    /// session and runs `step` again (up to [`UPDATE_ATTEMPTS`](crate::defaults::UPDATE_ATTEMPTS) times).
    /// A step that returns no swap writes nothing. Returns the result of the step that was
    /// written, or, if the stored session ended meanwhile, of a last step on no values, which
    /// is never written (see [`Origin::Ended`]). `conflict_key` names the key in
    /// [`Error::Conflict`].
    pub(super) async fn swap<R>(
        &self,
        conflict_key: &str,
        on_new: OnNew,
        mut step: impl FnMut(&State) -> Result<(Option<Swap>, R), Error>,
    ) -> Result<R, Error> {
        self.load().await?;
        self.refuse_if_ended()?;
        for attempt in 0..crate::defaults::UPDATE_ATTEMPTS {
            let (stored, outcome) = {
                let state = self.state();
                let stored = match &state.origin {
                    Origin::Stored(stored) => Some((stored.id.clone(), stored.created_at)),
                    Origin::New | Origin::Destroyed(_) | Origin::Ended => None,
                };
                (stored, step(&state)?)
            };
            let (swap, result) = match outcome {
                (None, result) => return Ok(result),
                (Some(swap), result) => (swap, result),
            };
            let Some((id, created_at)) = stored else {
                self.keep_locally(swap.updates)?;
                if on_new == OnNew::SaveNow {
                    self.save_now().await?;
                }
                return Ok(result);
            };
            let mut expect = swap.expect;
            // The deadline below is computed under the policy this request read.
            let policy = self.state().stored(EXPIRY_TAG).cloned();
            expect
                .entry(EXPIRY_TAG.to_owned())
                .or_insert(Precondition::still(policy));
            let mut changes = ChangeSet::new(from_ms(self.next_deadline(created_at)));
            changes.max_size = self.inner.settings.max_size;
            changes.expect = expect;
            changes.updates = swap.updates;
            let key = id.store_key();
            let store = &self.inner.settings.store;
            let applied = self
                .observer()
                .call(Operation::Apply, store.apply(&key, &changes));
            match applied.await? {
                Applied::Done => {
                    let mut state = self.state();
                    if let Origin::Stored(stored) = &mut state.origin {
                        stored.expires_at = to_ms(changes.expires_at);
                    }
                    state.written(changes.updates);
                    return Ok(result);
                }
                Applied::Conflict => {
                    // Requests racing on one key would collide again at once: each waits a
                    // random moment, longer as conflicts repeat, before it reads again.
                    tokio::time::sleep(super::update::backoff(attempt)).await;
                    self.reread().await?;
                }
                // Destroyed, cycled or expired meanwhile: that request wins. Nothing more is
                // saved (a new session's cookie would replace the id a racing login set). The
                // step runs once more, on no values; what it sets stays in this request's view.
                // (If another handle of this request moved the state on meanwhile, the next
                // attempt works on that session instead.)
                Applied::Missing => {
                    if self.state().end(&id) {
                        ended_elsewhere(&id);
                        return self.step_unsaved(&mut step);
                    }
                }
                Applied::TooLarge { size } => return Err(too_large(&changes, size)),
            }
        }
        // The last attempt's reread may have found the session gone.
        if matches!(self.state().origin, Origin::Ended) {
            return self.step_unsaved(&mut step);
        }
        let principal = self.state().principal().map(str::to_owned);
        self.observer()
            .emit(EventKind::Conflict, principal.as_deref(), None);
        Err(Error::Conflict {
            key: conflict_key.to_owned(),
            attempts: crate::defaults::UPDATE_ATTEMPTS,
        })
    }

    /// The session ended meanwhile (see [`Origin::Ended`]): runs `step` once more, on the
    /// values left (none, unless the handler set some since), keeps what it sets in this
    /// request's view, and returns its result. Nothing is written.
    fn step_unsaved<R>(
        &self,
        step: &mut impl FnMut(&State) -> Result<(Option<Swap>, R), Error>,
    ) -> Result<R, Error> {
        self.refuse_if_ended()?;
        let (swap, result) = step(&self.state())?;
        if let Some(swap) = swap {
            self.keep_locally(swap.updates)?;
        }
        Ok(result)
    }

    /// Applies `updates` to this request's view, as pending changes (saved with the response,
    /// if the session is saved at all).
    fn keep_locally(&self, updates: BTreeMap<String, KeyChange>) -> Result<(), Error> {
        for (key, change) in updates {
            match change {
                KeyChange::Set(value) => self.set_locally(&key, value)?,
                KeyChange::Remove => self.remove_locally(&key),
            }
        }
        Ok(())
    }

    /// Removes `key` among the pending changes (saved with the response).
    fn remove_locally(&self, key: &str) {
        self.state().remove(key);
    }

    /// Reads the stored session again, keeping this request's pending changes on top of it.
    pub(super) async fn reread(&self) -> Result<(), Error> {
        let Some(id) = self.state().id().cloned() else {
            return Ok(());
        };
        let key = id.store_key();
        let load = self.inner.settings.store.load(&key);
        let record = self.observer().call(Operation::Load, load).await?;
        let mut state = self.state();
        match record {
            Some(record) => state.reread(record),
            None => {
                if state.end(&id) {
                    ended_elsewhere(&id);
                }
            }
        }
        Ok(())
    }
}
