//! Write-back: carrying out the [`Plan`] for what a handler did to its [`Session`]: one store
//! call and what the response tells the client.

use super::plan::{plan, Plan, Rules};
use super::Session;
use crate::error::{Error, StoreError};
use crate::expiry::now;
use crate::id::SessionId;
use crate::store::{entry_size, Applied, ChangeSet, Created, Cycled, Touched};

/// How many fresh ids to try when the store reports a collision. With 122 random bits a single
/// collision is already beyond unlikely; several in a row mean a broken store.
const ID_ATTEMPTS: usize = 4;

/// What the response must tell the client about the id.
#[derive(Debug)]
pub(crate) enum CookieAction {
    /// Nothing: the client's cookie stays as it is (or there is none to send).
    Keep,
    /// (Re)send the id, with `Max-Age` in seconds when the session has one.
    Set { id: SessionId, max_age: Option<i64> },
    /// Make the client forget its id.
    Remove,
}

impl Session {
    /// The plan for saving this session, if it can be made without a store call: `None` when
    /// the session must be loaded first (only `set_expiry` was called, without a load).
    ///
    /// Takes the request's changes: call it once, when the handler's response is in.
    pub(crate) fn plan_now(&self, failed: bool) -> Option<Plan> {
        let loaded = self.was_loaded();
        let mut state = self.state();
        if !loaded && !failed && state.expiry_changed() {
            return None;
        }
        let state = std::mem::take(&mut *state);
        Some(plan(state, loaded, failed, &self.rules(), now()))
    }

    /// Whether the handler loaded the session (its response depends on the cookie).
    pub(crate) fn was_loaded(&self) -> bool {
        self.inner.loaded.initialized()
    }

    fn rules(&self) -> Rules {
        let settings = &self.inner.settings;
        Rules {
            expiry: settings.expiry,
            deadlines: settings.deadlines,
            max_size: settings.max_size,
        }
    }

    /// Saves the session: carries out `plan`, or, without one (see [`plan_now`](Self::plan_now)),
    /// loads the session and plans first.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed or kept reporting collisions; [`Error::TooLarge`] if
    /// the store refused the changes because, with what other requests saved meanwhile, the
    /// session would outgrow the size cap.
    pub(crate) async fn commit(&self, plan: Option<Plan>) -> Result<CookieAction, Error> {
        let plan = match plan {
            Some(plan) => plan,
            None => {
                self.load().await?;
                let state = std::mem::take(&mut *self.state());
                plan_for(state, self)
            }
        };
        self.execute(plan).await
    }

    async fn execute(&self, plan: Plan) -> Result<CookieAction, Error> {
        let store = &self.inner.store;
        Ok(match plan {
            Plan::Nothing => CookieAction::Keep,
            Plan::ResendCookie { id, max_age } => CookieAction::Set { id, max_age },
            Plan::Forget { old } => {
                store.delete(&old.store_key()).await?;
                CookieAction::Remove
            }
            Plan::Create {
                replacing,
                record,
                max_age,
            } => {
                if let Some(old) = replacing {
                    store.delete(&old.store_key()).await?;
                }
                for _ in 0..ID_ATTEMPTS {
                    let id = SessionId::generate();
                    match store.create(&id.store_key(), &record).await? {
                        Created::Done => return Ok(CookieAction::Set { id, max_age }),
                        Created::Collision => continue,
                    }
                }
                return Err(no_free_id());
            }
            Plan::Apply {
                id,
                changes,
                resend,
                max_age,
            } => match store.apply(&id.store_key(), &changes).await? {
                Applied::Done if resend => CookieAction::Set { id, max_age },
                Applied::Done => CookieAction::Keep,
                Applied::Missing => vanished(&id),
                Applied::TooLarge { size } => return Err(too_large(&changes, size)),
                // A plan's change set has no preconditions, so no store can refuse it for one.
                Applied::Conflict => return Err(broken_store("apply")),
            },
            Plan::Cycle {
                id,
                changes,
                max_age,
            } => {
                let key = id.store_key();
                for _ in 0..ID_ATTEMPTS {
                    let new = SessionId::generate();
                    match store.cycle(&key, &new.store_key(), &changes).await? {
                        Cycled::Done => return Ok(CookieAction::Set { id: new, max_age }),
                        Cycled::Missing => return Ok(vanished(&id)),
                        Cycled::Collision => continue,
                        Cycled::TooLarge { size } => return Err(too_large(&changes, size)),
                        Cycled::Conflict => return Err(broken_store("cycle")),
                    }
                }
                return Err(no_free_id());
            }
            Plan::Touch {
                id,
                expires_at,
                resend,
                max_age,
            } => match store.touch(&id.store_key(), expires_at).await? {
                Touched::Done if resend => CookieAction::Set { id, max_age },
                Touched::Done => CookieAction::Keep,
                Touched::Missing => vanished(&id),
            },
        })
    }
}

/// The plan for a state taken after a load.
fn plan_for(state: super::state::State, session: &Session) -> Plan {
    plan(state, true, false, &session.rules(), now())
}

/// The session was destroyed, cycled (a login in another tab) or expired by someone else between
/// load and save. That request wins: nothing is written, and the cookie is left alone. A removal
/// cookie here would be wrong: browsers remove cookies by name, path and domain, so it would
/// also delete the new id that a racing login has just set. Only the request that destroyed
/// the session sends the removal cookie.
fn vanished(id: &SessionId) -> CookieAction {
    tracing::info!(
        session = %id.store_key().short(),
        "session ended or moved while this request was using it; its changes were discarded"
    );
    CookieAction::Keep
}

/// The store refused the change set: with what other requests saved meanwhile, the session
/// would outgrow the cap. Named after the largest value the change set sets, the likeliest
/// culprit.
fn too_large(changes: &ChangeSet, size: usize) -> Error {
    let key = changes
        .updates
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key, entry_size(key, v))))
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
