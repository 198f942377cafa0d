//! A visit counter with its sessions in an SQLite file.
//!
//! ```text
//! cargo run --example sqlite --features sqlite
//! ```
//!
//! Then open the printed URL and reload: the count goes up. Stop the server and start it again:
//! the session survives, because it lives in `sessionware-example.db` (set `SQLITE_URL`, for
//! example `SQLITE_URL=sqlite://other.db?mode=rwc`, to use another file). `/logout` ends the
//! session. Look at what is stored with
//! `sqlite3 sessionware-example.db "SELECT key, data, expires_at FROM sessionware_sessions"`:
//! the key is a SHA-256 of the cookie, never the cookie itself.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::{response::Html, routing::get, Router};
use sessionware::store::PurgeTask;
use sessionware::{Error, Session, SessionLayer, SqliteStore};

async fn counter(session: Session) -> Result<Html<String>, Error> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(Html(format!(
        "<p>You have been here {visits} time(s).</p><p><a href=\"/\">reload</a> · <a href=\"/logout\">log out</a></p>"
    )))
}

async fn logout(session: Session) -> Result<Html<&'static str>, Error> {
    session.destroy().await?;
    Ok(Html(
        "<p>Session ended.</p><p><a href=\"/\">start again</a></p>",
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    // `mode=rwc` creates the file if it does not exist yet.
    let url = std::env::var("SQLITE_URL")
        .unwrap_or_else(|_| "sqlite://sessionware-example.db?mode=rwc".to_owned());
    let store = match SqliteStore::connect(&url).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open the SQLite database {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Creates the table on the first run; does nothing afterwards.
    if let Err(e) = store.migrate().await {
        eprintln!("cannot create the sessions table in {url}: {e}");
        return ExitCode::FAILURE;
    }
    // Expired sessions are never served; this reclaims their rows every 10 minutes.
    let purge = PurgeTask::spawn(store.clone(), Duration::from_secs(600));

    let app = Router::new()
        .route("/", get(counter))
        .route("/logout", get(logout))
        // Plain HTTP on localhost: a `Secure` cookie would not come back, so turn it off here.
        // Keep the default (`true`) in production, behind HTTPS.
        .layer(SessionLayer::new(store).with_secure(false));

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("sessionware sqlite example (sessions in {url}): open http://{addr}/");
    let served = axum::serve(listener, app).await;
    if let Err(e) = purge.stop().await {
        eprintln!("{e}");
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
