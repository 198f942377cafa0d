//! The logged-in principal and the app's user as extractors: [`LoggedIn`], [`CurrentUser`],
//! and the trait an app implements to load its user, [`FromPrincipal`].

use std::future::Future;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::error::Error;
use crate::session::{Session, SessionRejection};

const NOT_LOGGED_IN: &str = "Unauthorized: this resource needs a logged-in session. Log in first.";

/// The principal the request's session is logged in as ([`Session::log_in`]). Rejected with
/// `401` when nobody is; `Option<LoggedIn>` is `None` then instead.
///
/// ```
/// use axum::{body::Body, http::{header, Request}, routing::get, Router};
/// use sessionware::auth::LoggedIn;
/// use sessionware::{Error, MemoryStore, Session, SessionLayer};
/// use tower::ServiceExt;
///
/// async fn me(LoggedIn(principal): LoggedIn) -> String {
///     principal
/// }
///
/// async fn home(user: Option<LoggedIn>) -> String {
///     user.map_or_else(|| "hello, stranger".to_owned(), |LoggedIn(p)| format!("hello, {p}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let app = Router::new()
///     .route("/me", get(me))
///     .route("/", get(home))
///     .route("/login", get(|s: Session| async move { s.log_in("ann").await }))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// let get = |path: &str, cookie: Option<&str>| {
///     let mut request = Request::get(path);
///     if let Some(cookie) = cookie {
///         request = request.header(header::COOKIE, cookie);
///     }
///     app.clone().oneshot(request.body(Body::empty()).unwrap())
/// };
/// let body = |r: axum::response::Response| axum::body::to_bytes(r.into_body(), 64);
///
/// assert_eq!(get("/me", None).await.unwrap().status(), 401);
/// assert_eq!(body(get("/", None).await.unwrap()).await.unwrap(), "hello, stranger");
/// let login = get("/login", None).await.unwrap();
/// let cookie = login.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
/// assert_eq!(body(get("/me", Some(&cookie)).await.unwrap()).await.unwrap(), "ann");
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn(pub String);

/// Why [`LoggedIn`] could not be extracted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggedInRejection {
    /// Nobody is logged in to the session: `401`.
    #[error("{NOT_LOGGED_IN}")]
    NotLoggedIn,
    /// The route is not behind a [`SessionLayer`](crate::SessionLayer): `500`.
    #[error(transparent)]
    Missing(SessionRejection),
    /// Loading the session failed: `500`.
    #[error(transparent)]
    Failed(Error),
}

impl IntoResponse for LoggedInRejection {
    fn into_response(self) -> Response {
        match self {
            LoggedInRejection::NotLoggedIn => {
                (StatusCode::UNAUTHORIZED, NOT_LOGGED_IN).into_response()
            }
            LoggedInRejection::Missing(missing) => missing.into_response(),
            LoggedInRejection::Failed(error) => error.into_response(),
        }
    }
}

/// The session's principal, if any: what both extractors start from.
async fn principal<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<(Session, Option<String>), LoggedInRejection> {
    let session = <Session as FromRequestParts<S>>::from_request_parts(parts, state)
        .await
        .map_err(LoggedInRejection::Missing)?;
    let principal = session
        .principal()
        .await
        .map_err(LoggedInRejection::Failed)?;
    Ok((session, principal))
}

impl<S: Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = LoggedInRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match principal(parts, state).await? {
            (_, Some(principal)) => Ok(LoggedIn(principal)),
            (_, None) => Err(LoggedInRejection::NotLoggedIn),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for LoggedIn {
    type Rejection = LoggedInRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(principal(parts, state).await?.1.map(LoggedIn))
    }
}

/// Loads the app's user for a principal: what [`CurrentUser`] extracts. Implemented with a
/// plain `async fn`, as axum's `FromRequestParts` is; `S` is the router's state (the app's
/// database pool, say).
///
/// `Ok(None)` means the user is gone (deleted or disabled): [`CurrentUser`] then ends the
/// session and answers `401`. An `Err` is the app's own rejection, answered as it is.
///
/// ```
/// use axum::http::StatusCode;
/// use sessionware::auth::FromPrincipal;
///
/// #[derive(Clone)]
/// struct User {
///     name: String,
/// }
///
/// #[derive(Clone)]
/// struct AppState {
///     users: std::sync::Arc<std::collections::HashMap<String, User>>,
/// }
///
/// impl FromPrincipal<AppState> for User {
///     type Rejection = StatusCode;
///
///     async fn from_principal(principal: &str, state: &AppState) -> Result<Option<Self>, StatusCode> {
///         Ok(state.users.get(principal).cloned())
///     }
/// }
/// ```
pub trait FromPrincipal<S>: Sized {
    /// What a failed load answers (a database error, say).
    type Rejection: IntoResponse + Send;

    /// The user `principal` names, or `None` if there is none (any more).
    fn from_principal(
        principal: &str,
        state: &S,
    ) -> impl Future<Output = Result<Option<Self>, Self::Rejection>> + Send;
}

/// The app's user for the request's logged-in session, loaded through [`FromPrincipal`] with
/// the router's state. Loaded once per request, however many extractors ask (kept in the
/// request's extensions).
///
/// Rejected with `401` when nobody is logged in, and when the user is gone: then the session
/// is ended too (deleted in the store, a removal cookie sent), so a deleted or disabled
/// account's sessions stop at their next request.
///
/// ```
/// use axum::{body::Body, extract::State, http::{header, Request, StatusCode}, routing::get, Router};
/// use sessionware::auth::{CurrentUser, FromPrincipal};
/// use sessionware::{MemoryStore, Session, SessionLayer};
/// use std::{collections::HashMap, sync::{Arc, Mutex}};
/// use tower::ServiceExt;
///
/// #[derive(Clone)]
/// struct User { name: String }
///
/// #[derive(Clone, Default)]
/// struct AppState { users: Arc<Mutex<HashMap<String, User>>> }
///
/// impl FromPrincipal<AppState> for User {
///     type Rejection = StatusCode;
///     async fn from_principal(principal: &str, state: &AppState) -> Result<Option<Self>, StatusCode> {
///         Ok(state.users.lock().unwrap().get(principal).cloned())
///     }
/// }
///
/// async fn account(CurrentUser(user): CurrentUser<User>) -> String {
///     user.name
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let state = AppState::default();
/// state.users.lock().unwrap().insert("u1".into(), User { name: "Ann".into() });
/// let app = Router::new()
///     .route("/account", get(account))
///     .route("/login", get(|s: Session| async move { s.log_in("u1").await }))
///     .layer(SessionLayer::new(MemoryStore::default()))
///     .with_state(state.clone());
/// let login = app.clone().oneshot(Request::get("/login").body(Body::empty()).unwrap()).await.unwrap();
/// let cookie = login.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
/// let account = || Request::get("/account").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
///
/// let response = app.clone().oneshot(account()).await.unwrap();
/// assert_eq!(axum::body::to_bytes(response.into_body(), 64).await.unwrap(), "Ann");
///
/// // The account is deleted: the session ends with it.
/// state.users.lock().unwrap().clear();
/// let response = app.clone().oneshot(account()).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert!(response.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CurrentUser<U>(pub U);

/// The user a [`CurrentUser`] loaded, kept in the request for the next extractor that asks.
#[derive(Clone)]
struct Loaded<U>(U);

/// Why [`CurrentUser`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum CurrentUserRejection<R> {
    /// Nobody is logged in, or the user is gone (the session was ended): `401`.
    NotLoggedIn,
    /// The route is not behind a [`SessionLayer`](crate::SessionLayer): `500`.
    Missing(SessionRejection),
    /// Loading or ending the session failed: `500`.
    Failed(Error),
    /// [`FromPrincipal::from_principal`] failed: its rejection.
    App(R),
}

impl<R: IntoResponse> IntoResponse for CurrentUserRejection<R> {
    fn into_response(self) -> Response {
        match self {
            CurrentUserRejection::NotLoggedIn => {
                (StatusCode::UNAUTHORIZED, NOT_LOGGED_IN).into_response()
            }
            CurrentUserRejection::Missing(missing) => missing.into_response(),
            CurrentUserRejection::Failed(error) => error.into_response(),
            CurrentUserRejection::App(rejection) => rejection.into_response(),
        }
    }
}

impl<R> From<LoggedInRejection> for CurrentUserRejection<R> {
    fn from(rejection: LoggedInRejection) -> Self {
        match rejection {
            LoggedInRejection::NotLoggedIn => CurrentUserRejection::NotLoggedIn,
            LoggedInRejection::Missing(missing) => CurrentUserRejection::Missing(missing),
            LoggedInRejection::Failed(error) => CurrentUserRejection::Failed(error),
        }
    }
}

impl<S, U> FromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: FromPrincipal<S> + Clone + Send + Sync + 'static,
{
    type Rejection = CurrentUserRejection<U::Rejection>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(Loaded(user)) = parts.extensions.get::<Loaded<U>>() {
            return Ok(CurrentUser(user.clone()));
        }
        let (session, principal) = principal(parts, state).await?;
        let principal = principal.ok_or(CurrentUserRejection::NotLoggedIn)?;
        match U::from_principal(&principal, state).await {
            Ok(Some(user)) => {
                parts.extensions.insert(Loaded(user.clone()));
                Ok(CurrentUser(user))
            }
            Ok(None) => {
                tracing::info!("the session's user is gone (deleted or disabled); ending it");
                session
                    .destroy()
                    .await
                    .map_err(CurrentUserRejection::Failed)?;
                Err(CurrentUserRejection::NotLoggedIn)
            }
            Err(rejection) => Err(CurrentUserRejection::App(rejection)),
        }
    }
}
