//! A store that fails on cue, or returns garbage.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use sessionware::SessionLayer;

use crate::common::send;
use crate::support::{app, Probe};

#[tokio::test]
async fn store_failure_is_a_500_on_session_routes_only() {
    let probe = Probe::default();
    let app = app(SessionLayer::new(probe.clone()));
    let cookie = send(&app, "/write", None).await.cookie();

    probe.set_failing(true);
    for (path, cookie) in [
        ("/write", None),
        ("/write", Some(&cookie)),
        ("/read", Some(&cookie)),
    ] {
        let reply = send(&app, path, cookie.map(String::as_str)).await;
        assert_eq!(reply.status, 500, "{path}");
        assert_eq!(
            reply.body, "Internal Server Error",
            "the body leaks details"
        );
        assert_eq!(reply.set_cookie(), None);
    }
    assert_eq!(send(&app, "/plain", Some(&cookie)).await.status, 200);
    assert_eq!(send(&app, "/plain", None).await.status, 200);

    probe.set_failing(false);
    assert_eq!(
        send(&app, "/write", Some(&cookie)).await.body,
        "2",
        "the saved session was lost"
    );
}

#[tokio::test]
async fn failure_during_save_uses_the_error_handler() {
    use axum::routing::get;
    use sessionware::Session;
    let probe = Probe::default();
    let cookie = send(&app(SessionLayer::new(probe.clone())), "/write", None)
        .await
        .cookie();

    // The load succeeds, then the store goes down before the save.
    let p = probe.clone();
    let app = crate::support::routes()
        .route(
            "/flaky",
            get(move |s: Session| {
                let p = p.clone();
                async move {
                    s.insert("x", 1).await.unwrap();
                    p.set_failing(true);
                    "handler ok"
                }
            }),
        )
        .layer(SessionLayer::new(probe.clone()).with_error_handler(|_| {
            (StatusCode::SERVICE_UNAVAILABLE, "sessions are down").into_response()
        }));
    let reply = send(&app, "/flaky", Some(&cookie)).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "sessions are down");
    // Built from the session like the response it replaced: kept apart per cookie by caches.
    assert_eq!(
        reply
            .headers
            .get(axum::http::header::VARY)
            .map(|v| v.to_str().unwrap()),
        Some("cookie"),
        "{:?}",
        reply.headers
    );
    probe.set_failing(false);
}

#[tokio::test]
async fn corrupt_stored_session_gives_a_fresh_one() {
    let probe = Probe::default();
    let app = app(SessionLayer::new(probe.clone()));
    let cookie = send(&app, "/write", None).await.cookie();
    send(&app, "/write", Some(&cookie)).await;

    probe.corrupt.store(true, Ordering::SeqCst);
    let reply = send(&app, "/write", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "1");
    assert_ne!(reply.cookie(), cookie);
    probe.corrupt.store(false, Ordering::SeqCst);
    // The old record was not overwritten by the fresh session.
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "2");
}

/// The per-principal cap's step failing after the log-in's cycle (or create) was stored does
/// not lose the log-in: the response is the handler's, with the new id's cookie, and the
/// session lives under it (it used to be a 500 without the cookie, the session living on
/// under an id the client never got).
#[tokio::test]
async fn a_failing_cap_step_keeps_the_stored_log_in() {
    let probe = Probe::default();
    let layer = SessionLayer::new(probe.clone())
        .with_max_sessions_per_principal(std::num::NonZeroUsize::new(1).unwrap());
    let app = app(layer);
    let anonymous = send(&app, "/write", None).await.cookie();
    probe.fail_list.store(true, Ordering::SeqCst);
    for cookie in [Some(anonymous.as_str()), None] {
        let reply = send(&app, "/login/ann/laptop", cookie).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let logged_in = reply.cookie();
        assert_eq!(send(&app, "/whoami", Some(&logged_in)).await.body, "ann");
    }
}
