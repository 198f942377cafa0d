//! The session middleware: [`SessionLayer`], [`SessionService`] and [`ResponseFuture`].
//!
//! # Request flow
//!
//! 1. The layer keeps the request's cookie (and, if configured, id header) as raw bytes and puts
//!    a [`Session`](crate::Session) into the request extensions. No parsing, no crypto, no store
//!    call yet.
//! 2. The first data call in the handler verifies the id (signature or decryption with the
//!    current key, then the previous ones), checks its format, and loads the session: one store
//!    call. An unknown, expired, destroyed, malformed or tampered id gives a fresh, empty
//!    session, which gets a new random id if it is saved: a client-chosen id is never adopted.
//! 3. After the handler, before the response leaves:
//!    - untouched session: nothing happens;
//!    - a `5xx` response: pending changes are dropped, but a `destroy` still happens (a logout
//!      never fails open);
//!    - destroyed: deleted from the store, removal cookie;
//!    - new session with data: created under a fresh id (insert-if-absent), cookie set;
//!    - changed session: the change set is applied atomically, only if the session still exists
//!      and has not expired (a racing destroy or login wins: nothing is written, and the
//!      cookie is left alone, so a new id set by that login stays);
//!    - read-only session: the idle deadline is extended when a quarter of the idle period has
//!      passed, and the cookie's `Max-Age` refreshed with it;
//!    - a store failure: the response becomes a `500` (or what
//!      [`with_error_handler`](SessionLayer::with_error_handler) returns) and the error is logged.
//!
//! # Example
//!
//! The defaults: cookie `id`, `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request};
//! use sessionware::{Error, MemoryStore, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn count(session: Session) -> Result<String, Error> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", n).await?;
//!     Ok(n.to_string())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = Router::new()
//!     .route("/", get(count))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//!
//! let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
//! assert!(cookie.starts_with("id="));
//! assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
//! assert!(cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
//! # });
//! ```
//!
//! # Customised
//!
//! A signed cookie with another name, rolling 30-minute expiry, a 12-hour absolute cap, key
//! rotation, the id also in a header for API clients, and a custom error page.
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Body, response::IntoResponse, routing::get, Router};
//! use http::{header, HeaderName, Request, StatusCode};
//! use sessionware::{Expiry, Key, MemoryStore, SameSite, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! # let old_key = Key::generate();
//! let layer = SessionLayer::new(MemoryStore::default())
//!     .with_cookie_name("__Host-session")
//!     .with_same_site(SameSite::Strict)
//!     .with_expiry(Expiry::OnInactivity(Duration::from_secs(30 * 60)))
//!     .with_absolute_timeout(Duration::from_secs(12 * 3600))
//!     .with_signed(Key::generate())
//!     .with_previous_keys([old_key])
//!     .with_header(HeaderName::from_static("x-session"))
//!     .with_error_handler(|_| (StatusCode::SERVICE_UNAVAILABLE, "try again soon").into_response());
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = Router::new()
//!     .route("/", get(|s: Session| async move { s.insert("seen", true).await.unwrap() }))
//!     .layer(layer);
//! let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
//! assert!(cookie.starts_with("__Host-session="));
//! assert!(cookie.contains("Max-Age=1800") && cookie.contains("SameSite=Strict"));
//! assert!(res.headers().contains_key("x-session"));
//! # });
//! ```
//!
//! # Around the whole router
//!
//! `Router::layer` wraps each route that exists when it is called, and axum boxes every
//! wrapped route anew: each request through it pays one more boxed service clone and one boxed
//! future. A [`SessionLayer`] applied to the [`Router`] itself, as tower-http's
//! layers can be, runs once per request before routing instead, on every request (unmatched
//! paths and fallbacks included; being lazy, it costs them no store call and no cookie). On
//! the project's benchmark this saves about 650 of the 14,500 instructions a request to a route
//! that ignores the session costs (README, Performance). Serve it with
//! [`into_make_service`]:
//!
//! ```
//! use axum::{body::Body, extract::Request, routing::get, Router, ServiceExt};
//! use http::header;
//! use sessionware::{MemoryStore, Session, SessionLayer};
//! use tower::{Layer, ServiceExt as _};
//!
//! let router = Router::new().route(
//!     "/",
//!     get(|session: Session| async move { session.insert("seen", true).await.map(|()| "ok") }),
//! );
//! let app = SessionLayer::new(MemoryStore::default()).layer(router);
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.clone().oneshot(Request::new(Body::empty())).await.unwrap();
//! assert!(res.headers()[header::SET_COOKIE].to_str().unwrap().starts_with("id="));
//!
//! // What `axum::serve(listener, make_service)` takes.
//! let _make_service = ServiceExt::<Request>::into_make_service(app);
//! # });
//! ```
//!
//! [`Router`]: https://docs.rs/axum/0.8/axum/struct.Router.html
//! [`into_make_service`]: https://docs.rs/axum/0.8/axum/trait.ServiceExt.html#method.into_make_service

mod future;
mod service;
mod session_layer;

pub use future::ResponseFuture;
pub use service::SessionService;
pub use session_layer::SessionLayer;
