//! CSRF tokens bound to the session: [`Session::csrf_token`] and [`Session::verify_csrf`].

use serde_json::Value;

use super::swap::{OnNew, Swap};
use super::Session;
use crate::csrf::token;
use crate::error::{Error, StoreError};
use crate::store::{KeyChange, Precondition};

/// The session key of the CSRF secret (keys starting with `__` are the crate's own).
pub(crate) const SECRET_KEY: &str = "__csrf";

impl Session {
    /// A CSRF token for a form or a request header: proof that the request comes from a page of
    /// this session ([OWASP synchronizer token]). Each call returns a different string; each
    /// verifies against the session's secret, which is created on first use (in one store
    /// step, so concurrent first requests agree on it) and replaced by
    /// [`log_in`](Self::log_in) and [`cycle_id`](Self::cycle_id). Put it in a hidden
    /// `csrf_token` field or an `X-CSRF-Token` header; [`CsrfLayer`](crate::CsrfLayer) checks
    /// it.
    ///
    /// [OWASP synchronizer token]: https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html#synchronizer-token-pattern
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed or the system's random source is unavailable.
    pub async fn csrf_token(&self) -> Result<String, Error> {
        let secret = self
            .swap(SECRET_KEY, OnNew::Pending, |state| {
                if let Some(Value::String(secret)) = state.data.get(SECRET_KEY) {
                    if token::is_secret(secret) {
                        return Ok((None, secret.clone()));
                    }
                }
                let secret = token::new_secret().map_err(random_failed)?;
                let swap = Swap {
                    // What the store holds, not the view: after a log-in the view has no
                    // secret while the store still has the old one, replaced here.
                    expect: [(
                        SECRET_KEY.to_owned(),
                        Precondition::still(state.stored(SECRET_KEY).cloned()),
                    )]
                    .into(),
                    updates: [(
                        SECRET_KEY.to_owned(),
                        KeyChange::Set(Value::from(secret.clone())),
                    )]
                    .into(),
                };
                Ok((Some(swap), secret))
            })
            .await?;
        token::mask(&secret)
            .map_err(random_failed)?
            .ok_or_else(|| Error::Store(StoreError::Corrupt("CSRF secret".to_owned())))
    }

    /// Whether `token` is a CSRF token of this session ([`csrf_token`](Self::csrf_token)),
    /// compared in constant time. `false` for a session without a secret.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed.
    pub async fn verify_csrf(&self, token: &str) -> Result<bool, Error> {
        self.load().await?;
        let state = self.state();
        Ok(match state.data.get(SECRET_KEY) {
            Some(Value::String(secret)) => token::verify(secret, token),
            _ => false,
        })
    }

    /// Drops the CSRF secret among the pending changes: a new one is made on next use. Called
    /// when the id changes (a log-in), so tokens of the old session stop working.
    pub(super) fn rotate_csrf(&self) {
        self.state().remove(SECRET_KEY);
    }
}

fn random_failed(error: getrandom::Error) -> Error {
    Error::Store(StoreError::backend(format!(
        "the system's random source failed: {error}"
    )))
}
