//! Baseline: no session middleware, same routes with fixed values.
use axum::{routing::get, Router};

fn main() {
    sessionware_benchmark::serve(|| async {
        Router::new()
            .route("/plain", get(sessionware_benchmark::plain))
            .route("/read", get(|| async { 0i64.to_string() }))
            .route("/write", get(|| async { 1i64.to_string() }))
            .route("/login", get(|| async { "ok" }))
    });
}
