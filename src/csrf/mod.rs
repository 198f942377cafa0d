//! CSRF protection bound to the session: [`CsrfLayer`] refuses state-changing requests that do
//! not carry a token of their session ([`Session::csrf_token`](crate::Session::csrf_token)).
//!
//! This is the [OWASP synchronizer token pattern]: the session holds a random secret; pages put
//! a token derived from it in their forms (a hidden `csrf_token` field) or send it in an
//! `X-CSRF-Token` header; the layer checks that every `POST`, `PUT`, `PATCH` and `DELETE`
//! carries one that matches the session of the request, and answers `403 Forbidden` with a
//! body that names what is missing otherwise. `GET`, `HEAD`, `OPTIONS` and `TRACE` pass
//! unchecked: they must not change state. See SECURITY.md for how this combines with the
//! session cookie's `SameSite=Lax`.
//!
//! The layer goes inside [`SessionLayer`](crate::SessionLayer) (it needs the session):
//! `.layer(CsrfLayer::new()).layer(SessionLayer::new(store))`. For a form body
//! (`application/x-www-form-urlencoded`, up to 64 KiB by default) it reads the field and hands
//! the handler the body unchanged; for other bodies (JSON, multipart) send the header.
//!
//! [OWASP synchronizer token pattern]: https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html#synchronizer-token-pattern
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, http::{header, Request, StatusCode}, response::Html};
//! use axum::routing::{get, post};
//! use axum::Router;
//! use sessionware::{CsrfLayer, Error, MemoryStore, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn form(session: Session) -> Result<Html<String>, Error> {
//!     let token = session.csrf_token().await?;
//!     Ok(Html(format!(r#"<form method="post"><input type="hidden" name="csrf_token" value="{token}"></form>"#)))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = Router::new()
//!     .route("/", get(form).post(|| async { "saved" }))
//!     .layer(CsrfLayer::new())
//!     .layer(SessionLayer::new(MemoryStore::default()));
//!
//! // The page: a session, and a token in the form.
//! let page = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! let cookie = page.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
//! let html = axum::body::to_bytes(page.into_body(), 4096).await.unwrap();
//! let html = String::from_utf8(html.to_vec()).unwrap();
//! let token = html.split("value=\"").nth(1).unwrap().split('"').next().unwrap();
//!
//! let post = |body: String| {
//!     Request::post("/")
//!         .header(header::COOKIE, &cookie)
//!         .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
//!         .body(Body::from(body))
//!         .unwrap()
//! };
//! let ok = app.clone().oneshot(post(format!("csrf_token={token}&x=1"))).await.unwrap();
//! assert_eq!(ok.status(), StatusCode::OK);
//! let forged = app.oneshot(post("x=1".into())).await.unwrap();
//! assert_eq!(forged.status(), StatusCode::FORBIDDEN);
//! # });
//! ```

mod layer;
mod service;
pub(crate) mod token;

pub use layer::CsrfLayer;
pub use service::CsrfService;
