//! Sessions by user: [`Session::log_in`], [`Session::principal`], [`Session::devices`] and
//! [`Session::revoke_others`].

use super::state::Origin;
use super::Session;
use crate::error::Error;
use crate::events::Operation;
use crate::id::StoreKey;
use crate::store::{Listed, Owner};
use crate::user_sessions::{SessionInfo, Sessions};

impl Session {
    /// Logs the session in as `principal` (the application's user id): when the layer saves
    /// the session, it gets a new id (a session-fixation defence: the id a visitor had before
    /// logging in stops working) and is tied to the principal, in the one store step the save
    /// makes anyway. Its values are kept.
    ///
    /// A tied session is listed by [`Sessions::list`](crate::Sessions::list) and ended by
    /// [`Sessions::revoke_all`](crate::Sessions::revoke_all) and
    /// [`revoke_others`](Self::revoke_others). Logging in as another principal re-ties it.
    ///
    /// ```
    /// use axum::{body::Body, http::{header, Request}, routing::{get, post}, Router};
    /// use sessionware::{Error, MemoryStore, Session, SessionLayer};
    /// use tower::ServiceExt;
    ///
    /// async fn log_in(session: Session) -> Result<(), Error> {
    ///     session.log_in("user-42").await
    /// }
    ///
    /// async fn whoami(session: Session) -> Result<String, Error> {
    ///     Ok(session.principal().await?.unwrap_or_else(|| "nobody".into()))
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let app = Router::new()
    ///     .route("/login", post(log_in))
    ///     .route("/whoami", get(whoami))
    ///     .layer(SessionLayer::new(MemoryStore::default()));
    ///
    /// let login = Request::post("/login").body(Body::empty()).unwrap();
    /// let response = app.clone().oneshot(login).await.unwrap();
    /// let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    /// let cookie = cookie.split(';').next().unwrap().to_owned();
    ///
    /// let whoami = Request::get("/whoami").header(header::COOKIE, cookie).body(Body::empty());
    /// let response = app.oneshot(whoami.unwrap()).await.unwrap();
    /// let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
    /// assert_eq!(body, "user-42");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::EmptyPrincipal`] if `principal` is empty; [`Error::Store`] if loading the
    /// session failed.
    pub async fn log_in(&self, principal: impl Into<String>) -> Result<(), Error> {
        self.tie(Owner::new(principal)).await
    }

    /// [`log_in`](Self::log_in), with a label for the user's device list (such as the
    /// browser's `User-Agent`; cut to [`Owner::MAX_LABEL`] bytes).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyPrincipal`] if `principal` is empty; [`Error::Store`] if loading the
    /// session failed.
    pub async fn log_in_with_label(
        &self,
        principal: impl Into<String>,
        label: impl Into<String>,
    ) -> Result<(), Error> {
        self.tie(Owner::new(principal).with_label(label)).await
    }

    async fn tie(&self, owner: Owner) -> Result<(), Error> {
        if owner.principal.is_empty() {
            return Err(Error::EmptyPrincipal);
        }
        self.load().await?;
        self.rotate_csrf();
        let mut state = self.state();
        match &mut state.origin {
            Origin::Stored(stored) => stored.cycle = true,
            // A log-in is a new start, even after another request ended this one's session: it
            // is saved as a new session (the latest log-in wins, as between two tabs).
            origin @ Origin::Ended => *origin = Origin::New,
            Origin::New | Origin::Destroyed(_) => {}
        }
        state.log_in = Some(Box::new(owner.with_tied_at(crate::clock::now())));
        Ok(())
    }

    /// The principal the session is logged in as, counting a [`log_in`](Self::log_in) of this
    /// request.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed.
    pub async fn principal(&self) -> Result<Option<String>, Error> {
        self.load().await?;
        Ok(self.state().principal().map(str::to_owned))
    }

    /// When the session was logged in ([`log_in`](Self::log_in)) or the login last confirmed
    /// ([`confirm_login`](Self::confirm_login)), counting a log-in of this request. `None` for
    /// an anonymous session, and for one logged in before stores kept the time (treat it as
    /// long ago). Read from the loaded session: no store call beyond the load.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed.
    pub async fn authenticated_at(&self) -> Result<Option<std::time::SystemTime>, Error> {
        self.load().await?;
        let state = self.state();
        Ok(state.owner().and_then(|owner| owner.tied_at))
    }

    /// Records that the logged-in user proved who they are again (re-entered their password
    /// for a sensitive action): the session gets a new id, as at [`log_in`](Self::log_in) (a
    /// privilege change), and [`authenticated_at`](Self::authenticated_at) becomes now. The
    /// principal and the device label stay.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoggedIn`] if nobody is logged in to the session; [`Error::Store`] if
    /// loading the session failed.
    pub async fn confirm_login(&self) -> Result<(), Error> {
        self.load().await?;
        let owner = {
            let state = self.state();
            let Some(owner) = state.owner() else {
                return Err(Error::NotLoggedIn);
            };
            let mut again = Owner::new(owner.principal.clone());
            again.label = owner.label.clone();
            again
        };
        self.tie(owner).await
    }

    /// The live sessions of this session's principal, oldest first, this one marked
    /// [`current`](SessionInfo::is_current); empty when nobody is logged in.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed.
    pub async fn devices(&self) -> Result<Vec<SessionInfo>, Error> {
        let Some((principal, own)) = self.principal_and_key().await? else {
            return Ok(Vec::new());
        };
        let list = self.inner.settings.store.list(&principal);
        let listed = self.observer().call(Operation::List, list).await?;
        Ok(SessionInfo::from_listed(listed, own.as_ref()))
    }

    /// Signs the principal out everywhere else: ends every other session tied to this
    /// session's principal and returns how many. `0` when nobody is logged in.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed (some sessions may have been revoked already).
    pub async fn revoke_others(&self) -> Result<u64, Error> {
        let Some((principal, own)) = self.principal_and_key().await? else {
            return Ok(0);
        };
        let mut revoked = 0;
        let list = self.inner.settings.store.list(&principal);
        for session in self.observer().call(Operation::List, list).await? {
            if Some(session.key) != own {
                self.revoke(&principal, &session.key).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// The principal, and this session's store key if it is stored.
    async fn principal_and_key(&self) -> Result<Option<(String, Option<StoreKey>)>, Error> {
        self.load().await?;
        let state = self.state();
        Ok(state
            .principal()
            .map(|principal| (principal.to_owned(), state.id().map(|id| id.store_key()))))
    }

    /// After `key` was tied to `principal` and the tie is stored: enforces the layer's cap on
    /// the principal's sessions, if it has one (see [`cap_sessions`](Self::cap_sessions)). The
    /// log-in is stored, so its cookie must go out whatever happens here: a failure is logged,
    /// and the cap is enforced again by the next log-in.
    pub(super) async fn cap_after_tie(&self, principal: &str, key: &StoreKey) {
        match self.cap_sessions(principal, key).await {
            Ok(false) => {}
            Ok(true) => tracing::info!(
                session = %key.short(),
                "log-in revoked by the per-principal cap: newer log-ins of the principal took its place"
            ),
            Err(error) => tracing::error!(
                %error,
                session = %key.short(),
                "the log-in was saved, but enforcing the per-principal session cap failed"
            ),
        }
    }

    /// Keeps the principal's `cap` most recently tied sessions and revokes the others; returns
    /// whether `key`'s own session was among them.
    ///
    /// Every log-in of the principal ranks the sessions the same way (tie time, newest first,
    /// then store key), its own included, so log-ins racing each other agree on what to keep:
    /// a session among the `cap` most recent ties ranks within the first `cap` of any listing
    /// that holds it, so no log-in revokes it, and the log-in that lists last sees every tie
    /// and revokes all the others. (Keeping "the newest others besides me" instead let two
    /// simultaneous log-ins under a cap of 1 revoke each other.)
    async fn cap_sessions(&self, principal: &str, key: &StoreKey) -> Result<bool, Error> {
        let Some(cap) = self.inner.settings.max_per_principal else {
            return Ok(false);
        };
        let store = &self.inner.settings.store;
        let mut listed = self
            .observer()
            .call(Operation::List, store.list(principal))
            .await?;
        // A session tied before stores kept tie times ranks by its creation (no later than
        // its tie).
        let tied = |session: &Listed| session.tied_at.unwrap_or(session.created_at);
        listed.sort_by(|a, b| tied(b).cmp(&tied(a)).then_with(|| a.key.cmp(&b.key)));
        let mut own_revoked = false;
        for session in listed.iter().skip(cap.get()) {
            self.revoke(principal, &session.key).await?;
            own_revoked |= session.key == *key;
        }
        Ok(own_revoked)
    }

    /// Ends `principal`'s session under `key` (another of the user's), as
    /// [`Sessions`](crate::Sessions) does: deleted, and reported revoked.
    async fn revoke(&self, principal: &str, key: &StoreKey) -> Result<(), Error> {
        let settings = &self.inner.settings;
        let sessions = Sessions::new(settings.store.clone(), settings.observer.clone());
        sessions.delete(Some(principal), key).await
    }
}
