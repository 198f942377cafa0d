//! What apps build on sessions, where a store step is involved, against every store: flash
//! messages taken by one of two racing requests only, and a CSRF secret that racing first
//! requests agree on.

use crate::store::SessionStore;
use crate::{Error, Session, SessionLayer};
use axum::extract::Path;
use axum::routing::get;
use axum::Router;

use super::http::{send, send_ok};

fn app(store: impl SessionStore) -> Router {
    super::http::flash_routes()
        .route(
            "/token",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route(
            "/verify/{token}",
            get(|s: Session, Path(token): Path<String>| async move {
                Ok::<_, Error>(s.verify_csrf(&token).await?.to_string())
            }),
        )
        .route("/write", get(super::http::write))
        .layer(SessionLayer::new(store))
}

/// Two pages racing to show the same three messages: each message is shown exactly once.
pub async fn flash_is_taken_once(store: impl SessionStore) {
    let app = app(store);
    for _ in 0..5 {
        let cookie = send_ok(&app, "/write", None).await.cookie();
        for text in ["a", "b", "c"] {
            send_ok(&app, &format!("/flash/{text}"), Some(&cookie)).await;
        }
        let (one, two) = tokio::join!(
            send(&app, "/show", Some(&cookie)),
            send(&app, "/show", Some(&cookie)),
        );
        assert_eq!((one.status.as_u16(), two.status.as_u16()), (200, 200));
        let mut shown: Vec<String> = [one.body, two.body]
            .into_iter()
            .filter(|body| !body.is_empty())
            .flat_map(|body| body.split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        shown.sort();
        assert_eq!(shown, ["info:a", "info:b", "info:c"]);
        assert_eq!(send_ok(&app, "/show", Some(&cookie)).await.body, "");
    }
}

/// The first two requests of a session ask for a token at once: both tokens verify, because
/// the secret is created in one store step that the loser rereads.
pub async fn csrf_secret_is_agreed(store: impl SessionStore) {
    let app = app(store);
    for _ in 0..5 {
        let cookie = send_ok(&app, "/write", None).await.cookie();
        let (one, two) = tokio::join!(
            send(&app, "/token", Some(&cookie)),
            send(&app, "/token", Some(&cookie)),
        );
        for token in [one.body, two.body] {
            let verified = send_ok(&app, &format!("/verify/{token}"), Some(&cookie)).await;
            assert_eq!(
                verified.body, "true",
                "a racing first request got a dead token"
            );
        }
    }
}

/// Routes that write a key twice in one request: first as a pending change (`insert`,
/// `remove`, `clear`, `log_in`, `flash`), then through a compare-and-set (`update`,
/// `csrf_token`, `take_flashes`), whose precondition must be what the store holds.
fn own_changes_app(store: impl SessionStore) -> Router {
    let get_i64 = |key: &'static str| {
        move |s: Session| async move {
            let value: Option<i64> = s.get(key).await?;
            Ok::<_, Error>(value.map_or("none".to_owned(), |v| v.to_string()))
        }
    };
    super::http::flash_routes()
        .route(
            "/seed",
            get(|s: Session| async move {
                for key in ["n", "m", "k"] {
                    s.insert(key, 1_i64).await?;
                }
                s.flash(crate::Level::Info, "old").await?;
                s.csrf_token().await.map(|_| ())
            }),
        )
        .route(
            "/own",
            get(|s: Session| async move {
                s.insert("n", 5_i64).await?;
                let n = s.update("n", |n: Option<i64>| n.unwrap_or(0) + 1).await?;
                s.remove::<i64>("m").await?;
                let m = s.update("m", |m: Option<i64>| m.unwrap_or(100) + 1).await?;
                s.flash(crate::Level::Info, "new").await?;
                let taken: Vec<String> = s
                    .take_flashes()
                    .await?
                    .into_iter()
                    .map(|message| message.text)
                    .collect();
                Ok::<_, Error>(format!("{n} {m} {}", taken.join(",")))
            }),
        )
        .route(
            "/clear-then-update",
            get(|s: Session| async move {
                s.clear().await?;
                let k = s.update("k", |k: Option<i64>| k.unwrap_or(0) + 10).await?;
                Ok::<_, Error>(k.to_string())
            }),
        )
        .route(
            "/login-then-token",
            get(|s: Session| async move {
                s.log_in("alice").await?;
                s.csrf_token().await
            }),
        )
        .route(
            "/verify/{token}",
            get(|s: Session, Path(token): Path<String>| async move {
                Ok::<_, Error>(s.verify_csrf(&token).await?.to_string())
            }),
        )
        .route("/n", get(get_i64("n")))
        .route("/m", get(get_i64("m")))
        .route("/k", get(get_i64("k")))
        .layer(SessionLayer::new(store))
}

/// A compare-and-set after the request's own pending change of the same key works at once
/// (it used to conflict on every attempt and fail): `update` after `insert` and after `remove`
/// builds on the request's value and replaces the pending change, `take_flashes` after `flash`
/// returns the stored and the new message once each, `update` after `clear` keeps its result,
/// and `csrf_token` after `log_in` (which rotates an existing secret) gives a token that works.
pub async fn compare_and_set_after_own_changes(store: impl SessionStore) {
    let app = own_changes_app(store);
    let cookie = send_ok(&app, "/seed", None).await.cookie();
    assert_eq!(
        send_ok(&app, "/own", Some(&cookie)).await.body,
        "6 101 old,new"
    );
    assert_eq!(send_ok(&app, "/n", Some(&cookie)).await.body, "6");
    assert_eq!(send_ok(&app, "/m", Some(&cookie)).await.body, "101");
    assert_eq!(send_ok(&app, "/show", Some(&cookie)).await.body, "");

    assert_eq!(
        send_ok(&app, "/clear-then-update", Some(&cookie))
            .await
            .body,
        "10"
    );
    assert_eq!(send_ok(&app, "/k", Some(&cookie)).await.body, "10");
    assert_eq!(send_ok(&app, "/n", Some(&cookie)).await.body, "none");

    let cookie = send_ok(&app, "/seed", None).await.cookie();
    let reply = send_ok(&app, "/login-then-token", Some(&cookie)).await;
    let cookie = reply.cookie();
    let verified = send_ok(&app, &format!("/verify/{}", reply.body), Some(&cookie)).await;
    assert_eq!(
        verified.body, "true",
        "the token made after the log-in is dead"
    );
}

/// A `Session` kept after the response (a WebSocket's) learns that its session ended in
/// another request: `save`, `touch` and `update` answer `SessionEnded` and store nothing.
pub async fn a_kept_handle_learns_the_session_ended(store: impl SessionStore) {
    use std::sync::{Arc, Mutex};
    let kept: Arc<Mutex<Option<Session>>> = Arc::default();
    let keep = kept.clone();
    let app = super::http::routes()
        .route(
            "/keep",
            get(move |s: Session| {
                let keep = keep.clone();
                async move {
                    s.get::<i64>("n").await?;
                    *keep.lock().unwrap() = Some(s);
                    Ok::<_, Error>("kept")
                }
            }),
        )
        .layer(SessionLayer::new(store));
    for end in ["/destroy", "/cycle"] {
        let cookie = send_ok(&app, "/write", None).await.cookie();
        send_ok(&app, "/keep", Some(&cookie)).await;
        let session = kept.lock().unwrap().take().unwrap();
        assert!(session
            .update("n", |n: Option<i64>| n.unwrap_or(0) + 1)
            .await
            .is_ok());
        send_ok(&app, end, Some(&cookie)).await;

        let update = session
            .update("n", |n: Option<i64>| n.unwrap_or(0) + 1)
            .await;
        assert!(
            matches!(update, Err(Error::SessionEnded)),
            "{end}: {update:?}"
        );
        session.insert("x", 1).await.unwrap();
        assert!(
            matches!(session.save().await, Err(Error::SessionEnded)),
            "{end}"
        );
        assert!(
            matches!(session.touch().await, Err(Error::SessionEnded)),
            "{end}"
        );
    }
}

/// `log_in("")` is refused with the same clear error on every store, before any store call,
/// and ties nothing: the session stays anonymous.
pub async fn an_empty_principal_is_refused(store: impl SessionStore) {
    let app = super::http::routes()
        .route(
            "/login-empty",
            get(|s: Session| async move {
                let refused = matches!(s.log_in("").await, Err(Error::EmptyPrincipal));
                s.insert("n", 1).await?;
                Ok::<_, Error>(refused.to_string())
            }),
        )
        .layer(SessionLayer::new(store));
    let reply = send_ok(&app, "/login-empty", None).await;
    assert_eq!(reply.body, "true");
    let cookie = reply.cookie();
    assert_eq!(send_ok(&app, "/whoami", Some(&cookie)).await.body, "nobody");
}

/// A request that read the session before another request saved a new expiry policy ("keep
/// me signed in") and then writes or touches it moves the deadline under the stored policy,
/// not the one it read: the remember-me is not cut back to the layer's idle time.
pub async fn a_stale_request_keeps_a_new_expiry_policy(store: impl SessionStore) {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::Expiry;
    use tokio::sync::Barrier;

    const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);
    let layer = SessionLayer::new(store).with_expiry(Expiry::OnInactivity(Duration::from_secs(2)));
    let sessions = layer.sessions();
    let barrier = Arc::new(Barrier::new(2));
    let slow = |write: bool| {
        let barrier = barrier.clone();
        get(move |s: Session| {
            let barrier = barrier.clone();
            async move {
                s.get::<i64>("n").await?;
                barrier.wait().await; // loaded
                barrier.wait().await; // the policy changed meanwhile
                if write {
                    s.insert("n", 7).await?;
                }
                Ok::<_, Error>("done")
            }
        })
    };
    let app = super::http::routes()
        .route("/slow-read", slow(false))
        .route("/slow-write", slow(true))
        .route(
            "/remember",
            get(|s: Session| async move {
                s.get::<i64>("n").await?;
                s.set_expiry(Some(Expiry::OnInactivity(MONTH)));
                Ok::<_, Error>("remembered")
            }),
        )
        .layer(layer);
    for path in ["/slow-read", "/slow-write"] {
        let user = format!("user-{}", crate::SessionId::generate().store_key().short());
        let cookie = send_ok(&app, &format!("/login/{user}/laptop"), None)
            .await
            .cookie();
        // Past a quarter of the idle time: the slow read's end owes the session a touch.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let slow = {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { send_ok(&app, path, Some(&cookie)).await })
        };
        barrier.wait().await;
        send_ok(&app, "/remember", Some(&cookie)).await;
        barrier.wait().await;
        slow.await.unwrap();
        let listed = sessions.list(&user).await.unwrap();
        assert_eq!(listed.len(), 1, "{path}: the session ended");
        let left = listed[0]
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(
            left > Duration::from_secs(24 * 3600),
            "{path} cut the remember-me back to {left:?}"
        );
    }
}
