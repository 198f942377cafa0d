//! What happens to sessions, for audit logs, metrics and traces: lifecycle events
//! ([`SessionEvent`], through [`SessionLayer::on_event`](crate::SessionLayer::on_event)),
//! `metrics` counters and histograms (cargo feature `metrics`), and a `tracing` span around
//! every store call.
//!
//! # Events
//!
//! One [`SessionEvent`] per thing that happened, emitted once, after the store step it reports
//! has succeeded (a log-in whose save failed is never reported), with the principal where one
//! is known and the session's [`SessionHandle`](crate::SessionHandle) (its store key: it can
//! revoke, never log in), never the id. [`Sessions`](crate::Sessions) obtained from the layer
//! reports revocations through the same hook. The hook runs on the request's task: keep it
//! short (hand the event to a channel for slow work). A panicking hook is caught and logged;
//! it never fails the request.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use axum::{body::Body, http::Request, routing::get, Router};
//! use sessionware::events::{EventKind, SessionEvent};
//! use sessionware::{MemoryStore, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = Arc::clone(&seen);
//! let layer = SessionLayer::new(MemoryStore::default()).on_event(move |event: &SessionEvent| {
//!     // An audit log: one line per event.
//!     log.lock().unwrap().push((event.kind(), event.principal().map(str::to_owned)));
//! });
//! let app = Router::new()
//!     .route("/login", get(|s: Session| async move { s.log_in("ann").await }))
//!     .layer(layer);
//! app.oneshot(Request::get("/login").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(
//!     *seen.lock().unwrap(),
//!     [(EventKind::Created, Some("ann".to_owned())), (EventKind::LoggedIn, Some("ann".to_owned()))]
//! );
//! # });
//! ```
//!
//! # Metrics
//!
//! With the cargo feature `metrics`, sessionware records through the [`metrics`] crate's
//! facade, so any exporter works (`metrics-exporter-prometheus`, say). No label carries an id, a
//! handle or a principal.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `sessionware_sessions_created_total` | counter | | new sessions stored |
//! | `sessionware_logins_total` | counter | | log-ins (and confirmed logins) stored |
//! | `sessionware_sessions_cycled_total` | counter | | ids changed by `cycle_id` |
//! | `sessionware_sessions_destroyed_total` | counter | | log-outs (`destroy`) |
//! | `sessionware_sessions_revoked_total` | counter | | sessions ended through `Sessions`, `revoke_others` or the per-principal cap |
//! | `sessionware_session_ids_refused_total` | counter | | ids refused before any store call (malformed, tampered, duplicated) |
//! | `sessionware_session_ids_unknown_total` | counter | | well-formed ids with no live session (expired, destroyed, guessed) |
//! | `sessionware_update_conflicts_total` | counter | | `update` (or a save) gave up after its attempts |
//! | `sessionware_store_errors_total` | counter | `store`, `operation` | store calls that failed |
//! | `sessionware_store_call_duration_seconds` | histogram | `store`, `operation` | time of each store call |
//! | `sessionware_sessions_live` | gauge | `store` | sessions the store holds, where it can count cheaply (`MemoryStore`) |
//!
//! `store` is `memory`, `sqlite`, `postgres`, `redis`, `caching` or, for another store, its
//! type's name; `operation` is `load`, `create`, `apply`, `cycle`, `delete`, `list`,
//! `was_moved`.
//!
//! # Traces
//!
//! Every store call runs in a `tracing` span named `sessionware.store` (level `DEBUG`, fields
//! `store`, `operation` and `outcome`: `ok` or `error`), nested in the request's span, so an
//! OpenTelemetry subscriber shows session-store time inside each request. No field carries an
//! id, a handle or a principal.
//!
//! Without a hook, without the `metrics` feature and without a subscriber, all of this costs
//! a few instructions per store call.

mod event;
mod observer;

pub use event::{EventKind, SessionEvent};
pub(crate) use observer::{Hook, Observer, Operation};
