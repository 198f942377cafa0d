//! [`Session`] as an axum extractor.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use super::Session;

/// Rejection of the [`Session`] extractor: the handler is not behind a
/// [`SessionLayer`](crate::SessionLayer).
///
/// This is a server misconfiguration, so the response is a `500` whose body names the fix.
///
/// ```
/// # tokio_test_block_on(async {
/// use axum::{routing::get, Router};
/// use http_body_util::BodyExt;
/// use sessionware::Session;
/// use tower::ServiceExt;
///
/// async fn handler(_: Session) {}
///
/// // Oops: no `.layer(SessionLayer::new(..))`.
/// let app = Router::new().route("/", get(handler));
/// let res = app.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
/// assert_eq!(res.status(), 500);
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// assert!(std::str::from_utf8(&body).unwrap().contains("forgot to add `SessionLayer`"));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct SessionRejection;

const MISSING: &str = "Missing request extension: `Session` was not found. \
Perhaps you forgot to add `SessionLayer` to your router (`.layer(SessionLayer::new(store))`), \
or the route is outside of it?";

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MISSING)
    }
}

impl std::error::Error for SessionRejection {}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        tracing::error!("{MISSING}");
        (StatusCode::INTERNAL_SERVER_ERROR, MISSING).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(SessionRejection)
    }
}

/// `Option<Session>`: `None` when the route is not behind a
/// [`SessionLayer`](crate::SessionLayer), for handlers shared by routes with and without
/// sessions.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use axum::{routing::get, Router};
/// use http_body_util::BodyExt;
/// use sessionware::Session;
/// use tower::ServiceExt;
///
/// async fn handler(session: Option<Session>) -> &'static str {
///     if session.is_some() { "with a session" } else { "without a session" }
/// }
///
/// let app = Router::new().route("/", get(handler));
/// let res = app.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
/// assert_eq!(res.status(), 200);
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(&body[..], b"without a session");
/// # });
/// ```
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}
