//! What the suite's layer checks send through a router: `GET path` with an optional cookie,
//! the [`Reply`] they look at, and the routes they serve.

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{Error, Flashes, Session, SessionLayer};

/// What a check looks at in a response.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

impl Reply {
    /// `name=value` of each `Set-Cookie` header.
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| {
                let text = value.to_str().expect("a Set-Cookie header that is text");
                text.split(';').next().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// `name=value` of the one cookie set (it panics unless there is exactly one).
    pub(super) fn cookie(&self) -> String {
        let all = self.cookies();
        assert_eq!(all.len(), 1, "expected one Set-Cookie header: {all:?}");
        all.into_iter().next().unwrap_or_default()
    }

    /// `name=value` of the first cookie set, if any.
    pub(super) fn first_cookie(&self) -> Option<String> {
        self.cookies().into_iter().next()
    }
}

/// Sends `GET path` through `app`, with `cookie` as the `Cookie` header.
pub(super) async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Body::empty()).expect("a valid request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a readable body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// [`send`], checking that the answer is `200 OK`.
pub(super) async fn send_ok(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let reply = send(app, path, cookie).await;
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply
}

/// Increments the session's counter and answers the new value (`1` for a new session).
pub(super) async fn write(session: Session) -> Result<String, Error> {
    let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", n).await?;
    Ok(n.to_string())
}

/// `/write`, `/cycle`, `/destroy`, `/login/{user}/{label}` and `/whoami`.
pub(super) fn routes() -> Router {
    Router::new()
        .route(
            "/login/{user}/{label}",
            get(
                |s: Session, Path((user, label)): Path<(String, String)>| async move {
                    s.log_in_with_label(user, label).await
                },
            ),
        )
        .route(
            "/whoami",
            get(|s: Session| async move {
                Ok::<_, Error>(s.principal().await?.unwrap_or_else(|| "nobody".to_owned()))
            }),
        )
        .route("/write", get(write))
        .route(
            "/cycle",
            get(|s: Session| async move { s.cycle_id().await }),
        )
        .route(
            "/destroy",
            get(|s: Session| async move { s.destroy().await }),
        )
}

/// `/flash/{text}` (adds an info message) and `/show` (takes the messages: `level:text`, comma
/// separated, in order).
pub(super) fn flash_routes() -> Router {
    Router::new()
        .route(
            "/flash/{text}",
            get(|s: Session, Path(text): Path<String>| async move {
                s.flash(crate::Level::Info, text).await
            }),
        )
        .route(
            "/show",
            get(|Flashes(messages): Flashes| async move {
                let shown: Vec<String> = messages
                    .iter()
                    .map(|m| format!("{}:{}", m.level.as_str(), m.text))
                    .collect();
                shown.join(",")
            }),
        )
}

/// [`routes`] behind `layer`.
pub(super) fn app(layer: SessionLayer) -> Router {
    routes().layer(layer)
}
