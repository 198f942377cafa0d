//! Logins without a second crate: route guards ([`RequireLogin`]), the logged-in principal
//! ([`LoggedIn`]), the app's user ([`CurrentUser`] through [`FromPrincipal`]), recent-login
//! checks ([`RequireLogin::within`], [`Session::confirm_login`](crate::Session::confirm_login))
//! and a safe return target for the login form ([`safe_next`]).
//!
//! All of it builds on the principal a session carries after
//! [`Session::log_in`](crate::Session::log_in), and on when it logged in
//! ([`Session::authenticated_at`](crate::Session::authenticated_at)), both loaded with the
//! session: a guard costs no store call beyond the session's one load (none for a request
//! without a cookie), and writes nothing. Checking credentials, hashing passwords and
//! permissions stay the app's.
//!
//! [`RequireLogin`] goes on the routes it guards (`Router::route_layer`, so unknown paths
//! still answer `404`), or around a whole router, inside the
//! [`SessionLayer`](crate::SessionLayer):
//!
//! - `RequireLogin::new()` answers `401` (APIs);
//! - `RequireLogin::redirect_to("/login")` answers `303 See Other` to
//!   `/login?next=<the original path and query>` (pages); the login form sends the user back
//!   to [`safe_next`]`(next)` once logged in;
//! - `.within(Duration::from_secs(600))` also wants a login at most ten minutes old
//!   ("sudo mode"): the confirm-password page calls
//!   [`Session::confirm_login`](crate::Session::confirm_login). To send a visitor who is not
//!   logged in at all to the login form rather than the confirm page, stack a plain guard
//!   outside it (the last `route_layer` runs first):
//!   `.route_layer(RequireLogin::redirect_to("/confirm").within(d)).route_layer(RequireLogin::redirect_to("/login"))`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{body::Body, extract::Query, http::{header, Request, StatusCode}};
//! use axum::response::Redirect;
//! use axum::routing::{get, post};
//! use axum::Router;
//! use sessionware::auth::{safe_next, LoggedIn, RequireLogin};
//! use sessionware::{Error, MemoryStore, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! #[derive(serde::Deserialize)]
//! struct Next {
//!     next: Option<String>,
//! }
//!
//! async fn log_in(session: Session, Query(q): Query<Next>) -> Result<Redirect, Error> {
//!     // (Check the password here.)
//!     session.log_in("ann").await?;
//!     let target = q.next.as_deref().and_then(safe_next).unwrap_or("/");
//!     Ok(Redirect::to(target))
//! }
//!
//! async fn account(LoggedIn(principal): LoggedIn) -> String {
//!     format!("account of {principal}")
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = Router::new()
//!     .route("/account", get(account))
//!     .route_layer(RequireLogin::redirect_to("/login"))
//!     .merge(
//!         Router::new()
//!             .route("/api/me", get(|LoggedIn(p): LoggedIn| async move { p }))
//!             .route_layer(RequireLogin::new()),
//!     )
//!     .merge(
//!         Router::new()
//!             .route("/account/password", post(|| async { "changed" }))
//!             .route_layer(RequireLogin::redirect_to("/confirm").within(Duration::from_secs(600))),
//!     )
//!     .route("/login", post(log_in))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! let send = |request: Request<Body>| app.clone().oneshot(request);
//!
//! // Logged out: a page redirects to the login form, an API answers 401.
//! let page = send(Request::get("/account?tab=devices").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(page.status(), StatusCode::SEE_OTHER);
//! assert_eq!(page.headers()[header::LOCATION], "/login?next=%2Faccount%3Ftab%3Ddevices");
//! let api = send(Request::get("/api/me").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
//!
//! // The login form returns to the page asked for; `next=//evil.example` would be ignored.
//! let login = Request::post("/login?next=%2Faccount%3Ftab%3Ddevices").body(Body::empty()).unwrap();
//! let login = send(login).await.unwrap();
//! assert_eq!(login.headers()[header::LOCATION], "/account?tab=devices");
//! let cookie = login.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
//! let page = send(Request::get("/account").header(header::COOKIE, &cookie).body(Body::empty()).unwrap());
//! let page = page.await.unwrap();
//! assert_eq!(page.status(), StatusCode::OK);
//!
//! // A fresh login passes the recent-login check.
//! let change = Request::post("/account/password").header(header::COOKIE, &cookie).body(Body::empty());
//! assert_eq!(send(change.unwrap()).await.unwrap().status(), StatusCode::OK);
//! # });
//! ```

mod extract;
mod future;
mod layer;
mod next;
mod service;

pub use extract::{CurrentUser, CurrentUserRejection, FromPrincipal, LoggedIn, LoggedInRejection};
pub use future::ResponseFuture;
pub use layer::RequireLogin;
pub use next::safe_next;
pub use service::RequireLoginService;
