//! One request helper: `GET path` (with an optional raw `Cookie` header) or any request,
//! through a router, and the [`Reply`] a test looks at.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// What a test looks at in a response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The single `Set-Cookie` header, if there is exactly one.
    pub fn set_cookie(&self) -> Option<String> {
        let all = self.set_cookies();
        assert!(all.len() <= 1, "more than one Set-Cookie: {all:?}");
        all.into_iter().next()
    }

    /// `name=value` of the cookie set, ready for a `Cookie` header.
    pub fn cookie(&self) -> String {
        let set = self.set_cookie().expect("a Set-Cookie header");
        set.split(';').next().unwrap().to_owned()
    }

    /// `name=value` of the first `Set-Cookie` header, if any (without checking that it is the
    /// only one).
    pub fn first_cookie(&self) -> Option<String> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
    }
}

/// Sends `GET path` with an optional raw `Cookie` header.
pub async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

/// [`send`], checking that the answer is `200 OK`.
pub async fn send_ok(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let reply = send(app, path, cookie).await;
    assert_eq!(reply.status, 200, "{path}");
    reply
}

/// [`send`], or `None` if the answer, body included, took longer than `bound`.
pub async fn send_within(
    app: &Router,
    path: &str,
    cookie: Option<&str>,
    bound: Duration,
) -> Option<Reply> {
    tokio::time::timeout(bound, send(app, path, cookie))
        .await
        .ok()
}

/// Sends `req` through `app` (`oneshot` on a clone: the same router and store every time).
pub async fn send_request(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}
