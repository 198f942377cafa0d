//! Size cap, attack counters, and ids kept out of logs.

use axum::routing::get;
use sessionware::{Error, Key, MemoryStore, Session, SessionLayer};

use crate::common::{capture_logs, send, Reply};
use crate::support::{app, routes, Probe};

#[tokio::test]
async fn an_insert_over_the_size_cap_is_refused_and_saves_nothing() {
    let store = MemoryStore::default();
    let app = routes()
        .route(
            "/big/{n}",
            get(
                |s: Session, axum::extract::Path(n): axum::extract::Path<usize>| async move {
                    match s.insert("blob", "x".repeat(n)).await {
                        Err(Error::TooLarge { size, limit, .. }) => {
                            format!("too large: {size} > {limit}")
                        }
                        Err(other) => panic!("{other}"),
                        Ok(()) => "stored".to_owned(),
                    }
                },
            ),
        )
        .layer(SessionLayer::new(store.clone()).with_max_session_size(1024));
    let cookie = send(&app, "/set/small/1", None).await.cookie();

    let reply = send(&app, "/big/2000", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.starts_with("too large: "), "{}", reply.body);
    assert_eq!(
        send(&app, "/get/blob", Some(&cookie)).await.body,
        "none",
        "part of it was saved"
    );
    assert_eq!(send(&app, "/get/small", Some(&cookie)).await.body, "1");

    // Just under the cap is fine; replacing a value counts only the new one.
    assert_eq!(send(&app, "/big/900", Some(&cookie)).await.body, "stored");
    assert_eq!(send(&app, "/big/950", Some(&cookie)).await.body, "stored");
    assert!(send(&app, "/big/1100", Some(&cookie))
        .await
        .body
        .starts_with("too large"));
    // A new session is capped too, and nothing is created for it.
    let before = store.len();
    let fresh = send(&app, "/big/5000", None).await;
    assert!(fresh.body.starts_with("too large"));
    assert_eq!(fresh.set_cookie(), None);
    assert_eq!(store.len(), before);
}

#[tokio::test]
async fn refused_and_unknown_ids_are_counted() {
    let layer = SessionLayer::new(MemoryStore::default()).with_signed(Key::generate());
    let stats = layer.stats();
    let app = app(layer);
    let cookie = send(&app, "/write", None).await.cookie();
    assert_eq!((stats.refused_ids(), stats.unknown_ids()), (0, 0));

    send(&app, "/read", Some("id=forged")).await;
    let mut tampered = cookie.clone().into_bytes();
    tampered[5] ^= 1;
    send(&app, "/read", Some(std::str::from_utf8(&tampered).unwrap())).await;
    assert_eq!(stats.refused_ids(), 2);

    send(&app, "/destroy", Some(&cookie)).await;
    send(&app, "/read", Some(&cookie)).await;
    assert_eq!(stats.unknown_ids(), 1);
    // Routes that ignore the session never look at the id, so they count nothing.
    send(&app, "/plain", Some("id=forged")).await;
    assert_eq!(stats.refused_ids(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn logs_and_errors_never_contain_a_raw_id() {
    let (captured, _guard) = capture_logs(tracing::Level::TRACE);

    let probe = Probe::default();
    let app = app(SessionLayer::new(probe.clone()));
    let mut ids = Vec::new();
    let mut cookie_of = |reply: &Reply| {
        let cookie = reply.cookie();
        ids.push(cookie.trim_start_matches("id=").to_owned());
        cookie
    };
    // Every path that logs: unknown, refused, vanished, corrupt, store failure.
    let first = send(&app, "/write", None).await;
    let cookie = cookie_of(&first);
    send(&app, "/destroy", Some(&cookie)).await;
    send(&app, "/read", Some(&cookie)).await;
    send(&app, "/read", Some(&format!("{cookie}x"))).await;
    let second = send(&app, "/write", None).await;
    let cookie = cookie_of(&second);
    probe
        .corrupt
        .store(true, std::sync::atomic::Ordering::SeqCst);
    send(&app, "/write", Some(&cookie)).await;
    probe
        .corrupt
        .store(false, std::sync::atomic::Ordering::SeqCst);
    probe.set_failing(true);
    let failed = send(&app, "/write", Some(&cookie)).await;
    assert_eq!(failed.status, 500);
    probe.set_failing(false);

    let log = captured.text();
    assert!(
        log.contains("unknown session id"),
        "nothing was logged:\n{log}"
    );
    assert!(log.contains("session id refused"));
    assert!(log.contains("corrupt"));
    for id in &ids {
        assert!(
            !log.contains(id.as_str()),
            "a raw id reached the log:\n{log}"
        );
        assert!(!failed.body.contains(id.as_str()));
    }
}
