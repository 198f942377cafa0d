//! Write-back: carrying out the [`Plan`] for what a handler did to its [`Session`] (one store
//! call and what the response tells the client), at the end of the request or earlier with
//! [`Session::save`].

use std::sync::Arc;

use super::plan::{max_age, plan, Outcome, Plan, Rules, Use, Write};
use super::settle::{saved_values, settle, still_stored, Saved, SavedValues};
use super::state::{Origin, State, EXPIRY_TAG};
use super::Session;
use crate::clock::now_ms;
use crate::clock::{from_ms, to_ms};
use crate::error::{Error, StoreError};
use crate::events::{EventKind, Operation};
use crate::id::SessionId;
use crate::store::{
    entry_size, Applied, ChangeSet, Created, Cycled, Owner, Precondition, Record, Rekey,
};

/// How many fresh ids to try when the store reports a collision. With 122 random bits a single
/// collision is already beyond unlikely; several in a row mean a broken store.
const ID_ATTEMPTS: usize = 4;

/// What the response must tell the client about the id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CookieAction {
    /// Nothing: the client's cookie stays as it is (or there is none to send).
    Keep,
    /// (Re)send the id, with `Max-Age` in seconds when the session has one.
    Set { id: SessionId, max_age: Option<i64> },
    /// Make the client forget its id.
    Remove,
}

/// Whether carrying out a plan may move the values it writes out of the state instead of
/// cloning them.
#[derive(Clone, Copy)]
enum Source {
    /// This is the last handle of the session: nothing can look at its state after the save.
    Last,
    /// Other handles may read the state while the save runs, and after it.
    Shared,
}

impl Session {
    /// The plan for saving this session, if it can be made without a store call: `None` when
    /// the session must be loaded first (only `set_expiry` was called, without a load).
    pub(crate) fn plan_now(&self, outcome: Outcome) -> Option<Plan> {
        let used = if self.was_loaded() {
            Use::Loaded
        } else {
            Use::Untouched
        };
        let state = self.state();
        if used == Use::Untouched {
            // The common case of routes that never use the session: no clock, no rules.
            if outcome == Outcome::Ok && state.expiry_changed() {
                return None;
            }
            if matches!(state.origin, Origin::New) && state.pending_cookie.is_none() {
                return Some(Plan::Nothing);
            }
        }
        Some(plan(&state, used, outcome, &self.rules(), now_ms()))
    }

    /// Whether an earlier [`save`](Session::save) in this request owes the response a cookie
    /// (a new id, or its removal): then even a [`Plan::Nothing`] goes through
    /// [`commit`](Self::commit).
    pub(crate) fn owes_cookie(&self) -> bool {
        self.state().pending_cookie.is_some()
    }

    /// Whether the handler loaded the session (its response depends on the cookie).
    pub(crate) fn was_loaded(&self) -> bool {
        self.inner.loaded.initialized()
    }

    pub(super) fn rules(&self) -> Rules {
        let settings = &self.inner.settings;
        Rules {
            expiry: settings.expiry,
            deadlines: settings.deadlines,
            max_size: settings.max_size,
        }
    }

    /// Saves the session at the end of the request: carries out `plan`, or, without one (see
    /// [`plan_now`](Self::plan_now)), loads the session and plans first. A `5xx` response saves
    /// only a `destroy` (its plan says so), and its unsaved changes are dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed or kept reporting collisions; [`Error::TooLarge`] if
    /// the store refused the changes because, with what other requests saved meanwhile, the
    /// session would outgrow the size cap.
    pub(crate) async fn commit(
        &self,
        plan: Option<&Plan>,
        outcome: Outcome,
    ) -> Result<CookieAction, Error> {
        // The end of the request: unless a handler kept a handle (for a WebSocket, say), the
        // layer's is the only one, and no other can be made from it (the layer does not clone
        // it), so the values can move into the store call rather than be copied.
        let source = if Arc::strong_count(&self.inner) == 1 {
            Source::Last
        } else {
            Source::Shared
        };
        let action = match plan {
            Some(plan) => self.carry_out(plan, source).await?,
            // Rare (only `set_expiry` without a load): boxed, so the common save's future
            // stays small.
            None => Box::pin(self.load_and_carry_out(source)).await?,
        };
        let mut state = self.state();
        if outcome == Outcome::ServerError {
            state.discard_changes();
        }
        let pending = state.pending_cookie.take();
        Ok(match (action, pending) {
            (CookieAction::Keep, Some(pending)) => pending,
            (action, _) => action,
        })
    }

    async fn load_and_carry_out(&self, source: Source) -> Result<CookieAction, Error> {
        self.load().await?;
        let plan = self.plan_after_load();
        self.carry_out(&plan, source).await
    }

    fn plan_after_load(&self) -> Plan {
        plan(
            &self.state(),
            Use::Loaded,
            Outcome::Ok,
            &self.rules(),
            now_ms(),
        )
    }

    /// Writes this request's pending changes now, as the end of the request would, and keeps
    /// the handle usable; the cookie the save calls for goes out with the response, if it is
    /// still to come.
    pub(super) async fn save_now(&self) -> Result<(), Error> {
        self.load().await?;
        self.refuse_if_ended()?;
        let plan = self.plan_after_load();
        if self.inner.responded() && matches!(plan, Plan::Create { .. } | Plan::Cycle { .. }) {
            return Err(Error::ResponseSent);
        }
        let action = self.carry_out(&plan, Source::Shared).await?;
        self.refuse_if_ended()?;
        if action != CookieAction::Keep {
            self.state().pending_cookie = Some(action);
        }
        Ok(())
    }

    /// After the response, a handle whose session ended (see [`Origin::Ended`]) answers
    /// [`Error::SessionEnded`]: its holder (a WebSocket, a task) must learn that nothing it
    /// writes is kept. During the request the end is not an error (the layer keeps the cookie).
    pub(super) fn refuse_if_ended(&self) -> Result<(), Error> {
        if self.inner.responded() && matches!(self.state().origin, Origin::Ended) {
            return Err(Error::SessionEnded);
        }
        Ok(())
    }

    /// Extends the idle deadline now, whether or not a touch is due.
    pub(super) async fn touch_now(&self) -> Result<(), Error> {
        self.load().await?;
        self.refuse_if_ended()?;
        let (id, created_at, expiry) = {
            let state = self.state();
            let Origin::Stored(stored) = &state.origin else {
                return Ok(());
            };
            let expiry = state.settings.expiry.unwrap_or(self.inner.settings.expiry);
            (stored.id.clone(), stored.created_at, expiry)
        };
        let expires_at = self.next_deadline(created_at);
        let max_age = max_age(expiry, expires_at, now_ms());
        let plan = Plan::Touch {
            id,
            expires_at,
            resend: max_age.is_some(),
            max_age,
        };
        let action = self.carry_out(&plan, Source::Shared).await?;
        self.refuse_if_ended()?;
        if action != CookieAction::Keep && !self.inner.responded() {
            self.state().pending_cookie = Some(action);
        }
        Ok(())
    }

    /// Carries out `plan` and brings the state up to date with what is stored now. If another
    /// request replaced the session's expiry policy since it was read (the write's deadline
    /// would follow the old one), reads the session again and carries out a new plan.
    async fn carry_out(&self, plan: &Plan, source: Source) -> Result<CookieAction, Error> {
        let mut replanned: Option<Plan> = None;
        for _ in 0..crate::defaults::UPDATE_ATTEMPTS {
            let current = replanned.as_ref().unwrap_or(plan);
            let (action, saved) = self.execute(current, source).await?;
            if let Saved::PolicyChanged = saved {
                self.reread().await?;
                replanned = Some(self.plan_after_load());
                continue;
            }
            settle(&mut self.state(), saved);
            return Ok(action);
        }
        let principal = self.state().principal().map(str::to_owned);
        self.observer()
            .emit(EventKind::Conflict, principal.as_deref(), None);
        Err(Error::Conflict {
            key: EXPIRY_TAG.to_owned(),
            attempts: crate::defaults::UPDATE_ATTEMPTS,
        })
    }

    /// Deletes the session this request destroyed, and reports the log-out.
    async fn delete_destroyed(&self, old: &SessionId) -> Result<(), Error> {
        let key = old.store_key();
        let store = &self.inner.settings.store;
        self.observer()
            .call(Operation::Delete, store.delete(&key))
            .await?;
        let principal = self.state().destroyed_principal.take();
        self.observer()
            .emit(EventKind::Destroyed, principal.as_deref(), Some(&key));
        Ok(())
    }

    async fn execute(&self, plan: &Plan, source: Source) -> Result<(CookieAction, Saved), Error> {
        let store = &self.inner.settings.store;
        Ok(match *plan {
            Plan::Nothing => (CookieAction::Keep, Saved::Unchanged),
            Plan::Forget { ref old } => {
                self.delete_destroyed(old).await?;
                (CookieAction::Remove, Saved::Forgotten)
            }
            Plan::Create {
                ref replacing,
                created_at,
                expires_at,
                max_age,
            } => {
                let times = (created_at, expires_at);
                return Box::pin(self.create(replacing.as_ref(), times, max_age, source)).await;
            }
            Plan::Apply {
                ref id,
                write,
                resend,
                max_age,
            } => {
                let changes = pending_changes(&mut self.state(), write, source);
                let key = id.store_key();
                let applied = self
                    .observer()
                    .call(Operation::Apply, store.apply(&key, &changes));
                match applied.await? {
                    Applied::Done => {
                        let expires_at = to_ms(changes.expires_at);
                        still_stored(id, expires_at, saved_values(changes), resend, max_age)
                    }
                    Applied::Missing => (ended_elsewhere(id), Saved::Ended(id.clone())),
                    Applied::TooLarge { size } => return Err(too_large(&changes, size)),
                    // Its one precondition, the policy tag: another request replaced the policy.
                    Applied::Conflict => {
                        restore(&mut self.state(), changes, None);
                        (CookieAction::Keep, Saved::PolicyChanged)
                    }
                }
            }
            // Rare (a log-in or `cycle_id`): boxed, so that the common saves' futures stay small.
            Plan::Cycle {
                ref id,
                write,
                max_age,
                ref was,
            } => return Box::pin(self.cycle(id, write, max_age, was.as_deref(), source)).await,
            Plan::Touch {
                ref id,
                expires_at,
                resend,
                max_age,
            } => {
                // A touch moves only the deadline, but under the policy this request read: an
                // apply that expects the policy tag, rather than the store's plain touch.
                let policy = Precondition::still(self.state().stored(EXPIRY_TAG).cloned());
                let changes = ChangeSet::new(from_ms(expires_at)).with_expected(EXPIRY_TAG, policy);
                let key = id.store_key();
                let applied = self
                    .observer()
                    .call(Operation::Apply, store.apply(&key, &changes));
                match applied.await? {
                    Applied::Done => {
                        still_stored(id, expires_at, SavedValues::None, resend, max_age)
                    }
                    Applied::Missing => (ended_elsewhere(id), Saved::Ended(id.clone())),
                    Applied::Conflict => (CookieAction::Keep, Saved::PolicyChanged),
                    // Only setting a key can grow a session.
                    Applied::TooLarge { .. } => return Err(broken_store("touch")),
                }
            }
        })
    }

    /// Saves the session's values as a new session under a fresh id (deleting the one it
    /// replaces first).
    async fn create(
        &self,
        replacing: Option<&SessionId>,
        (created_at, expires_at): (i64, i64),
        max_age: Option<i64>,
        source: Source,
    ) -> Result<(CookieAction, Saved), Error> {
        let store = &self.inner.settings.store;
        let record = new_record(&mut self.state(), created_at, expires_at, source);
        if let Some(old) = replacing {
            self.delete_destroyed(old).await?;
        }
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate();
            let key = id.store_key();
            let created = self
                .observer()
                .call(Operation::Create, store.create(&key, &record));
            match created.await? {
                Created::Done => {
                    let principal = record.owner.as_ref().map(|o| o.principal.as_str());
                    self.observer()
                        .emit(EventKind::Created, principal, Some(&key));
                    if let Some(owner) = &record.owner {
                        self.observer()
                            .emit(EventKind::LoggedIn, principal, Some(&key));
                        Box::pin(self.cap_after_tie(&owner.principal, &key)).await;
                    }
                    let saved = Saved::Stored {
                        id: id.clone(),
                        created_at: Some(to_ms(record.created_at)),
                        expires_at: to_ms(record.expires_at),
                        tied: record.owner,
                        values: SavedValues::All,
                    };
                    return Ok((CookieAction::Set { id, max_age }, saved));
                }
                // Draw another id.
                Created::Collision => {}
            }
        }
        Err(no_free_id())
    }

    /// Moves the stored session to a fresh id with the pending changes (and log-in).
    async fn cycle(
        &self,
        id: &SessionId,
        write: Write,
        max_age: Option<i64>,
        was: Option<&str>,
        source: Source,
    ) -> Result<(CookieAction, Saved), Error> {
        let store = &self.inner.settings.store;
        let (changes, tie) = {
            let mut state = self.state();
            let tie = match source {
                Source::Last => state.log_in.take().map(|owner| *owner),
                Source::Shared => state.log_in.as_deref().cloned(),
            };
            (pending_changes(&mut state, write, source), tie)
        };
        let old = id.store_key();
        for _ in 0..ID_ATTEMPTS {
            let new = SessionId::generate();
            let keys = Rekey {
                old: &old,
                new: &new.store_key(),
                tie: tie.as_ref(),
                loaded_principal: was,
            };
            let cycled = self
                .observer()
                .call(Operation::Cycle, store.cycle(keys, &changes));
            match cycled.await? {
                Cycled::Done => {
                    match &tie {
                        Some(owner) => {
                            let principal = Some(owner.principal.as_str());
                            self.observer()
                                .emit(EventKind::LoggedIn, principal, Some(keys.new));
                            Box::pin(self.cap_after_tie(&owner.principal, keys.new)).await;
                        }
                        None => self.observer().emit(EventKind::Cycled, was, Some(keys.new)),
                    }
                    let saved = Saved::Stored {
                        id: new.clone(),
                        created_at: None,
                        expires_at: to_ms(changes.expires_at),
                        tied: tie,
                        values: saved_values(changes),
                    };
                    return Ok((CookieAction::Set { id: new, max_age }, saved));
                }
                Cycled::Missing => return Ok((ended_elsewhere(id), Saved::Ended(id.clone()))),
                // Draw another id.
                Cycled::Collision => {}
                Cycled::TooLarge { size } => return Err(too_large(&changes, size)),
                // Its one precondition, the policy tag: another request replaced the policy.
                Cycled::Conflict => {
                    restore(&mut self.state(), changes, tie);
                    return Ok((CookieAction::Keep, Saved::PolicyChanged));
                }
            }
        }
        Err(no_free_id())
    }
}

/// The new session's record: the values the handler left, its expiry settings and its pending
/// log-in; moved out of `state` when it is the last handle's.
fn new_record(state: &mut State, created_at: i64, expires_at: i64, source: Source) -> Record {
    state.tag_policy();
    let (data, owner) = match source {
        Source::Last => (
            std::mem::take(&mut state.data),
            state.log_in.take().map(|owner| *owner),
        ),
        Source::Shared => (state.data.clone(), state.log_in.as_deref().cloned()),
    };
    Record {
        data,
        created_at: from_ms(created_at),
        expires_at: from_ms(expires_at),
        expiry: state.settings,
        owner,
    }
}

/// The change set for the pending changes; moved out of `state` when it is the last handle's.
/// Changes another handle makes while the save runs stay pending either way.
fn pending_changes(state: &mut State, write: Write, source: Source) -> ChangeSet {
    let policy = state.tag_policy();
    let updates = match source {
        Source::Last => std::mem::take(&mut state.updates),
        Source::Shared => state.updates.clone(),
    };
    ChangeSet {
        clear: state.clear,
        updates,
        expires_at: from_ms(write.expires_at),
        expiry: write.expiry,
        max_size: write.max_size,
        expect: [(EXPIRY_TAG.to_owned(), Precondition::still(policy))].into(),
    }
}

/// A write was refused for a replaced policy: its values go back among the pending changes
/// (where it moved them from), under any the request made since.
fn restore(state: &mut State, changes: ChangeSet, tie: Option<Owner>) {
    for (key, value) in changes.updates {
        state.updates.entry(key).or_insert(value);
    }
    state.clear |= changes.clear;
    if state.log_in.is_none() {
        state.log_in = tie.map(Box::new);
    }
}

/// The session was destroyed, cycled (a login in another tab) or expired by someone else between
/// load and save. That request wins: nothing is written, and the cookie is left alone. A removal
/// cookie here would be wrong: browsers remove cookies by name, path and domain, so it would
/// also delete the new id that a racing login has just set. Only the request that destroyed
/// the session sends the removal cookie.
pub(super) fn ended_elsewhere(id: &SessionId) -> CookieAction {
    tracing::info!(
        session = %id.store_key().short(),
        "session ended or moved while this request was using it; its changes were discarded"
    );
    CookieAction::Keep
}

/// The store refused the change set: with what other requests saved meanwhile, the session
/// would outgrow the cap. Named after the largest value the change set sets, the likeliest
/// culprit.
pub(super) fn too_large(changes: &ChangeSet, size: usize) -> Error {
    let key = changes
        .updates
        .iter()
        .filter_map(|(key, change)| change.value().map(|v| (key, entry_size(key, v))))
        .max_by_key(|(_, size)| *size)
        .map(|(key, _)| key.clone())
        .unwrap_or_default();
    tracing::warn!(
        key,
        size,
        "session change refused: concurrent requests together would outgrow the size cap"
    );
    Error::TooLarge {
        key,
        size,
        limit: changes.max_size.unwrap_or(size),
    }
}

/// A store answered `Conflict` to a change set without preconditions: it breaks the contract.
fn broken_store(operation: &str) -> Error {
    Error::Store(StoreError::backend(format!(
        "the store answered Conflict to a {operation} without preconditions"
    )))
}

fn no_free_id() -> Error {
    Error::Store(StoreError::backend(
        "the store reported a collision for every freshly generated session id",
    ))
}
