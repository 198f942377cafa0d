//! Sessions by user through the layer: `log_in`, `principal`, `devices`, `revoke_others`, the
//! `Sessions` handle and the per-principal cap, on the memory store (the store side of each runs
//! against every store in the conformance suite).

use std::num::NonZeroUsize;

use axum::http::StatusCode;
use axum::routing::get;
use sessionware::store::CachingStore;
use sessionware::{Error, MemoryStore, Session, SessionLayer, Sessions};

use crate::common::{app, send, send_ok};

/// Logs in as `user` on a new session; the cookie of the logged-in session. Sessions are
/// listed by creation time (milliseconds), so each log-in waits for the next millisecond.
async fn log_in(app: &axum::Router, user: &str, label: &str) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    send_ok(app, &format!("/login/{user}/{label}"), None)
        .await
        .cookie()
}

#[tokio::test]
async fn log_in_gives_a_new_id_keeps_the_data_and_ties_the_session() {
    let layer = SessionLayer::new(MemoryStore::default());
    let sessions = layer.sessions();
    let app = app(layer);
    let visitor = send_ok(&app, "/write", None).await.cookie();
    send_ok(&app, "/write", Some(&visitor)).await;

    let reply = send_ok(&app, "/login/ann/laptop", Some(&visitor)).await;
    let logged_in = reply.cookie();
    assert_ne!(logged_in, visitor, "log_in kept the id (session fixation)");
    assert_eq!(send_ok(&app, "/whoami", Some(&logged_in)).await.body, "ann");
    assert_eq!(send_ok(&app, "/read", Some(&logged_in)).await.body, "2");
    assert_eq!(
        send_ok(&app, "/whoami", Some(&visitor)).await.body,
        "nobody",
        "the id from before the log-in still works"
    );
    let listed = sessions.list("ann").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label(), Some("laptop"));

    // A session cycled after the log-in stays tied, under its new id.
    let cycled = send_ok(&app, "/cycle", Some(&logged_in)).await.cookie();
    assert_eq!(send_ok(&app, "/whoami", Some(&cycled)).await.body, "ann");
    assert_eq!(sessions.list("ann").await.unwrap().len(), 1);

    // Destroyed: no longer listed.
    send_ok(&app, "/destroy", Some(&cycled)).await;
    assert!(sessions.list("ann").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_log_in_alone_creates_the_session() {
    let app = app(SessionLayer::new(MemoryStore::default()));
    let cookie = log_in(&app, "ann", "phone").await;
    assert_eq!(send_ok(&app, "/whoami", Some(&cookie)).await.body, "ann");
    assert_eq!(
        send_ok(&app, "/devices", Some(&cookie)).await.body,
        "phone*"
    );
}

#[tokio::test]
async fn devices_mark_the_current_session_and_revoke_others_ends_the_rest() {
    let layer = SessionLayer::new(MemoryStore::default());
    let sessions = layer.sessions();
    let app = app(layer);
    let laptop = log_in(&app, "ann", "laptop").await;
    let phone = log_in(&app, "ann", "phone").await;
    let tablet = log_in(&app, "ann", "tablet").await;
    let bobs = log_in(&app, "bob", "desktop").await;
    assert_eq!(
        send_ok(&app, "/devices", Some(&phone)).await.body,
        "laptop,phone*,tablet"
    );

    assert_eq!(send_ok(&app, "/others", Some(&phone)).await.body, "2");
    assert_eq!(send_ok(&app, "/whoami", Some(&laptop)).await.body, "nobody");
    assert_eq!(send_ok(&app, "/whoami", Some(&tablet)).await.body, "nobody");
    assert_eq!(send_ok(&app, "/whoami", Some(&phone)).await.body, "ann");
    assert_eq!(send_ok(&app, "/whoami", Some(&bobs)).await.body, "bob");
    assert_eq!(sessions.list("ann").await.unwrap().len(), 1);

    // Nobody logged in: nothing to list, nobody to sign out.
    let visitor = send_ok(&app, "/write", None).await.cookie();
    assert_eq!(send_ok(&app, "/others", Some(&visitor)).await.body, "0");
    assert_eq!(send_ok(&app, "/devices", Some(&visitor)).await.body, "");
}

#[tokio::test]
async fn revoke_all_ends_every_session_even_through_a_cache() {
    // The cache serves loads without the backing store: a revocation must drop its copies.
    let store = CachingStore::new(MemoryStore::default(), MemoryStore::default());
    let layer = SessionLayer::new(store);
    let sessions = layer.sessions();
    let app = app(layer);
    let cookies = [
        log_in(&app, "ann", "a").await,
        log_in(&app, "ann", "b").await,
    ];
    for cookie in &cookies {
        assert_eq!(send_ok(&app, "/whoami", Some(cookie)).await.body, "ann");
    }
    assert_eq!(sessions.revoke_all("ann").await.unwrap(), 2);
    for cookie in &cookies {
        assert_eq!(
            send_ok(&app, "/whoami", Some(cookie)).await.body,
            "nobody",
            "a revoked session was served"
        );
    }
}

#[tokio::test]
async fn revoke_of_checks_whose_session_the_handle_names() {
    let layer = SessionLayer::new(MemoryStore::default());
    let sessions = layer.sessions();
    let app = app(layer);
    let anns = log_in(&app, "ann", "a").await;
    let handle = *sessions.list("ann").await.unwrap()[0].handle();
    let parsed = handle.to_string().parse().unwrap();
    assert!(!sessions.revoke("bob", &parsed).await.unwrap());
    assert_eq!(send_ok(&app, "/whoami", Some(&anns)).await.body, "ann");
    assert!(sessions.revoke("ann", &parsed).await.unwrap());
    assert_eq!(send_ok(&app, "/whoami", Some(&anns)).await.body, "nobody");
}

#[tokio::test]
async fn the_cap_per_principal_revokes_the_oldest() {
    let two = NonZeroUsize::new(2).unwrap();
    let layer = SessionLayer::new(MemoryStore::default()).with_max_sessions_per_principal(two);
    let sessions: Sessions = layer.sessions();
    let app = app(layer);
    let first = log_in(&app, "ann", "first").await;
    let second = log_in(&app, "ann", "second").await;
    let third = log_in(&app, "ann", "third").await;
    assert_eq!(send_ok(&app, "/whoami", Some(&first)).await.body, "nobody");
    assert_eq!(send_ok(&app, "/whoami", Some(&second)).await.body, "ann");
    assert_eq!(send_ok(&app, "/whoami", Some(&third)).await.body, "ann");
    let labels: Vec<String> = sessions
        .list("ann")
        .await
        .unwrap()
        .iter()
        .map(|info| info.label().unwrap().to_owned())
        .collect();
    assert_eq!(labels, ["second", "third"]);
}

#[tokio::test]
async fn a_log_in_in_a_failed_request_is_not_saved() {
    let layer = SessionLayer::new(MemoryStore::default());
    let sessions = layer.sessions();
    let app = axum::Router::new()
        .route(
            "/fail",
            get(|s: Session| async move {
                s.log_in("ann").await?;
                Ok::<_, Error>((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
            }),
        )
        .layer(layer);
    let reply = send(&app, "/fail", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.set_cookie().is_none());
    assert!(sessions.list("ann").await.unwrap().is_empty());
}
