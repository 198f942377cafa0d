//! The layer through a real axum `Router`: what a request pays for sessions.
//!
//! - `plain/*`: a route that never touches the session (no cookie, and a cookie that is never
//!   parsed);
//! - `read/{plain,signed,private}`: parse and verify the cookie, load, no write;
//! - `write/{plain,signed,private}`: the same plus `insert` and a saved change set;
//! - `new_session`: a cookieless `/write`, a session created per request.
//!
//! ```text
//! cargo bench --bench layer
//! ```

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use sessionware::{Key, MemoryStore, SessionLayer};
use tower::ServiceExt;

// The tests' handlers, so that the bench measures the code the tests check.
#[path = "../tests/common/mod.rs"]
mod common;

/// The handlers behind `layer`. Not `common::app`: its extra routes would add to the routing
/// measured.
fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/read", get(common::read))
        .route("/write", get(common::write))
        .layer(layer)
}

/// `GET path`, and the cookie set if any. Not `common::send`: it reads the whole body and copies
/// the headers, work the bench would measure.
async fn call(app: &Router, path: &str, cookie: Option<&str>) -> Option<String> {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(res.status().is_success());
    res.headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("layer");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));

    let bare = Router::new().route("/plain", get(|| async { "ok" }));
    group.bench_function("plain/without_layer", |b| {
        b.to_async(&rt).iter(|| call(&bare, "/plain", None));
    });
    // A layer that does nothing: what any middleware costs in axum (boxing of the route).
    let noop = Router::new()
        .route("/plain", get(|| async { "ok" }))
        .layer(tower::layer::layer_fn(|inner| {
            tower::util::MapRequest::new(inner, |req: Request<Body>| req)
        }));
    group.bench_function("plain/noop_layer", |b| {
        b.to_async(&rt).iter(|| call(&noop, "/plain", None));
    });
    let plain = app(SessionLayer::new(MemoryStore::default()));
    group.bench_function("plain/no_cookie", |b| {
        b.to_async(&rt).iter(|| call(&plain, "/plain", None));
    });
    let cookie = rt.block_on(call(&plain, "/write", None)).unwrap();
    group.bench_function("plain/with_cookie", |b| {
        b.to_async(&rt)
            .iter(|| call(&plain, "/plain", Some(&cookie)));
    });

    for protection in ["plain", "signed", "private"] {
        let layer = SessionLayer::new(MemoryStore::default());
        let layer = match protection {
            "signed" => layer.with_signed(Key::generate()),
            "private" => layer.with_private(Key::generate()),
            _ => layer,
        };
        let app = app(layer);
        let cookie = rt.block_on(call(&app, "/write", None)).unwrap();
        group.bench_function(format!("read/{protection}"), |b| {
            b.to_async(&rt).iter(|| call(&app, "/read", Some(&cookie)));
        });
        group.bench_function(format!("write/{protection}"), |b| {
            b.to_async(&rt).iter(|| call(&app, "/write", Some(&cookie)));
        });
    }

    group.bench_function("new_session", |b| {
        b.to_async(&rt).iter(|| call(&plain, "/write", None));
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
