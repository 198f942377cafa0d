//! The id in a header, for API and mobile clients.

use axum::body::Body;
use axum::http::{HeaderName, Request};
use sessionware::{Key, MemoryStore, SessionLayer};

use crate::common::{send_request, Reply};
use crate::support::app;

const HEADER: HeaderName = HeaderName::from_static("x-session-id");

async fn with_header(app: &axum::Router, path: &str, value: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(value) = value {
        req = req.header(HEADER, value);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn header_carries_the_id_alongside_the_cookie() {
    for signed in [false, true] {
        let layer = SessionLayer::new(MemoryStore::default()).with_header(HEADER);
        let layer = if signed {
            layer.with_signed(Key::generate())
        } else {
            layer
        };
        let app = app(layer);
        let first = with_header(&app, "/write", None).await;
        let id = first.headers[&HEADER].to_str().unwrap().to_owned();
        assert_eq!(first.cookie(), format!("id={id}"));

        assert_eq!(with_header(&app, "/write", Some(&id)).await.body, "2");
        assert_eq!(with_header(&app, "/read", Some(&id)).await.body, "2");
        assert_eq!(with_header(&app, "/read", Some("forged")).await.body, "0");

        let cycled = with_header(&app, "/cycle", Some(&id)).await;
        let new = cycled.headers[&HEADER].to_str().unwrap().to_owned();
        assert_ne!(new, id);
        assert_eq!(with_header(&app, "/read", Some(&new)).await.body, "2");

        let ended = with_header(&app, "/destroy", Some(&new)).await;
        assert_eq!(ended.headers[&HEADER], "");
        assert_eq!(with_header(&app, "/read", Some(&new)).await.body, "0");
    }
}

#[tokio::test]
async fn header_is_ignored_unless_configured() {
    let app = app(SessionLayer::new(MemoryStore::default()));
    let first = with_header(&app, "/write", None).await;
    assert!(!first.headers.contains_key(&HEADER));
    let id = first.cookie().trim_start_matches("id=").to_owned();
    assert_eq!(with_header(&app, "/read", Some(&id)).await.body, "0");
}
