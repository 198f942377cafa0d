//! Write-back: turning what a handler did to its [`Session`] into one store call and a cookie.

use super::{Session, State};
use crate::error::{Error, StoreError};
use crate::expiry::{now_millis, Expiry};
use crate::id::SessionId;
use crate::store::{ChangeSet, ExpiryChange, Outcome, Record};

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
    /// Whether saving has anything to do: `false` when the handler left the session alone, or
    /// only read it inside the touch window, so the layer can return the response at once.
    pub(crate) fn needs_commit(&self) -> bool {
        let state = self.state();
        if !self.inner.loaded.initialized() {
            return state.expiry_changed();
        }
        let Some(_) = &state.id else {
            return state.destroyed.is_some() || !state.data.is_empty();
        };
        if state.cycle
            || state.clear
            || !state.updates.is_empty()
            || state.expiry_changed()
            || state.reissue
            || state.destroyed.is_some()
        {
            return true;
        }
        let expiry = state.settings.expiry.unwrap_or(self.inner.config.expiry);
        let rules = &self.inner.config.deadlines;
        let absolute = rules.absolute(&state.settings);
        let next = rules.expires_at(expiry, absolute, state.created_at, now_millis());
        rules.touch_due(expiry, state.expires_at, next)
    }

    /// After a `5xx` response: data changes are dropped (the handler may have failed halfway),
    /// but a `destroy` still happens, so a logout can never fail open.
    pub(crate) async fn commit_failed(&self) -> Result<CookieAction, Error> {
        let destroyed = {
            let mut state = self.state();
            let destroyed = state.destroyed.take();
            *state = State::default();
            destroyed
        };
        match destroyed {
            Some(old) => {
                self.inner.store.delete(&old.store_key()).await?;
                Ok(CookieAction::Remove)
            }
            None => Ok(CookieAction::Keep),
        }
    }

    /// Whether a `5xx` response still has something to do: a `destroy`.
    pub(crate) fn needs_commit_after_failure(&self) -> bool {
        self.state().destroyed.is_some()
    }

    /// Whether the handler loaded the session (its response depends on the cookie).
    pub(crate) fn was_loaded(&self) -> bool {
        self.inner.loaded.initialized()
    }

    /// Saves what the handler changed. Called by the layer once the handler's response is in.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed or kept reporting collisions.
    pub(crate) async fn commit(&self) -> Result<CookieAction, Error> {
        // `set_expiry` alone does not load; the save needs to know what it applies to.
        self.load().await?;
        let state = std::mem::take(&mut *self.state());
        let store = &self.inner.store;
        let rules = &self.inner.config.deadlines;
        let now = now_millis();
        let expiry = state.settings.expiry.unwrap_or(self.inner.config.expiry);
        let absolute = rules.absolute(&state.settings);

        let mut forgotten = false;
        if let Some(old) = &state.destroyed {
            store.delete(&old.store_key()).await?;
            forgotten = true;
        }

        let Some(id) = state.id.clone() else {
            if state.data.is_empty() {
                return Ok(if forgotten {
                    CookieAction::Remove
                } else {
                    CookieAction::Keep
                });
            }
            return self.create(state, expiry, absolute, now).await;
        };

        let key = id.store_key();
        let next = rules.expires_at(expiry, absolute, state.created_at, now);
        let expiry_changed = state.expiry_changed();
        let changed = state.clear || !state.updates.is_empty() || expiry_changed;
        if state.cycle || changed {
            let changes = ChangeSet {
                clear: state.clear,
                updates: state.updates.into_iter().collect(),
                expires_at: next,
                expiry: if expiry_changed {
                    ExpiryChange::Set(state.settings)
                } else {
                    ExpiryChange::Keep
                },
                max_size: self.inner.config.max_size,
            };
            if state.cycle {
                for _ in 0..ID_ATTEMPTS {
                    let new = SessionId::generate();
                    match store.cycle(&key, &new.store_key(), &changes).await? {
                        Outcome::Done => return Ok(set(new, expiry, next, now)),
                        Outcome::Missing => return Ok(vanished(&id)),
                        Outcome::Collision => continue,
                        Outcome::TooLarge { size } => return Err(too_large(&changes, size)),
                    }
                }
                return Err(no_free_id());
            }
            return Ok(match store.apply(&key, &changes).await? {
                Outcome::Done if expiry_changed || state.reissue || has_max_age(expiry) => {
                    set(id, expiry, next, now)
                }
                Outcome::Done | Outcome::Collision => CookieAction::Keep,
                Outcome::Missing => vanished(&id),
                Outcome::TooLarge { size } => return Err(too_large(&changes, size)),
            });
        }

        if rules.touch_due(expiry, state.expires_at, next) {
            return Ok(match store.touch(&key, next).await? {
                Outcome::Done if state.reissue || has_max_age(expiry) => set(id, expiry, next, now),
                Outcome::Done | Outcome::Collision | Outcome::TooLarge { .. } => CookieAction::Keep,
                Outcome::Missing => vanished(&id),
            });
        }
        if state.reissue {
            return Ok(set(id, expiry, state.expires_at, now));
        }
        Ok(CookieAction::Keep)
    }

    /// Saves a fresh session under a new random id, never one the client sent.
    async fn create(
        &self,
        state: State,
        expiry: Expiry,
        absolute: std::time::Duration,
        now: i64,
    ) -> Result<CookieAction, Error> {
        let expires_at = self
            .inner
            .config
            .deadlines
            .expires_at(expiry, absolute, now, now);
        let record = Record::new(state.data, now, expires_at, state.settings);
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate();
            match self.inner.store.create(&id.store_key(), &record).await? {
                Outcome::Done => return Ok(set(id, expiry, expires_at, now)),
                Outcome::Collision | Outcome::Missing | Outcome::TooLarge { .. } => continue,
            }
        }
        Err(no_free_id())
    }
}

fn has_max_age(expiry: Expiry) -> bool {
    !matches!(expiry, Expiry::OnSessionEnd)
}

fn set(id: SessionId, expiry: Expiry, expires_at: i64, now: i64) -> CookieAction {
    CookieAction::Set {
        id,
        max_age: has_max_age(expiry).then(|| expires_at.saturating_sub(now) / 1000),
    }
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
        .filter_map(|(key, value)| {
            value
                .as_ref()
                .map(|v| (key, crate::store::entry_size(key, v)))
        })
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

fn no_free_id() -> Error {
    Error::Store(StoreError::backend(
        "the store reported a collision for every freshly generated session id",
    ))
}
