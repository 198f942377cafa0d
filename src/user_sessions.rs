//! [`Sessions`]: a user's sessions, from anywhere: list them, revoke one, revoke them all.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Error;
use crate::events::{EventKind, Observer, Operation};
use crate::id::StoreKey;
use crate::store::{Listed, SessionStore};

/// The sessions of a [`SessionLayer`](crate::SessionLayer)'s store, by principal: what a
/// "your devices" page, a "sign out everywhere" button and a password reset need.
///
/// Get it with [`SessionLayer::sessions`](crate::SessionLayer::sessions) and keep it in the
/// application's state: it is cheap to clone, and works without a request (a background job or
/// an admin action has no session of the user). A session is tied to a principal by
/// [`Session::log_in`](crate::Session::log_in).
///
/// Revocation is immediate: a revoked session is deleted from the store, so its next request,
/// through any instance sharing the store, starts a fresh session. (A
/// [`CachingStore`](crate::store::CachingStore) drops its own copy at once; other instances'
/// caches serve theirs for at most their staleness bound.) A save racing the revocation cannot
/// bring the session back: saves apply only to sessions that exist.
///
/// The crate-level docs have a complete example: [sign out everywhere after a password
/// change](crate#sessions-by-user).
///
/// ```
/// use sessionware::{MemoryStore, SessionLayer};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer = SessionLayer::new(MemoryStore::default());
/// let sessions = layer.sessions();
/// assert!(sessions.list("user-42").await?.is_empty());
/// assert_eq!(sessions.revoke_all("user-42").await?, 0);
/// # Ok::<(), sessionware::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    observer: Observer,
}

impl Sessions {
    pub(crate) fn new(store: Arc<dyn SessionStore>, observer: Observer) -> Self {
        Self { store, observer }
    }

    /// The live sessions of `principal`, oldest first. None is marked
    /// [`current`](SessionInfo::is_current): this handle has no request; use
    /// [`Session::devices`](crate::Session::devices) in a handler for that.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed.
    pub async fn list(&self, principal: &str) -> Result<Vec<SessionInfo>, Error> {
        let listed = self.list_listed(principal).await?;
        Ok(SessionInfo::from_listed(listed, None))
    }

    /// Ends the session `handle` if it is one of `principal`'s; whether it was. What a
    /// "revoke" button on a devices page calls with the handle the client sent back: a handle
    /// of someone else's session ends nothing.
    ///
    /// ```
    /// use sessionware::{MemoryStore, SessionHandle, SessionLayer};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sessions = SessionLayer::new(MemoryStore::default()).sessions();
    /// let sent_back: SessionHandle = "ab".repeat(32).parse().unwrap();
    /// assert!(!sessions.revoke("user-42", &sent_back).await?, "not one of user-42's");
    /// # Ok::<(), sessionware::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed.
    pub async fn revoke(&self, principal: &str, handle: &SessionHandle) -> Result<bool, Error> {
        let listed = self.list_listed(principal).await?;
        if !listed.iter().any(|session| session.key == handle.0) {
            return Ok(false);
        }
        self.delete(Some(principal), &handle.0).await?;
        Ok(true)
    }

    /// Ends one session, whoever it belongs to, without checking. For an administrator's tools
    /// that already know whose session it is; a handle a client sent back goes to
    /// [`revoke`](Self::revoke), which checks.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed.
    pub async fn revoke_unchecked(&self, handle: &SessionHandle) -> Result<(), Error> {
        self.delete(None, &handle.0).await
    }

    /// Ends every session of `principal`; how many were live. A log-in of the same principal
    /// racing this call ends with its session either revoked or listed, never live and unlisted.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed (some sessions may have been revoked already).
    pub async fn revoke_all(&self, principal: &str) -> Result<u64, Error> {
        // Listed first, so that each session ended is reported with its handle.
        let listed = self.list_listed(principal).await?;
        let ended = self
            .observer
            .call(Operation::Delete, self.store.delete_all(principal))
            .await?;
        for session in &listed {
            self.observer
                .emit(EventKind::Revoked, Some(principal), Some(&session.key));
        }
        Ok(ended)
    }

    async fn list_listed(&self, principal: &str) -> Result<Vec<Listed>, Error> {
        let call = self.store.list(principal);
        Ok(self.observer.call(Operation::List, call).await?)
    }

    /// Deletes the session under `key` and reports it revoked.
    pub(crate) async fn delete(
        &self,
        principal: Option<&str>,
        key: &StoreKey,
    ) -> Result<(), Error> {
        self.observer
            .call(Operation::Delete, self.store.delete(key))
            .await?;
        self.observer.emit(EventKind::Revoked, principal, Some(key));
        Ok(())
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.store)
            .finish()
    }
}

/// One live session of a principal, as [`Sessions::list`] and
/// [`Session::devices`](crate::Session::devices) return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    handle: SessionHandle,
    created_at: SystemTime,
    expires_at: SystemTime,
    label: Option<String>,
    current: bool,
}

impl SessionInfo {
    /// Oldest first; `current` marks the caller's own session.
    pub(crate) fn from_listed(listed: Vec<Listed>, current: Option<&StoreKey>) -> Vec<Self> {
        let mut infos: Vec<Self> = listed
            .into_iter()
            .map(|session| Self {
                current: current == Some(&session.key),
                handle: SessionHandle(session.key),
                created_at: session.created_at,
                expires_at: session.expires_at,
                label: session.label,
            })
            .collect();
        infos.sort_by_key(|info| (info.created_at, info.handle.0));
        infos
    }

    /// What revokes this session ([`Sessions::revoke`]); never a way to use it.
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// When the session was created (at log-in, for a session created by it).
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// When the session ends unless it is used again.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The label given at log-in ([`Session::log_in_with_label`](crate::Session::log_in_with_label)).
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Whether this is the session of the request that listed it.
    pub fn is_current(&self) -> bool {
        self.current
    }
}

/// Names one session so that it can be revoked, and nothing else.
///
/// It holds the session's store key, the SHA-256 of its id: no cookie can be made from it. It
/// prints as 64 hex digits and parses back ([`FromStr`]), so a "revoke" button can carry it in a
/// form; [`Sessions::revoke`] checks whose session it names.
///
/// ```
/// use sessionware::SessionHandle;
///
/// let text = "ab".repeat(32);
/// let handle: SessionHandle = text.parse().unwrap();
/// assert_eq!(handle.to_string(), text);
/// assert!("not a handle".parse::<SessionHandle>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle(StoreKey);

impl SessionHandle {
    /// The handle of the session under `key`.
    pub(crate) fn of(key: StoreKey) -> Self {
        SessionHandle(key)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({}..)", self.0.short())
    }
}

/// A text that is not a [`SessionHandle`] (64 hex digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a session handle: expected 64 hex digits")]
pub struct InvalidHandle;

impl FromStr for SessionHandle {
    type Err = InvalidHandle;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StoreKey::from_hex(text).map(Self).ok_or(InvalidHandle)
    }
}
