//! Concurrent requests on one session.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use sessionware::{Error, MemoryStore, Session, SessionLayer};
use tokio::sync::Barrier;

use crate::common::send;
use crate::support::{routes, Held};

const REQUESTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_distinct_keys_are_all_kept() {
    let barrier = Arc::new(Barrier::new(REQUESTS));
    let app: Router = routes()
        .route(
            "/together/{key}",
            get(move |s: Session, Path(key): Path<String>| {
                let barrier = barrier.clone();
                async move {
                    // Every request loads the same version of the session before any writes.
                    s.get::<String>("anything").await?;
                    barrier.wait().await;
                    s.insert(&key, key.clone()).await?;
                    Ok::<_, Error>(())
                }
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&app, "/set/seed/0", None).await.cookie();

    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { send(&app, &format!("/together/k{i}"), Some(&cookie)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status, 200);
    }
    for i in 0..REQUESTS {
        assert_eq!(
            send(&app, &format!("/get/k{i}"), Some(&cookie)).await.body,
            format!("k{i}"),
            "key k{i} was lost"
        );
    }
    assert_eq!(send(&app, "/get/seed", Some(&cookie)).await.body, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_wins_over_a_slower_write() {
    let held = Held::default();
    let store = MemoryStore::default();
    let app: Router = routes()
        .route(
            "/slow",
            held.route("secret", "written after logout", "slow done"),
        )
        .layer(SessionLayer::new(store.clone()));
    let cookie = send(&app, "/write", None).await.cookie();

    let slow = {
        let (app, cookie) = (app.clone(), cookie.clone());
        tokio::spawn(async move { send(&app, "/slow", Some(&cookie)).await })
    };
    held.loaded.notified().await;
    let destroyed = send(&app, "/destroy", Some(&cookie)).await;
    assert!(destroyed.set_cookie().unwrap().contains("Max-Age=0"));
    held.go.notify_one();
    let slow = slow.await.unwrap();

    assert_eq!(slow.status, 200);
    // The late write did not resurrect the session, under its id or a new one.
    let set = slow.set_cookie();
    assert!(
        set.as_deref().is_none_or(|c| c.contains("Max-Age=0")),
        "{set:?}"
    );
    assert_eq!(store.len(), 0);
    assert_eq!(send(&app, "/get/secret", Some(&cookie)).await.body, "none");
}
