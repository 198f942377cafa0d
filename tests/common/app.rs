//! The handlers and routes most suites serve: a counter in the session, and the routes that
//! cycle or destroy it.

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use sessionware::{Error, Flashes, Level, Session, SessionLayer};

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

/// The principal the session is logged in as, `nobody` without one.
pub async fn whoami(session: Session) -> Result<String, Error> {
    Ok(session
        .principal()
        .await?
        .unwrap_or_else(|| "nobody".to_owned()))
}

/// The session's principal's sessions: `label[*]` each, oldest first, `*` marking this one.
pub async fn devices(session: Session) -> Result<String, Error> {
    let devices = session.devices().await?;
    let shown: Vec<String> = devices
        .iter()
        .map(|info| {
            let mark = if info.is_current() { "*" } else { "" };
            format!("{}{mark}", info.label().unwrap_or("?"))
        })
        .collect();
    Ok(shown.join(","))
}

/// `/plain` (never touches the session), `/read`, `/write`, `/cycle`, `/destroy`, and for
/// sessions by user `/login/{user}/{label}`, `/whoami`, `/devices` and `/others` (revoke the
/// others, answer how many).
pub fn routes() -> Router {
    Router::new()
        .route(
            "/login/{user}/{label}",
            get(
                |s: Session, Path((user, label)): Path<(String, String)>| async move {
                    s.log_in_with_label(user, label).await
                },
            ),
        )
        .route("/whoami", get(whoami))
        .route("/devices", get(devices))
        .route(
            "/others",
            get(|s: Session| async move { s.revoke_others().await.map(|n| n.to_string()) }),
        )
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

/// `/flash/{text}` (adds an info message) and `/show` (takes the messages: `level:text`, comma
/// separated, in order).
pub fn flash_routes() -> Router {
    Router::new()
        .route(
            "/flash/{text}",
            get(|s: Session, Path(text): Path<String>| async move {
                s.flash(Level::Info, text).await
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
pub fn app(layer: SessionLayer) -> Router {
    routes().layer(layer)
}
