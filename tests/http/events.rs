//! Lifecycle events (`SessionLayer::on_event`) and store-call spans, from real requests on the
//! memory store.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use sessionware::events::{EventKind, SessionEvent};
use sessionware::{Error, MemoryStore, Session, SessionLayer, Sessions};

use crate::common::{send, send_ok};
use crate::support::{routes, Probe};

type Seen = Arc<Mutex<Vec<(EventKind, Option<String>, bool)>>>;

/// A layer on `store` whose events land in the returned list: kind, principal, whether a
/// handle came with it.
fn recording(layer: SessionLayer) -> (SessionLayer, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let layer = layer.on_event(move |event: &SessionEvent| {
        let entry = (
            event.kind(),
            event.principal().map(str::to_owned),
            event.handle().is_some(),
        );
        log.lock().unwrap().push(entry);
    });
    (layer, seen)
}

fn take(seen: &Seen) -> Vec<(EventKind, Option<String>, bool)> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn kinds(seen: &Seen) -> Vec<EventKind> {
    take(seen).into_iter().map(|(kind, _, _)| kind).collect()
}

fn app(layer: SessionLayer, sessions: Sessions) -> Router {
    routes()
        .route("/update-forever", get(|| async { "unused" }))
        .route(
            "/revoke-all/{user}",
            get(
                move |axum::extract::Path(user): axum::extract::Path<String>| {
                    let sessions = sessions.clone();
                    async move { sessions.revoke_all(&user).await.map(|n| n.to_string()) }
                },
            ),
        )
        .layer(layer)
}

#[tokio::test]
async fn each_kind_comes_from_a_real_request() {
    let layer = SessionLayer::new(MemoryStore::default())
        .with_max_sessions_per_principal(std::num::NonZeroUsize::new(2).unwrap());
    let (layer, seen) = recording(layer);
    let sessions = layer.sessions();
    let app = app(layer, sessions);

    let anonymous = send_ok(&app, "/write", None).await.cookie();
    assert_eq!(take(&seen), [(EventKind::Created, None, true)]);

    let laptop = send_ok(&app, "/login/ann/laptop", Some(&anonymous))
        .await
        .cookie();
    assert_eq!(
        take(&seen),
        [(EventKind::LoggedIn, Some("ann".to_owned()), true)]
    );

    let cycled = send_ok(&app, "/cycle", Some(&laptop)).await.cookie();
    assert_eq!(
        take(&seen),
        [(EventKind::Cycled, Some("ann".to_owned()), true)]
    );

    // The cap (2): a third log-in revokes the oldest.
    let phone = send_ok(&app, "/login/ann/phone", None).await.cookie();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let tablet = send_ok(&app, "/login/ann/tablet", None).await.cookie();
    let events = take(&seen);
    assert!(
        events.contains(&(EventKind::Revoked, Some("ann".to_owned()), true)),
        "{events:?}"
    );

    // revoke_others from a request, revoke_all through `Sessions`.
    send_ok(&app, "/others", Some(&tablet)).await;
    assert!(kinds(&seen).contains(&EventKind::Revoked));
    let again = send_ok(&app, "/login/ann/desk", None).await.cookie();
    take(&seen);
    assert_eq!(send_ok(&app, "/revoke-all/ann", None).await.body, "2");
    let revoked = take(&seen);
    assert_eq!(revoked.len(), 2, "one event per session ended: {revoked:?}");
    assert!(revoked
        .iter()
        .all(|e| *e == (EventKind::Revoked, Some("ann".to_owned()), true)));

    // Log-out, an unknown id, a refused one.
    let bob = send_ok(&app, "/login/bob/laptop", None).await.cookie();
    take(&seen);
    send_ok(&app, "/destroy", Some(&bob)).await;
    assert_eq!(
        take(&seen),
        [(EventKind::Destroyed, Some("bob".to_owned()), true)]
    );
    send_ok(&app, "/read", Some(&again)).await;
    assert_eq!(take(&seen), [(EventKind::UnknownId, None, true)]);
    send_ok(&app, "/read", Some("id=not-an-id")).await;
    assert_eq!(take(&seen), [(EventKind::RefusedId, None, false)]);
    let _ = (cycled, phone);
}

/// A store failure is reported; the log-in whose save failed is not.
#[tokio::test]
async fn a_failed_save_reports_the_error_not_the_login() {
    let probe = Probe::default();
    let (layer, seen) = recording(SessionLayer::new(probe.clone()));
    let sessions = layer.sessions();
    let app = app(layer, sessions);
    let cookie = send_ok(&app, "/write", None).await.cookie();
    take(&seen);
    probe.set_failing(true);
    assert_eq!(
        send(&app, "/login/ann/laptop", Some(&cookie)).await.status,
        500
    );
    let events = kinds(&seen);
    assert!(events.contains(&EventKind::StoreError), "{events:?}");
    assert!(!events.contains(&EventKind::LoggedIn), "{events:?}");
}

/// `update` giving up is reported as a conflict.
#[tokio::test]
async fn update_giving_up_is_a_conflict() {
    let probe = Probe::default();
    let (layer, seen) = recording(SessionLayer::new(probe.clone()));
    let app = routes()
        .route(
            "/update",
            get(|s: Session| async move {
                s.get::<i64>("n").await?;
                let result = s.update("n", |n: Option<i64>| n.unwrap_or(0) + 1).await;
                Ok::<_, Error>(matches!(result, Err(Error::Conflict { .. })).to_string())
            }),
        )
        .layer(layer);
    let cookie = send_ok(&app, "/write", None).await.cookie();
    take(&seen);
    probe.conflict.store(true, Ordering::SeqCst);
    assert_eq!(send_ok(&app, "/update", Some(&cookie)).await.body, "true");
    assert!(kinds(&seen).contains(&EventKind::Conflict));
}

/// A panicking hook is caught and logged: the request goes on.
#[tokio::test]
async fn a_panicking_hook_never_fails_the_request() {
    let layer = SessionLayer::new(MemoryStore::default())
        .on_event(|_: &SessionEvent| panic!("the audit log is down"));
    let app = routes().layer(layer);
    let reply = send(&app, "/write", None).await;
    assert_eq!(reply.status, 200);
    let cookie = reply.cookie();
    assert_eq!(send_ok(&app, "/read", Some(&cookie)).await.body, "1");
}

/// Every store call runs in a `sessionware.store` span with the store, the operation and the
/// outcome, and no span or event carries the id or the principal.
#[tokio::test(flavor = "current_thread")]
async fn store_calls_run_in_spans_without_ids() {
    use tracing_subscriber::fmt::format::FmtSpan;
    let captured = crate::common::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = routes().layer(SessionLayer::new(MemoryStore::default()));
    let reply = send_ok(&app, "/login/principal-x/laptop", None).await;
    let cookie = reply.cookie();
    send_ok(&app, "/write", Some(&cookie)).await;
    let text = captured.text();
    for operation in ["create", "load", "apply"] {
        let wanted = format!("operation=\"{operation}\"");
        assert!(
            text.lines().any(|l| l.contains("sessionware.store")
                && l.contains(&wanted)
                && l.contains("store=\"memory\"")
                && l.contains("outcome=\"ok\"")),
            "no span for {operation}:\n{text}"
        );
    }
    let id = cookie.split('=').nth(1).unwrap();
    assert!(!text.contains(id), "an id reached the logs");
    assert!(
        !text.contains("principal-x"),
        "a principal reached the logs"
    );
}
