//! A visit counter with its sessions in PostgreSQL.
//!
//! ```text
//! DATABASE_URL=postgres://user:password@127.0.0.1:5432/database \
//!     cargo run --example postgres --features postgres
//! ```
//!
//! Then open the printed URL and reload: the count goes up. Start a second instance on another
//! port (`PORT=3001`) against the same database and open it in the same browser: it sees the
//! same session. `/logout` ends the session. Look at what is stored with
//! `psql "$DATABASE_URL" -c "SELECT key, data, expires_at FROM sessionware_sessions"`: the key
//! is a SHA-256 of the cookie, never the cookie itself.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::{response::Html, routing::get, Router};
use sessionware::store::PurgeTask;
use sessionware::{Error, PostgresStore, Session, SessionLayer};

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
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "DATABASE_URL is not set. Start PostgreSQL (for example `docker run --rm -p 5432:5432 \
             -e POSTGRES_PASSWORD=secret postgres`) and run\n  \
             DATABASE_URL=postgres://postgres:secret@127.0.0.1:5432/postgres cargo run --example postgres --features postgres"
        );
        return ExitCode::from(2);
    };
    // The URL may hold a password: it is never printed.
    let store = match PostgresStore::connect(&url).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot connect to the PostgreSQL at DATABASE_URL: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Creates the table on the first run; does nothing afterwards (safe with several instances).
    if let Err(e) = store.migrate().await {
        eprintln!("cannot create the sessions table: {e}");
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
    println!("sessionware postgres example: open http://{addr}/");
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
