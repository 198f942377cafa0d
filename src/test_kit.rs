//! A test kit for applications (feature `test-kit`, off by default): start a request with a
//! session already in the store, seeded with values and a logged-in principal, and read back the
//! session a response points to, so that a test needs no login round trip.
//!
//! ```
//! use axum::{body::Body, http::{Request, StatusCode}, routing::get, Router};
//! use sessionware::{Error, MemoryStore, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn cart(session: Session) -> Result<(StatusCode, String), Error> {
//!     let Some(user) = session.principal().await? else {
//!         return Ok((StatusCode::UNAUTHORIZED, "log in first".into()));
//!     };
//!     let items: Vec<String> = session.get("cart").await?.unwrap_or_default();
//!     session.insert("visits", 1).await?;
//!     Ok((StatusCode::OK, format!("{user}: {}", items.join(","))))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = SessionLayer::new(MemoryStore::default());
//! let kit = layer.test_sessions();
//! let app = Router::new().route("/cart", get(cart)).layer(layer);
//!
//! let seeded = kit.seed().with("cart", ["apple", "pear"]).logged_in("ann").create().await?;
//! let mut request = Request::get("/cart").body(Body::empty()).unwrap();
//! seeded.add_to(&mut request);
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // What the request left in the store.
//! let after = kit.session_for(&seeded).await?.expect("the session lives");
//! assert_eq!(after.data["visits"], 1);
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Request, Response};
use serde::Serialize;

use crate::clock::{from_ms, now_ms};
use crate::config::Settings;
use crate::csrf::token;
use crate::error::Error;
use crate::id::transport::{encode, read_id, Incoming, ReadId};
use crate::id::SessionId;
use crate::session::KeyName;
use crate::session::SECRET_KEY;
use crate::store::{Created, Data, Owner, Record, SessionStore};

/// Seeds and reads sessions of one [`SessionLayer`](crate::SessionLayer), in its store and with
/// its cookie settings (name, signing or encryption, id header). From
/// [`SessionLayer::test_sessions`](crate::SessionLayer::test_sessions).
#[derive(Clone)]
pub struct TestSessions {
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for TestSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSessions")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl TestSessions {
    pub(crate) fn new(store: Arc<dyn SessionStore>, settings: Arc<Settings>) -> Self {
        Self { store, settings }
    }

    /// Starts a session to put in the store.
    pub fn seed(&self) -> Seed<'_> {
        Seed {
            kit: self,
            data: Ok(Data::new()),
            owner: None,
        }
    }

    /// The stored session a response's `Set-Cookie` (or id header) names; `None` if the
    /// response names none or the session is gone.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed.
    pub async fn session_of<B>(&self, response: &Response<B>) -> Result<Option<Record>, Error> {
        let mut headers = HeaderMap::new();
        let name = &self.settings.cookie_name;
        for set_cookie in response.headers().get_all(header::SET_COOKIE) {
            let Ok(text) = set_cookie.to_str() else {
                continue;
            };
            let pair = text.split(';').next().unwrap_or_default();
            if pair.split_once('=').is_some_and(|(n, _)| n.trim() == name) {
                if let Ok(value) = HeaderValue::from_str(pair) {
                    headers.insert(header::COOKIE, value);
                }
            }
        }
        if let Some(id_header) = &self.settings.header {
            if let Some(value) = response.headers().get(id_header) {
                headers.insert(id_header.clone(), value.clone());
            }
        }
        self.load(&headers).await
    }

    /// The stored session `seeded` started, as it is now.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store failed.
    pub async fn session_for(&self, seeded: &SeededSession) -> Result<Option<Record>, Error> {
        Ok(self.store.load(&seeded.id.store_key()).await?)
    }

    async fn load(&self, headers: &HeaderMap) -> Result<Option<Record>, Error> {
        let incoming = Incoming::capture(headers, &self.settings);
        match read_id(&self.settings, &incoming) {
            ReadId::Valid { id, .. } => Ok(self.store.load(&id.store_key()).await?),
            ReadId::Absent | ReadId::Rejected(_) => Ok(None),
        }
    }
}

/// A session being seeded: values and an optional principal. See [`TestSessions::seed`].
#[derive(Debug)]
pub struct Seed<'a> {
    kit: &'a TestSessions,
    data: Result<Data, Error>,
    owner: Option<Owner>,
}

impl Seed<'_> {
    /// Adds the value `value` under `key`: a name, or a typed
    /// [`SessionKey`](crate::SessionKey).
    #[must_use]
    pub fn with<T: Serialize>(mut self, key: impl KeyName<T>, value: T) -> Self {
        let key = key.key_name();
        if let Ok(data) = &mut self.data {
            match serde_json::to_value(value) {
                Ok(value) => {
                    data.insert(key.to_owned(), value);
                }
                Err(source) => {
                    self.data = Err(Error::Serialize {
                        key: key.to_owned(),
                        source,
                    })
                }
            }
        }
        self
    }

    /// Ties the session to `principal`, as [`Session::log_in`](crate::Session::log_in) does.
    #[must_use]
    pub fn logged_in(mut self, principal: impl Into<String>) -> Self {
        self.owner = Some(Owner::new(principal));
        self
    }

    /// Ties the session to `principal` with a label, as
    /// [`Session::log_in_with_label`](crate::Session::log_in_with_label) does.
    #[must_use]
    pub fn logged_in_with_label(
        mut self,
        principal: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        self.owner = Some(Owner::new(principal).with_label(label));
        self
    }

    /// Puts the session in the store, with the layer's default lifetime.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if a value could not be turned into JSON; [`Error::Store`] if the
    /// store failed.
    pub async fn create(self) -> Result<SeededSession, Error> {
        let mut data = self.data?;
        // As a session that has shown a form has: tests can post one with a valid token.
        let csrf_secret = token::new_secret().map_err(|error| {
            Error::Store(crate::error::StoreError::backend(format!(
                "the system's random source failed: {error}"
            )))
        })?;
        data.insert(SECRET_KEY.to_owned(), csrf_secret.clone().into());
        let settings = &self.kit.settings;
        let created_at = now_ms();
        let absolute = settings.deadlines.absolute(&Default::default());
        let expires_at =
            settings
                .deadlines
                .expires_at(settings.expiry, absolute, created_at, created_at);
        let mut record =
            Record::new(data, from_ms(expires_at)).with_created_at(from_ms(created_at));
        record.owner = self.owner;
        loop {
            let id = SessionId::generate();
            if self.kit.store.create(&id.store_key(), &record).await? == Created::Done {
                let value = encode(settings, &id).into_owned();
                return Ok(SeededSession {
                    cookie: format!("{}={value}", settings.cookie_name),
                    header: settings.header.clone().map(|name| (name, value)),
                    id,
                    csrf_secret,
                });
            }
        }
    }
}

/// A session put in the store by [`Seed::create`], and what a request needs to carry it.
#[derive(Clone)]
pub struct SeededSession {
    id: SessionId,
    cookie: String,
    header: Option<(http::HeaderName, String)>,
    csrf_secret: String,
}

impl std::fmt::Debug for SeededSession {
    /// Without the cookie's and header's values: with plain cookies they are the id itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededSession")
            .field("id", &self.id)
            .field("header", &self.header.as_ref().map(|(name, _)| name))
            .finish_non_exhaustive()
    }
}

impl SeededSession {
    /// `name=value`, for a `Cookie` header (signed or encrypted as the layer does it).
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// A CSRF token of the session, as [`Session::csrf_token`](crate::Session::csrf_token)
    /// gives a page: for a test's form post through [`CsrfLayer`](crate::CsrfLayer). (A seeded
    /// session has a CSRF secret, as a session that has shown a form has; a `log_in` or
    /// `cycle_id` replaces it.)
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the system's random source failed.
    pub fn csrf_token(&self) -> Result<String, Error> {
        let failed = |detail: String| Error::Store(crate::error::StoreError::backend(detail));
        token::mask(&self.csrf_secret)
            .map_err(|error| failed(format!("the system's random source failed: {error}")))?
            .ok_or_else(|| failed("the seeded CSRF secret is malformed".to_owned()))
    }

    /// Adds the session to `request`: its `Cookie` header, and the id header if the layer reads
    /// one.
    pub fn add_to<B>(&self, request: &mut Request<B>) {
        if let Ok(value) = HeaderValue::from_str(&self.cookie) {
            request.headers_mut().append(header::COOKIE, value);
        }
        if let Some((name, value)) = &self.header {
            if let Ok(value) = HeaderValue::from_str(value) {
                request.headers_mut().insert(name.clone(), value);
            }
        }
    }
}
