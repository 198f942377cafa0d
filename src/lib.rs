//! Server-side sessions for [axum]: a tower layer, a lazy [`Session`] extractor, and pluggable
//! stores.
//!
//! HTTP is stateless; sessions let an application remember a user between requests. The
//! [`SessionLayer`] reads (or issues) a session cookie, hands the handler a [`Session`], and
//! saves what the handler changed before the response leaves. The data lives on the server, in a
//! [`SessionStore`](store::SessionStore); the browser holds only a random id.
//!
//! New here? The [guide] goes from a first session to logins, CSRF, production stores and
//! tests, chapter by chapter, and maps tower-sessions and axum-login onto this crate.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use sessionware::{Error, MemoryStore, Session, SessionLayer};
//!
//! async fn counter(session: Session) -> Result<String, Error> {
//!     let n: i64 = session.get("counter").await?.unwrap_or(0) + 1;
//!     session.insert("counter", n).await?;
//!     Ok(format!("you have been here {n} times"))
//! }
//!
//! # async fn run() {
//! let app = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! # What it guarantees
//!
//! - **Lazy.** A request whose handler never touches the session costs no store call and sends
//!   no cookie. A read-only request sends no cookie unless it extended the idle deadline or its
//!   cookie was signed with a previous key.
//! - **Strict.** An unknown, expired, destroyed, malformed or tampered id gives a fresh session
//!   with a new random id; a client-chosen id is never adopted.
//! - **No lost writes.** Saves send per-key changes that the store applies atomically, so
//!   concurrent requests writing different keys all win. For one key that concurrent requests
//!   change, [`Session::update`] is a compare-and-set in one store step that loses no change
//!   (`insert` after `get` on one key: the last write wins).
//! - **Writes outside the request**: [`Session::save`] and [`Session::touch`] for a session
//!   moved into a WebSocket handler or a task; unsaved changes made after the response are
//!   reported (a `tracing` warning), never dropped quietly.
//! - **No resurrection.** A save applies only to a session that still exists and has not
//!   expired: a racing destroy or cycle wins.
//! - **Timeouts enforced server-side**: idle ([`Expiry`]) and absolute
//!   ([`SessionLayer::with_absolute_timeout`]), checked by the store on every load.
//! - **Ids hashed at rest.** Stores key sessions by the SHA-256 of the id ([`StoreKey`]).
//!
//! # Sessions by user
//!
//! [`Session::log_in`] gives the session a new id and ties it to a principal (your user id);
//! [`SessionLayer::sessions`] returns a [`Sessions`] handle that lists a user's sessions and
//! revokes one or all, from a handler or a background job. Sign out everywhere after a password
//! change:
//!
//! ```
//! use axum::{body::Body, extract::State, http::Request, routing::post, Router};
//! use sessionware::{Error, MemoryStore, Session, SessionLayer, Sessions};
//! use tower::ServiceExt;
//!
//! async fn log_in(session: Session) -> Result<&'static str, Error> {
//!     session.log_in("user-42").await?;
//!     Ok("welcome")
//! }
//!
//! async fn password_reset(State(sessions): State<Sessions>) -> Result<String, Error> {
//!     // The password changed: no device keeps the old login.
//!     let ended = sessions.revoke_all("user-42").await?;
//!     Ok(format!("signed out {ended} sessions"))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = SessionLayer::new(MemoryStore::default());
//! let sessions = layer.sessions();
//! let app = Router::new()
//!     .route("/login", post(log_in))
//!     .route("/reset", post(password_reset))
//!     .layer(layer)
//!     .with_state(sessions.clone());
//! let post = |uri| Request::post(uri).body(Body::empty()).unwrap();
//!
//! // Two devices log in.
//! for _ in 0..2 {
//!     app.clone().oneshot(post("/login")).await.unwrap();
//! }
//! assert_eq!(sessions.list("user-42").await?.len(), 2);
//!
//! let response = app.oneshot(post("/reset")).await.unwrap();
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(body, "signed out 2 sessions");
//! assert!(sessions.list("user-42").await?.is_empty());
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | (default) | [`SessionLayer`], [`Session`], [`MemoryStore`], [`CachingStore`](store::CachingStore), [`PurgeTask`](store::PurgeTask) |
//! | `sqlite` | `SqliteStore`: an embedded SQLite database (rusqlite, SQLite compiled in), WAL, reads in process, one writer thread with group commit |
//! | `postgres` | `PostgresStore`: PostgreSQL (sqlx), one statement per operation |
//! | `redis` | `RedisStore`: Redis, standalone or Redis Cluster (redis-rs), native TTLs |
//! | `test-kit` | [`test_kit`]: requests that start with a seeded, logged-in session; reading a response's session back |
//! | `metrics` | counters and store-call latency through the `metrics` facade (see [`events`]) |
//! | `store-conformance` | [`conformance`]: the store contract as a test suite, for a store of your own |
//!
//! [axum]: https://docs.rs/axum

#![deny(missing_docs)]
#![warn(unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
mod clock;
mod config;
#[cfg(feature = "store-conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "store-conformance")))]
pub mod conformance;
pub mod csrf;
pub mod defaults;
mod error;
pub mod events;
mod expiry;
pub mod guide;
mod id;
pub mod layer;
mod session;
mod stats;
pub mod store;
#[cfg(feature = "test-kit")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-kit")))]
pub mod test_kit;
mod user_sessions;

pub use config::ConfigError;
pub use cookie::{Key, SameSite};
pub use csrf::CsrfLayer;
pub use error::{BoxError, Error, StoreError};
pub use expiry::{Expiry, ExpirySettings};
pub use id::{SessionId, StoreKey};
pub use layer::SessionLayer;
/// The SQLite driver [`SqliteStore`] runs on (for [`SqliteStore::with_connection`]).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use rusqlite;
pub use session::{
    FlashMessage, FlashRejection, Flashes, KeyName, Level, Session, SessionKey, SessionRejection,
};
pub use stats::SessionStats;
pub use store::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "redis")]
pub use store::RedisStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use user_sessions::{InvalidHandle, SessionHandle, SessionInfo, Sessions};
