//! A visit counter with its sessions in Redis.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example redis --features redis
//! ```
//!
//! Then open the printed URL and reload: the count goes up. Start a second instance on another
//! port (`PORT=3001`) against the same Redis and open it in the same browser: it sees the same
//! session. `/logout` ends the session. Look at what is stored with
//! `redis-cli --scan --pattern 'sessionware:*'` and `redis-cli hgetall <key>`.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::{response::Html, routing::get, Router};
use sessionware::{Error, RedisStore, Session, SessionLayer};

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
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!(
            "REDIS_URL is not set. Start Redis (for example `docker run --rm -p 6379:6379 redis`) and run\n  \
             REDIS_URL=redis://127.0.0.1:6379 cargo run --example redis --features redis"
        );
        return ExitCode::from(2);
    };
    // The URL may hold a password: it is never printed, and neither is the store's error.
    let store = match RedisStore::connect(&url).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot connect to the Redis at REDIS_URL: {e}");
            return ExitCode::FAILURE;
        }
    };

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
    println!("sessionware redis example: open http://{addr}/");
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
