//! The handlers and routes most suites serve: a counter in the session, and the routes that
//! cycle or destroy it.

use axum::routing::get;
use axum::Router;
use sessionware::{Error, Session, SessionLayer};

/// The session's counter (`0` without one).
pub async fn read(session: Session) -> Result<String, Error> {
    Ok(session
        .get::<i64>("counter")
        .await?
        .unwrap_or(0)
        .to_string())
}

/// Increments the session's counter and answers the new value (`1` for a new session).
pub async fn write(session: Session) -> Result<String, Error> {
    let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", n).await?;
    Ok(n.to_string())
}

/// `/plain` (never touches the session), `/read`, `/write`, `/cycle` and `/destroy`.
pub fn routes() -> Router {
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/read", get(read))
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

/// [`routes`] behind `layer`.
pub fn app(layer: SessionLayer) -> Router {
    routes().layer(layer)
}
