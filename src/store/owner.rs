//! Sessions by user: who a session belongs to ([`Owner`]), how a cycle carries it ([`Rekey`]),
//! and what a store lists for a principal ([`Listed`]).
//!
//! A session is tied to a principal (the application's user id) by
//! [`Session::log_in`](crate::Session::log_in), which always gives it a new key: a new session is
//! created with its owner, a stored one is cycled to a fresh id. So the owner of a store key never
//! changes while the key lives, and a store may answer "whose session is this" from whichever
//! copy it has without a race.

use std::time::SystemTime;

use crate::id::StoreKey;

/// The principal a session is tied to, and the label the application gave it.
///
/// ```
/// use sessionware::store::Owner;
///
/// let owner = Owner::new("user-42").with_label("Firefox on Linux");
/// assert_eq!(owner.principal, "user-42");
/// assert_eq!(owner.label.as_deref(), Some("Firefox on Linux"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Owner {
    /// The application's id for the user (any string; stores index sessions by it).
    pub principal: String,
    /// A short text shown in a device list, such as the browser's user agent.
    pub label: Option<String>,
    /// When the session was tied to the principal: the log-in's time, set by [`Session::log_in`](crate::Session::log_in). `None` for a session tied before stores
    /// kept it. The per-principal cap keeps the most recent ties.
    pub tied_at: Option<SystemTime>,
}

impl Owner {
    /// The longest label kept, in bytes; a longer one is cut at a character boundary.
    pub const MAX_LABEL: usize = 256;

    /// An owner without a label.
    pub fn new(principal: impl Into<String>) -> Self {
        Self {
            principal: principal.into(),
            label: None,
            tied_at: None,
        }
    }

    /// Sets when the session was tied.
    #[must_use]
    pub fn with_tied_at(mut self, tied_at: SystemTime) -> Self {
        self.tied_at = Some(tied_at);
        self
    }

    /// Sets the label, cut to [`MAX_LABEL`](Self::MAX_LABEL) bytes.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        let mut label = label.into();
        if label.len() > Self::MAX_LABEL {
            let mut end = Self::MAX_LABEL;
            while !label.is_char_boundary(end) {
                end -= 1;
            }
            label.truncate(end);
        }
        self.label = Some(label);
        self
    }
}

/// The keys and owners of a [`cycle`](super::SessionStore::cycle): the session under `old`
/// moves to `new`.
#[derive(Clone, Copy, Debug)]
pub struct Rekey<'a> {
    /// The session's current key.
    pub old: &'a StoreKey,
    /// The fresh key it moves to.
    pub new: &'a StoreKey,
    /// `Some`: the session is tied to this owner from now on (a log-in); `None`: it keeps the
    /// owner it has, if any.
    pub tie: Option<&'a Owner>,
    /// The principal the session had when the caller loaded it, if any. The store's own copy
    /// is the truth; a store whose index lives apart from the session may use this to find the
    /// old key's index entry without reading the session first.
    pub loaded_principal: Option<&'a str>,
}

impl<'a> Rekey<'a> {
    /// A cycle from `old` to `new` that keeps the owner.
    pub fn new(old: &'a StoreKey, new: &'a StoreKey) -> Self {
        Self {
            old,
            new,
            tie: None,
            loaded_principal: None,
        }
    }

    /// The same cycle, tying the session to `owner`.
    #[must_use]
    pub fn with_tie(mut self, owner: &'a Owner) -> Self {
        self.tie = Some(owner);
        self
    }

    /// The principal the session had when it was loaded (see
    /// [`loaded_principal`](Self::loaded_principal)).
    #[must_use]
    pub fn with_loaded_principal(mut self, principal: &'a str) -> Self {
        self.loaded_principal = Some(principal);
        self
    }

    /// The principal the session has after the cycle.
    pub fn principal(&self) -> Option<&str> {
        self.tie
            .map(|owner| owner.principal.as_str())
            .or(self.loaded_principal)
    }
}

/// One live session of a principal, as [`SessionStore::list`](super::SessionStore::list)
/// returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listed {
    /// The session's store key (the SHA-256 of its id: it can delete, never log in).
    pub key: StoreKey,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When it expires unless it is used again.
    pub expires_at: SystemTime,
    /// The label its owner was given.
    pub label: Option<String>,
    /// When it was tied to the principal, if the store knows: see [`Owner::tied_at`].
    pub tied_at: Option<SystemTime>,
}

impl Listed {
    /// A listed session.
    pub fn new(
        key: StoreKey,
        created_at: SystemTime,
        expires_at: SystemTime,
        label: Option<String>,
    ) -> Self {
        Self {
            key,
            created_at,
            expires_at,
            label,
            tied_at: None,
        }
    }

    /// Sets when the session was tied to the principal.
    #[must_use]
    pub fn with_tied_at(mut self, tied_at: Option<SystemTime>) -> Self {
        self.tied_at = tied_at;
        self
    }
}
