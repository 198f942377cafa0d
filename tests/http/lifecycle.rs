//! Create, read, change, cycle and destroy, through the layer.

use sessionware::{MemoryStore, SessionLayer};

use crate::common::send;
use crate::support::{app, Probe};

#[tokio::test]
async fn round_trip_and_read_only_requests_send_no_cookie() {
    let probe = Probe::default();
    let app = app(SessionLayer::new(probe.clone()));
    let first = send(&app, "/write", None).await;
    assert_eq!(first.body, "1");
    let cookie = first.cookie();

    let second = send(&app, "/write", Some(&cookie)).await;
    assert_eq!(second.body, "2");

    let writes = probe.writes();
    let read = send(&app, "/read", Some(&cookie)).await;
    assert_eq!(read.body, "2");
    assert_eq!(
        read.set_cookie(),
        None,
        "a read-only request re-sent the cookie"
    );
    assert_eq!(
        probe.writes(),
        writes,
        "a read-only request wrote to the store"
    );
}

#[tokio::test]
async fn a_fresh_session_that_only_reads_is_not_saved() {
    let store = MemoryStore::default();
    let app = app(SessionLayer::new(store.clone()));
    let reply = send(&app, "/read", None).await;
    assert_eq!(reply.body, "0");
    assert_eq!(reply.set_cookie(), None);
    assert_eq!(store.len(), 0);
}

#[tokio::test]
async fn remove_and_clear() {
    let app = app(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&app, "/set/a/1", None).await.cookie();
    send(&app, "/set/b/2", Some(&cookie)).await;
    assert_eq!(send(&app, "/remove/a", Some(&cookie)).await.body, "1");
    assert_eq!(send(&app, "/get/a", Some(&cookie)).await.body, "none");
    assert_eq!(send(&app, "/remove/a", Some(&cookie)).await.body, "none");
    assert_eq!(send(&app, "/get/b", Some(&cookie)).await.body, "2");

    send(&app, "/clear", Some(&cookie)).await;
    assert_eq!(send(&app, "/get/b", Some(&cookie)).await.body, "none");
    // The session (its id) survives a clear.
    assert_eq!(
        send(&app, "/set/c/3", Some(&cookie))
            .await
            .set_cookies()
            .len(),
        0
    );
    assert_eq!(send(&app, "/get/c", Some(&cookie)).await.body, "3");
}

#[tokio::test]
async fn cycle_keeps_the_data_and_kills_the_old_id() {
    let store = MemoryStore::default();
    let app = app(SessionLayer::new(store.clone()));
    let old = send(&app, "/write", None).await.cookie();
    send(&app, "/write", Some(&old)).await;

    let new = send(&app, "/cycle", Some(&old)).await.cookie();
    assert_ne!(new, old);
    assert_eq!(send(&app, "/read", Some(&new)).await.body, "2");
    assert_eq!(send(&app, "/read", Some(&old)).await.body, "0");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn destroy_sends_a_matching_removal_cookie_and_kills_the_id() {
    let store = MemoryStore::default();
    let layer = SessionLayer::new(store.clone())
        .with_cookie_name("sid")
        .with_path("/")
        .with_domain("example.com");
    let app = app(layer);
    let cookie = send(&app, "/write", None).await.cookie();
    let set = send(&app, "/write", Some(&cookie)).await;
    assert_eq!(set.body, "2");

    let removal = send(&app, "/destroy", Some(&cookie))
        .await
        .set_cookie()
        .unwrap();
    let attrs: Vec<&str> = removal.split(';').map(str::trim).collect();
    assert_eq!(attrs[0], "sid=");
    for expected in [
        "Path=/",
        "Domain=example.com",
        "Secure",
        "HttpOnly",
        "Max-Age=0",
    ] {
        assert!(attrs.contains(&expected), "{expected} missing in {removal}");
    }
    assert_eq!(store.len(), 0);
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "0");
}

#[tokio::test]
async fn destroy_then_insert_starts_a_new_session() {
    use axum::routing::get;
    use sessionware::Session;
    let store = MemoryStore::default();
    let app = crate::support::routes()
        .route(
            "/logout",
            get(|s: Session| async move {
                s.destroy().await?;
                s.insert("flash", "bye").await
            }),
        )
        .layer(SessionLayer::new(store.clone()));
    let cookie = send(&app, "/write", None).await.cookie();
    let reply = send(&app, "/logout", Some(&cookie)).await;
    let new = reply.cookie();
    assert_ne!(new, cookie);
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "0");
    assert_eq!(send(&app, "/get/flash", Some(&new)).await.body, "bye");
    assert_eq!(send(&app, "/read", Some(&new)).await.body, "0");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_handler_5xx_saves_nothing() {
    let store = MemoryStore::default();
    let app = app(SessionLayer::new(store.clone()));
    let reply = send(&app, "/fail", None).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "handler failed");
    assert_eq!(reply.set_cookie(), None);
    assert_eq!(store.len(), 0);

    let cookie = send(&app, "/write", None).await.cookie();
    send(&app, "/fail", Some(&cookie)).await;
    assert_eq!(send(&app, "/get/half", Some(&cookie)).await.body, "none");
}

#[tokio::test]
async fn missing_layer_is_a_500_that_names_the_fix() {
    let reply = send(&crate::support::routes(), "/read", None).await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("forgot to add `SessionLayer`"),
        "{}",
        reply.body
    );
}

/// Setting a key to the value it already holds is no change: nothing is written. A key removed
/// (or cleared) and set back to its old value in one request is a change like any other: the
/// value is still there afterwards.
#[tokio::test]
async fn setting_the_value_a_key_holds_writes_nothing_and_loses_nothing() {
    use axum::routing::get;
    use sessionware::{Error, Session};

    let probe = Probe::default();
    let app = crate::support::routes()
        .route(
            "/remove-and-restore",
            get(|s: Session| async move {
                let old: Option<String> = s.remove("k").await?;
                s.insert("k", old.unwrap_or_default()).await?;
                Ok::<_, Error>("ok")
            }),
        )
        .route(
            "/clear-and-restore",
            get(|s: Session| async move {
                let old: Option<String> = s.get("k").await?;
                s.clear().await?;
                s.insert("k", old.unwrap_or_default()).await?;
                Ok::<_, Error>("ok")
            }),
        )
        .layer(SessionLayer::new(probe.clone()));
    let cookie = send(&app, "/set/k/v", None).await.cookie();

    let writes = probe.writes();
    let again = send(&app, "/set/k/v", Some(&cookie)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.set_cookie(), None);
    assert_eq!(probe.writes(), writes, "the same value was written again");

    for path in ["/remove-and-restore", "/clear-and-restore"] {
        assert_eq!(send(&app, path, Some(&cookie)).await.status, 200, "{path}");
        assert_eq!(
            send(&app, "/get/k", Some(&cookie)).await.body,
            "v",
            "{path}"
        );
    }
}
