//! A session used after the response: a WebSocket that counts its messages in the session.
//!
//! The layer saves a session at the end of the request, before the response leaves. A WebSocket
//! handler runs after that (the `101 Switching Protocols` response is already out), so it saves
//! its own changes with `session.save()`, and keeps a long-open socket's session alive with
//! `session.touch()`. Changes made there and never saved are reported by a `tracing` warning.
//!
//! ```text
//! cargo run --example websocket
//! # then, in a browser's console on http://127.0.0.1:3000/ :
//! #   let ws = new WebSocket("ws://127.0.0.1:3000/ws"); ws.onmessage = e => console.log(e.data);
//! #   ws.send("hello")   // "1 message(s) in this session"
//! # and reload http://127.0.0.1:3000/ to see the count the socket saved.
//! ```

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sessionware::{Error, MemoryStore, Session, SessionLayer};

/// The page: how many messages this browser's sockets have sent so far.
async fn count(session: Session) -> Result<String, Error> {
    let n: Option<u64> = session.get("messages").await?;
    if n.is_none() {
        // Saved with this response, so the socket below has a session (and a cookie) to use:
        // after the response, a new session's id could no longer reach the browser.
        session.insert("messages", 0_u64).await?;
    }
    Ok(format!("{} message(s) in this session", n.unwrap_or(0)))
}

async fn ws(upgrade: WebSocketUpgrade, session: Session) -> Response {
    upgrade.on_upgrade(move |socket| count_messages(socket, session))
}

/// Runs after the upgrade response: every change is saved here, by the socket itself.
async fn count_messages(mut socket: WebSocket, session: Session) {
    while let Some(Ok(message)) = socket.recv().await {
        if !matches!(message, Message::Text(_) | Message::Binary(_)) {
            continue;
        }
        // `update` writes at once (and loses no count if two sockets of the browser race);
        // `touch` keeps the session from expiring under a socket that stays open for hours.
        let reply = match session
            .update("messages", |n: Option<u64>| n.unwrap_or(0) + 1)
            .await
        {
            Ok(n) => match session.touch().await {
                Ok(()) => format!("{n} message(s) in this session"),
                Err(error) => format!("could not extend the session: {error}"),
            },
            Err(error) => format!("could not save: {error}"),
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
}

fn app() -> Router {
    Router::new()
        .route("/", get(count))
        .route("/ws", get(ws))
        // Plain HTTP on localhost for the demo; keep `Secure` cookies in production.
        .layer(SessionLayer::new(MemoryStore::default()).with_secure(false))
}

#[tokio::main]
async fn main() {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:3000").await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on 127.0.0.1:3000: {error}");
            std::process::exit(1);
        }
    };
    println!("listening on http://127.0.0.1:3000/");
    if let Err(error) = axum::serve(listener, app()).await {
        eprintln!("server error: {error}");
    }
}
