//! [`Record`]: one stored session.

use std::time::SystemTime;

use crate::clock::now;
use crate::expiry::ExpirySettings;

use super::{Data, Owner};

/// One stored session.
///
/// Built by name, so that its two timestamps cannot be swapped: [`Record::new`] takes the
/// values and the deadline (created now), [`with_created_at`](Self::with_created_at) and
/// [`with_expiry`](Self::with_expiry) set the rest.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use sessionware::store::{now, Data, Record};
///
/// let minute = Duration::from_secs(60);
/// let data: Data = [("user".to_owned(), json!("alice"))].into();
/// let record = Record::new(data, now() + minute).with_created_at(now() - minute);
/// assert!(record.is_live(now()));
/// assert!(record.created_at < record.expires_at);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The session's values.
    pub data: Data,
    /// When the session was created (the base of the absolute timeout).
    pub created_at: SystemTime,
    /// When the session ends. A store must treat a record whose `expires_at` is not in the
    /// future as absent, on every operation. Stores keep times to the millisecond.
    pub expires_at: SystemTime,
    /// The session's own expiry settings, if a handler set any (the default: the layer's).
    /// Stores persist them with [`ExpirySettings::encode`].
    pub expiry: ExpirySettings,
    /// The principal the session is tied to ([`Session::log_in`](crate::Session::log_in)), and
    /// its label; stores index sessions by it ([`SessionStore::list`](super::SessionStore::list)).
    pub owner: Option<Owner>,
}

impl Record {
    /// A session holding `data`, created now ([`now`](super::now)), that ends at `expires_at`
    /// with the layer's expiry settings.
    pub fn new(data: Data, expires_at: SystemTime) -> Self {
        Self {
            data,
            created_at: now(),
            expires_at,
            expiry: ExpirySettings::default(),
            owner: None,
        }
    }

    /// The same record, created at `created_at`.
    #[must_use]
    pub fn with_created_at(mut self, created_at: SystemTime) -> Self {
        self.created_at = created_at;
        self
    }

    /// The same record with the session's own expiry settings: an [`ExpirySettings`], or an
    /// `Option<Expiry>` (with the layer's absolute timeout).
    #[must_use]
    pub fn with_expiry(mut self, expiry: impl Into<ExpirySettings>) -> Self {
        self.expiry = expiry.into();
        self
    }

    /// The same record, tied to `owner`.
    #[must_use]
    pub fn with_owner(mut self, owner: Owner) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Whether the record is still live at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at > now
    }
}
