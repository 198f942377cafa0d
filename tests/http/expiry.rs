//! Idle and absolute timeouts, enforced by the server (short timeouts, about a second).

use std::time::Duration;

use sessionware::{Expiry, SessionLayer};
use tokio::time::sleep;

use crate::common::send;
use crate::support::{app, Probe};

#[tokio::test]
async fn idle_timeout_ends_a_quiet_session_and_reads_extend_an_active_one() {
    let probe = Probe::default();
    let layer =
        SessionLayer::new(probe.clone()).with_expiry(Expiry::OnInactivity(Duration::from_secs(1)));
    let app = app(layer);
    let quiet = send(&app, "/write", None).await.cookie();
    let active = send(&app, "/write", None).await.cookie();

    // Straight away, a read is inside the touch window: no write, no cookie.
    let writes = probe.writes();
    assert_eq!(send(&app, "/read", Some(&active)).await.set_cookie(), None);
    assert_eq!(probe.writes(), writes);

    sleep(Duration::from_millis(600)).await;
    // Past a quarter of the idle period: the read extends the deadline and the cookie's Max-Age.
    let touched = send(&app, "/read", Some(&active)).await;
    assert_eq!(touched.body, "1");
    assert!(touched.set_cookie().unwrap().contains("Max-Age=1"));
    assert_eq!(probe.writes(), writes + 1);

    sleep(Duration::from_millis(600)).await;
    assert_eq!(
        send(&app, "/read", Some(&quiet)).await.body,
        "0",
        "the quiet session outlived its idle timeout"
    );
    assert_eq!(
        send(&app, "/read", Some(&active)).await.body,
        "1",
        "the touched session expired"
    );
}

#[tokio::test]
async fn session_end_cookies_still_have_a_server_side_idle_timeout() {
    let layer = SessionLayer::new(Probe::default())
        .with_session_end_idle_timeout(Duration::from_millis(800));
    let app = app(layer);
    let reply = send(&app, "/write", None).await;
    assert!(!reply.set_cookie().unwrap().contains("Max-Age"));
    let cookie = reply.cookie();
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "0");
}

#[tokio::test]
async fn absolute_timeout_ends_even_an_active_session() {
    let layer = SessionLayer::new(Probe::default())
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(60)))
        .with_absolute_timeout(Duration::from_secs(1));
    let app = app(layer);
    let cookie = send(&app, "/write", None).await.cookie();
    for expected in 2..=4 {
        sleep(Duration::from_millis(200)).await;
        assert_eq!(
            send(&app, "/write", Some(&cookie)).await.body,
            expected.to_string()
        );
    }
    sleep(Duration::from_millis(500)).await;
    let reply = send(&app, "/write", Some(&cookie)).await;
    assert_eq!(
        reply.body, "1",
        "activity carried the session past its absolute timeout"
    );
    assert_ne!(reply.cookie(), cookie);
}

#[tokio::test]
async fn per_session_expiry_is_saved_with_the_session() {
    use axum::routing::get;
    use sessionware::Session;
    let app = crate::support::routes()
        .route(
            "/remember",
            get(|s: Session| async move {
                s.set_expiry(Some(Expiry::OnInactivity(Duration::from_secs(3600))));
            }),
        )
        .route(
            "/expiry",
            get(|s: Session| async move {
                s.get::<i64>("counter").await.unwrap();
                format!("{:?}", s.expiry())
            }),
        )
        .layer(SessionLayer::new(Probe::default()));
    let cookie = send(&app, "/write", None).await.cookie();
    assert_eq!(
        send(&app, "/expiry", Some(&cookie)).await.body,
        "OnSessionEnd"
    );
    let reply = send(&app, "/remember", Some(&cookie)).await;
    assert!(
        reply.set_cookie().unwrap().contains("Max-Age=3600"),
        "{:?}",
        reply.set_cookie()
    );
    assert_eq!(
        send(&app, "/expiry", Some(&cookie)).await.body,
        "OnInactivity(3600s)"
    );
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "1");
}

/// "Keep me signed in": one session outlives the layer's absolute timeout by its own, bounded
/// by the layer's maximum; the others end on time.
#[tokio::test]
async fn a_session_may_have_a_longer_absolute_lifetime_up_to_the_maximum() {
    use axum::extract::Path;
    use axum::routing::get;
    use sessionware::{Error, MemoryStore, Session};

    let app = crate::support::routes()
        .route(
            "/remember/{ms}",
            get(|s: Session, Path(ms): Path<u64>| async move {
                s.insert("counter", 1).await?;
                s.set_absolute_timeout(Some(Duration::from_millis(ms)));
                Ok::<_, Error>(format!("{:?}", s.absolute_timeout()))
            }),
        )
        .layer(
            SessionLayer::new(MemoryStore::default())
                .with_expiry(Expiry::OnInactivity(Duration::from_secs(60)))
                .with_absolute_timeout(Duration::from_millis(500))
                .with_max_absolute_timeout(Duration::from_millis(2500)),
        );
    let plain = send(&app, "/write", None).await.cookie();
    let own = send(&app, "/remember/1500", None).await;
    assert_eq!(own.body, "1.5s");
    let own = own.cookie();
    let capped = send(&app, "/remember/60000", None).await;
    assert_eq!(capped.body, "2.5s", "cut to the layer's maximum");
    let capped = capped.cookie();

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        send(&app, "/read", Some(&plain)).await.body,
        "0",
        "the default still holds"
    );
    assert_eq!(send(&app, "/read", Some(&own)).await.body, "1");
    assert_eq!(send(&app, "/read", Some(&capped)).await.body, "1");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        send(&app, "/read", Some(&own)).await.body,
        "0",
        "its own timeout ended it"
    );
    assert_eq!(send(&app, "/read", Some(&capped)).await.body, "1");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        send(&app, "/read", Some(&capped)).await.body,
        "0",
        "the maximum ended it"
    );
}
