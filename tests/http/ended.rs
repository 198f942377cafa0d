//! A session that another request ends or moves while this one uses it (a login or a logout in
//! another tab). Once a write of this request finds it gone, nothing it does to the session is
//! saved and its response leaves the cookie alone: a new session's cookie would replace the id
//! the login has just set, and log the user out (SECURITY.md, "Concurrent requests").

use std::future::Future;

use axum::routing::{get, MethodRouter};
use axum::Router;
use sessionware::{Error, MemoryStore, Session, SessionLayer};

use crate::common::{send, Reply};
use crate::support::{routes, Held, Jar};

/// A route that loads the session, signals `held.loaded`, waits for `held.go`, then runs `then`.
fn held_route<F, Fut>(held: &Held, then: F) -> MethodRouter
where
    F: Fn(Session) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<String, Error>> + Send + 'static,
{
    let (loaded, go) = (held.loaded.clone(), held.go.clone());
    get(move |s: Session| {
        let (loaded, go, then) = (loaded.clone(), go.clone(), then.clone());
        async move {
            s.get::<i64>("counter").await?;
            loaded.notify_one();
            go.notified().await;
            then(s).await
        }
    })
}

/// The app: `/slow` is `slow`, `/login` moves the session to a new id and stores the user.
fn app(slow: MethodRouter) -> Router {
    routes()
        .route(
            "/login",
            get(|s: Session| async move {
                s.cycle_id().await?;
                s.insert("user", "alice").await?;
                Ok::<_, Error>("logged in")
            }),
        )
        .route("/slow", slow)
        .layer(SessionLayer::new(MemoryStore::default()))
}

/// One tab's `/slow` loads the session; another tab logs in before `/slow` writes. Returns
/// `/slow`'s reply and the browser's cookie after both, checked to be the login's.
async fn lose_to_a_login(app: &Router, held: &Held) -> (Reply, String) {
    let mut jar = Jar::default();
    jar.receive(&send(app, "/write", None).await);
    let before = jar.0.clone().unwrap();
    let slow = {
        let (app, cookie) = (app.clone(), before.clone());
        tokio::spawn(async move { send(&app, "/slow", Some(&cookie)).await })
    };
    held.loaded.notified().await;
    let login = send(app, "/login", Some(&before)).await;
    jar.receive(&login);
    let logged_in = jar.0.clone().expect("the login set a cookie");
    held.go.notify_one();
    let slow = slow.await.unwrap();
    jar.receive(&slow);
    let after = jar.0.clone().expect("the jar still holds a session cookie");
    assert_eq!(
        after, logged_in,
        "the losing request replaced the login's id"
    );
    assert_eq!(send(app, "/get/user", Some(&after)).await.body, "alice");
    (slow, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_loses_to_a_login_writes_nothing_and_keeps_the_cookie() {
    let held = Held::default();
    let app = app(held_route(&held, |s: Session| async move {
        let n = s
            .update("hits", |n: Option<i64>| n.unwrap_or(0) + 1)
            .await?;
        s.insert("after", "x").await?;
        Ok(n.to_string())
    }));
    let (slow, cookie) = lose_to_a_login(&app, &held).await;
    assert_eq!(slow.status, 200);
    assert_eq!(slow.body, "1", "the update ran on no values");
    assert_eq!(slow.set_cookies(), Vec::<String>::new());
    for key in ["hits", "after"] {
        assert_eq!(
            send(&app, &format!("/get/{key}"), Some(&cookie)).await.body,
            "none"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_token_that_loses_to_a_login_keeps_the_cookie() {
    let held = Held::default();
    let app = app(held_route(&held, |s: Session| async move {
        let token = s.csrf_token().await?;
        assert!(!token.is_empty());
        Ok("a form".to_owned())
    }));
    let (slow, _) = lose_to_a_login(&app, &held).await;
    assert_eq!(slow.status, 200);
    assert_eq!(slow.set_cookies(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_save_that_lost_to_a_login_nothing_more_is_saved() {
    let held = Held::default();
    let app = app(held_route(&held, |s: Session| async move {
        s.insert("theme", "dark").await?;
        s.save().await?;
        s.insert("after", "x").await?;
        Ok("saved".to_owned())
    }));
    let (slow, cookie) = lose_to_a_login(&app, &held).await;
    assert_eq!(slow.status, 200);
    assert_eq!(slow.set_cookies(), Vec::<String>::new());
    for key in ["theme", "after"] {
        assert_eq!(
            send(&app, &format!("/get/{key}"), Some(&cookie)).await.body,
            "none"
        );
    }
}
