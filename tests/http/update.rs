//! Writing now: `update` (compare-and-set on one key), `save` and `touch` from outside the
//! request, and the warning for changes made after the response and never saved.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use sessionware::{Error, Expiry, MemoryStore, Session, SessionId, SessionLayer};
use tokio::sync::{oneshot, Barrier};

use crate::common::{capture_logs, send};
use crate::support::routes;

async fn incr(session: Session) -> Result<String, Error> {
    let n = session
        .update("n", |n: Option<i64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(n.to_string())
}

/// Sixteen requests of one browser increment one key at once, all loaded before any writes:
/// every increment is kept, and each request got a different value (the one it stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_key_lose_nothing() {
    const REQUESTS: usize = 16;
    let barrier = Arc::new(Barrier::new(REQUESTS));
    let app: Router = routes()
        .route("/incr", get(incr))
        .route(
            "/together",
            get(move |s: Session| {
                let barrier = barrier.clone();
                async move {
                    s.get::<i64>("n").await?;
                    barrier.wait().await;
                    incr(s).await
                }
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&app, "/incr", None).await.cookie();

    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { send(&app, "/together", Some(&cookie)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        seen.push(reply.body.parse::<i64>().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (2..=17).collect::<Vec<_>>(),
        "two requests saw the same value"
    );
    assert_eq!(send(&app, "/incr", Some(&cookie)).await.body, "18");
}

/// `update` on a session that does not exist yet creates it at once (one store call, the one a
/// new session costs anyway), with what the handler inserted before, and the cookie goes out.
#[tokio::test]
async fn update_creates_a_new_session_once() {
    let store = MemoryStore::default();
    let app: Router = routes()
        .route(
            "/first",
            get(|s: Session| async move {
                s.insert("theme", "dark").await?;
                let n = s.update("n", |n: Option<i64>| n.unwrap_or(0) + 1).await?;
                s.insert("after", true).await?;
                Ok::<_, Error>(n.to_string())
            }),
        )
        .layer(SessionLayer::new(store.clone()));
    let reply = send(&app, "/first", None).await;
    assert_eq!(reply.body, "1");
    let cookie = reply.cookie();
    assert_eq!(store.len(), 1, "one session, created once");
    assert_eq!(send(&app, "/get/theme", Some(&cookie)).await.body, "dark");
    let key = SessionId::parse(cookie.trim_start_matches("id="))
        .unwrap()
        .store_key();
    let stored = sessionware::store::SessionStore::load(&store, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.data["n"], 1);
    assert_eq!(
        stored.data["after"], true,
        "a change after the update was lost"
    );
}

/// A session moved into a task that outlives the response saves with `save`, and extends its
/// deadline with `touch`.
#[tokio::test(flavor = "current_thread")]
async fn save_and_touch_work_after_the_response() {
    let (go, wait) = oneshot::channel::<()>();
    let wait = Arc::new(Mutex::new(Some(wait)));
    let (done, finished) = oneshot::channel::<Result<(), String>>();
    let done = Arc::new(Mutex::new(Some(done)));
    let app: Router = routes()
        .route(
            "/socket",
            get(move |s: Session| {
                let wait = wait.lock().unwrap().take().unwrap();
                let done = done.lock().unwrap().take().unwrap();
                async move {
                    s.get::<i64>("counter").await?;
                    tokio::spawn(async move {
                        // As a WebSocket handler would, after the upgrade response.
                        wait.await.unwrap();
                        let result = async {
                            s.insert("messages", "three").await?;
                            s.save().await?;
                            s.touch().await?;
                            s.insert("messages", "four").await?;
                            s.save().await
                        }
                        .await;
                        let _ = done.send(result.map_err(|e| e.to_string()));
                    });
                    Ok::<_, Error>("upgraded")
                }
            }),
        )
        .layer(
            SessionLayer::new(MemoryStore::default())
                .with_expiry(Expiry::OnInactivity(Duration::from_secs(60))),
        );
    let cookie = send(&app, "/write", None).await.cookie();
    assert_eq!(send(&app, "/socket", Some(&cookie)).await.body, "upgraded");
    go.send(()).unwrap();
    finished.await.unwrap().unwrap();
    assert_eq!(
        send(&app, "/get/messages", Some(&cookie)).await.body,
        "four"
    );
}

/// An app whose `/keep` loads the session and hands it out, as a WebSocket handler keeps it
/// after the response.
fn keeping_app() -> (Router, Arc<Mutex<Option<Session>>>) {
    let kept: Arc<Mutex<Option<Session>>> = Arc::default();
    let keep = kept.clone();
    let app = routes()
        .route(
            "/keep",
            get(move |s: Session| {
                let keep = keep.clone();
                async move {
                    s.get::<i64>("counter").await?;
                    *keep.lock().unwrap() = Some(s);
                    Ok::<_, Error>("kept")
                }
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    (app, kept)
}

/// A change made after the response and never saved is not dropped quietly: a warning says so
/// when the last handle goes. A change that was saved, or made during the request, gets none.
#[tokio::test(flavor = "current_thread")]
async fn unsaved_changes_after_the_response_are_reported() {
    let (captured, _guard) = capture_logs(tracing::Level::WARN);
    let (app, kept) = keeping_app();
    let cookie = send(&app, "/write", None).await.cookie();
    let log = || captured.text();

    send(&app, "/keep", Some(&cookie)).await;
    let session = kept.lock().unwrap().take().unwrap();
    session.insert("late", 1).await.unwrap();
    session.save().await.unwrap();
    drop(session);
    assert!(
        !log().contains("never saved"),
        "a saved change was reported:\n{}",
        log()
    );

    send(&app, "/keep", Some(&cookie)).await;
    let session = kept.lock().unwrap().take().unwrap();
    session.insert("lost", "yes").await.unwrap();
    drop(session);
    assert!(
        log().contains("never saved"),
        "nothing was reported:\n{}",
        log()
    );
    assert_eq!(send(&app, "/get/lost", Some(&cookie)).await.body, "none");
}

/// A save after the response that would need a new id (here a new session) is refused: the
/// client could never learn the id.
#[tokio::test]
async fn a_new_id_after_the_response_is_refused() {
    let (app, kept) = keeping_app();
    send(&app, "/keep", None).await;
    let session = kept.lock().unwrap().take().unwrap();
    session.insert("x", 1).await.unwrap();
    assert!(matches!(session.save().await, Err(Error::ResponseSent)));
}

/// A `save` during the request owes the response its cookie: a logout saved early still sends
/// the removal cookie, a new session saved early still sends its id.
#[tokio::test]
async fn a_save_during_the_request_still_sets_the_cookie() {
    let store = MemoryStore::default();
    let app: Router = routes()
        .route(
            "/logout-now",
            get(|s: Session| async move {
                s.destroy().await?;
                s.save().await?;
                Ok::<_, Error>("bye")
            }),
        )
        .route(
            "/login-now",
            get(|s: Session| async move {
                s.insert("user", "alice").await?;
                s.save().await?;
                Ok::<_, Error>("hi")
            }),
        )
        .layer(SessionLayer::new(store.clone()));
    let reply = send(&app, "/login-now", None).await;
    let cookie = reply.cookie();
    assert_eq!(send(&app, "/get/user", Some(&cookie)).await.body, "alice");
    let reply = send(&app, "/logout-now", Some(&cookie)).await;
    assert!(
        reply.set_cookie().unwrap().contains("Max-Age=0"),
        "{:?}",
        reply.set_cookies()
    );
    assert_eq!(store.len(), 0);
}

/// A handle kept past the response sees what the layer saved at the end of the request, and
/// builds on it: the layer moves the values into the store call only when its own handle is
/// the last one, so a kept handle (a WebSocket's) loses nothing, for a new session and for a
/// changed one.
#[tokio::test(flavor = "current_thread")]
async fn a_kept_handle_sees_what_the_layer_saved() {
    let kept: Arc<Mutex<Option<Session>>> = Arc::default();
    let keep = kept.clone();
    let app = routes()
        .route(
            "/keep-after/{key}",
            get(
                move |s: Session, axum::extract::Path(key): axum::extract::Path<String>| {
                    let keep = keep.clone();
                    async move {
                        s.insert(&key, "1").await?;
                        *keep.lock().unwrap() = Some(s);
                        Ok::<_, Error>("kept")
                    }
                },
            ),
        )
        .layer(SessionLayer::new(MemoryStore::default()));

    // A new session: created by the layer, its values still in the kept handle.
    let reply = send(&app, "/keep-after/a", None).await;
    let cookie = reply.cookie();
    let session = kept.lock().unwrap().take().unwrap();
    assert_eq!(
        session.get::<String>("a").await.unwrap().as_deref(),
        Some("1")
    );
    // The handle now works on the stored session: a change and a save reach it.
    session.insert("b", "2").await.unwrap();
    session.save().await.unwrap();
    drop(session);
    assert_eq!(send(&app, "/get/a", Some(&cookie)).await.body, "1");
    assert_eq!(send(&app, "/get/b", Some(&cookie)).await.body, "2");

    // A stored session changed by the request: the same.
    send(&app, "/keep-after/c", Some(&cookie)).await;
    let session = kept.lock().unwrap().take().unwrap();
    assert_eq!(
        session.get::<String>("c").await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        session.get::<String>("b").await.unwrap().as_deref(),
        Some("2")
    );
    session.insert("d", "4").await.unwrap();
    session.save().await.unwrap();
    drop(session);
    for (key, value) in [("a", "1"), ("b", "2"), ("c", "1"), ("d", "4")] {
        assert_eq!(
            send(&app, &format!("/get/{key}"), Some(&cookie)).await.body,
            value
        );
    }
}
