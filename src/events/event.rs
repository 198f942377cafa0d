//! [`SessionEvent`] and [`EventKind`]: one thing that happened to a session.

use std::time::SystemTime;

use crate::user_sessions::SessionHandle;

/// What happened to a session. See the [module docs](crate::events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A new session was stored.
    Created,
    /// A session was logged in ([`Session::log_in`](crate::Session::log_in)) or its login
    /// confirmed ([`Session::confirm_login`](crate::Session::confirm_login)): stored under a
    /// new id, tied to the principal.
    LoggedIn,
    /// A session got a new id ([`Session::cycle_id`](crate::Session::cycle_id)); the handle is
    /// the new one.
    Cycled,
    /// A session was logged out ([`Session::destroy`](crate::Session::destroy)).
    Destroyed,
    /// A session was ended by another: through [`Sessions`](crate::Sessions),
    /// [`revoke_others`](crate::Session::revoke_others) or the per-principal cap; one event
    /// per session ended.
    Revoked,
    /// A request's session had expired, where the store can tell. The built-in stores report
    /// an expired session as absent: it counts as [`UnknownId`](EventKind::UnknownId).
    Expired,
    /// A well-formed, verified id with no live session behind it (expired, destroyed, or
    /// guessed).
    UnknownId,
    /// An id refused before any store call: malformed, tampered, duplicated.
    RefusedId,
    /// [`Session::update`](crate::Session::update) (or a save) gave up: the session kept
    /// changing under it.
    Conflict,
    /// A store call failed.
    StoreError,
}

impl EventKind {
    /// The kind's name in snake case (`logged_in`, `unknown_id`, ...): for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::LoggedIn => "logged_in",
            EventKind::Cycled => "cycled",
            EventKind::Destroyed => "destroyed",
            EventKind::Revoked => "revoked",
            EventKind::Expired => "expired",
            EventKind::UnknownId => "unknown_id",
            EventKind::RefusedId => "refused_id",
            EventKind::Conflict => "conflict",
            EventKind::StoreError => "store_error",
        }
    }
}

/// One thing that happened to a session: what, to whose session, which session, and when.
/// Never the session's id. See the [module docs](crate::events).
#[derive(Clone, Debug)]
pub struct SessionEvent {
    kind: EventKind,
    principal: Option<String>,
    handle: Option<SessionHandle>,
    at: SystemTime,
}

impl SessionEvent {
    pub(crate) fn new(
        kind: EventKind,
        principal: Option<&str>,
        handle: Option<SessionHandle>,
    ) -> Self {
        Self {
            kind,
            principal: principal.map(str::to_owned),
            handle,
            at: SystemTime::now(),
        }
    }

    /// What happened.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The principal the session belongs to, where one is known.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The session, as a handle (its store key: it can revoke it through
    /// [`Sessions`](crate::Sessions), never log in), where there is one.
    pub fn handle(&self) -> Option<&SessionHandle> {
        self.handle.as_ref()
    }

    /// When it happened.
    pub fn at(&self) -> SystemTime {
        self.at
    }
}
