//! A visit counter on the in-memory store.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Then open the printed URL and reload: the count goes up. `/logout` ends the session.

use std::net::SocketAddr;

use axum::{response::Html, routing::get, Router};
use sessionware::{Error, MemoryStore, Session, SessionLayer};

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
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(counter))
        .route("/logout", get(logout))
        // Plain HTTP on localhost: a `Secure` cookie would not come back, so turn it off here.
        // Keep the default (`true`) in production, behind HTTPS.
        .layer(SessionLayer::new(MemoryStore::default()).with_secure(false));

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("sessionware quickstart: open http://{addr}/");
    axum::serve(listener, app).await
}
