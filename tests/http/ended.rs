//! A session that another request ends or moves while this one uses it (a login or a logout in
//! another tab). Once a write of this request finds it gone, nothing it does to the session is
//! saved and its response leaves the cookie alone: a new session's cookie would replace the id
//! the login has just set, and log the user out (SECURITY.md, "Concurrent requests").

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use axum::routing::{get, MethodRouter};
use axum::Router;
use sessionware::store::{
    Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, Touched,
};
use sessionware::{Error, Key, MemoryStore, Session, SessionLayer, StoreError, StoreKey};

use crate::common::{send, Reply};
use crate::support::{routes, Held};

/// A browser's cookie jar for one host, as far as the session cookie goes: `Set-Cookie` with
/// `Max-Age=0` removes it (by name), anything else replaces it.
#[derive(Default)]
struct Jar(Option<String>);

impl Jar {
    fn receive(&mut self, reply: &Reply) {
        for set in reply.set_cookies() {
            if set.contains("Max-Age=0") {
                self.0 = None;
            } else {
                self.0 = Some(set.split(';').next().unwrap().to_owned());
            }
        }
    }
}

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
    app_with(SessionLayer::new(MemoryStore::default()), slow)
}

fn app_with(layer: SessionLayer, slow: MethodRouter) -> Router {
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
        .layer(layer)
}

/// One tab's `/slow` loads the session; another tab logs in before `/slow` writes. Returns
/// `/slow`'s reply and the browser's cookie after both, checked to be the login's.
async fn lose_to_a_login(app: &Router, held: &Held) -> (Reply, String) {
    let first = send(app, "/write", None).await.cookie();
    lose_to_a_login_from(app, held, first).await
}

/// [`lose_to_a_login`] for a browser that holds the cookie `before`.
async fn lose_to_a_login_from(app: &Router, held: &Held, before: String) -> (Reply, String) {
    let mut jar = Jar(Some(before.clone()));
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

/// The request that lost answered normally, sent no cookie, and saved none of `keys` into the
/// session the browser holds now (`cookie`).
async fn assert_nothing_saved(app: &Router, slow: &Reply, cookie: &str, keys: &[&str]) {
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(slow.set_cookies(), Vec::<String>::new());
    for key in keys {
        let saved = send(app, &format!("/get/{key}"), Some(cookie)).await.body;
        assert_eq!(saved, "none", "{key}");
    }
}

/// The race lost at the end of the request: its save finds the session moved. No cookie (a
/// removal would delete the login's id, a new one replace it), nothing saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_race_to_a_login_never_logs_the_user_out() {
    let held = Held::default();
    let app = app(held.route("theme", "dark", "written"));
    let (slow, cookie) = lose_to_a_login(&app, &held).await;
    assert_eq!(slow.body, "written");
    assert_nothing_saved(&app, &slow, &cookie, &["theme"]).await;
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
    assert_eq!(slow.body, "1", "the update ran on no values");
    assert_nothing_saved(&app, &slow, &cookie, &["hits", "after"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_token_that_loses_to_a_login_keeps_the_cookie() {
    let held = Held::default();
    let app = app(held_route(&held, |s: Session| async move {
        let token = s.csrf_token().await?;
        assert!(!token.is_empty());
        Ok("a form".to_owned())
    }));
    let (slow, cookie) = lose_to_a_login(&app, &held).await;
    assert_nothing_saved(&app, &slow, &cookie, &[]).await;
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
    assert_nothing_saved(&app, &slow, &cookie, &["theme", "after"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_that_loses_to_a_login_keeps_the_cookie() {
    let held = Held::default();
    let app = app(held_route(&held, |s: Session| async move {
        s.touch().await?;
        s.insert("after", "x").await?;
        Ok("touched".to_owned())
    }));
    let (slow, cookie) = lose_to_a_login(&app, &held).await;
    assert_nothing_saved(&app, &slow, &cookie, &["after"]).await;
}

/// A log-in after the session ended is a new start: saved, with its cookie (the latest log-in
/// wins, as between two tabs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_in_after_the_session_ended_starts_a_new_one() {
    let held = Held::default();
    let app = app(held_route(&held, |s: Session| async move {
        s.update("hits", |n: Option<i64>| n.unwrap_or(0) + 1)
            .await?;
        s.log_in("bob").await?;
        s.insert("user", "bob").await?;
        Ok("bob logged in".to_owned())
    }));
    let before = send(&app, "/write", None).await.cookie();
    let slow = {
        let (app, cookie) = (app.clone(), before.clone());
        tokio::spawn(async move { send(&app, "/slow", Some(&cookie)).await })
    };
    held.loaded.notified().await;
    let alice = send(&app, "/login", Some(&before)).await.cookie();
    held.go.notify_one();
    let bob = slow.await.unwrap().cookie();
    assert_ne!(bob, alice);
    assert_eq!(send(&app, "/get/user", Some(&bob)).await.body, "bob");
    assert_eq!(send(&app, "/get/user", Some(&alice)).await.body, "alice");
}

/// A cookie signed with a previous key, on a read-only request that loses to a login: the old
/// id must not be sent again (under the current key) over the login's new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_signed_with_an_old_key_is_not_reissued_after_a_login() {
    let (old, new) = (Key::generate(), Key::generate());
    let store = MemoryStore::default();
    let before = send(
        &crate::support::app(SessionLayer::new(store.clone()).with_signed(old.clone())),
        "/write",
        None,
    )
    .await
    .cookie();
    let held = Held::default();
    let layer = SessionLayer::new(store)
        .with_signed(new)
        .with_previous_keys([old]);
    let app = app_with(
        layer,
        held_route(&held, |_: Session| async move { Ok("read".to_owned()) }),
    );
    let (slow, cookie) = lose_to_a_login_from(&app, &held, before).await;
    assert_nothing_saved(&app, &slow, &cookie, &[]).await;
}

/// A real `MemoryStore` that other requests keep changing: every `apply` is a conflict, and
/// after `loads` loads the session is gone.
#[derive(Debug, Clone)]
struct Contended {
    memory: MemoryStore,
    loads: Arc<AtomicUsize>,
}

#[async_trait]
impl SessionStore for Contended {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let left = self.loads.fetch_sub(1, Ordering::SeqCst);
        if left == 0 {
            self.loads.store(0, Ordering::SeqCst);
            return Ok(None);
        }
        self.memory.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        self.memory.create(key, record).await
    }
    async fn apply(&self, _: &StoreKey, _: &ChangeSet) -> Result<Applied, StoreError> {
        Ok(Applied::Conflict)
    }
    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        self.memory.cycle(keys, changes).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.memory.delete(key).await
    }
    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
        self.memory.touch(key, expires_at).await
    }
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        self.memory.delete_expired().await
    }
    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.memory.list(principal).await
    }
}

/// `update` keeps conflicting, then a reread finds the session gone (after the first attempt,
/// or after the last): nothing is written, no cookie, and the closure's result on no values.
#[tokio::test]
async fn an_update_that_finds_the_session_gone_after_conflicts_writes_nothing() {
    for loads in [1, sessionware::defaults::UPDATE_ATTEMPTS] {
        let store = Contended {
            memory: MemoryStore::default(),
            loads: Arc::new(AtomicUsize::new(usize::MAX)),
        };
        let app = app_with(
            SessionLayer::new(store.clone()),
            get(|s: Session| async move {
                let n = s
                    .update("hits", |n: Option<i64>| n.unwrap_or(0) + 1)
                    .await?;
                Ok::<_, Error>(n.to_string())
            }),
        );
        let cookie = send(&app, "/write", None).await.cookie();
        // The request's own load, then `loads - 1` rereads, find the session.
        store.loads.store(loads, Ordering::SeqCst);
        let reply = send(&app, "/slow", Some(&cookie)).await;
        assert_eq!(reply.status, 200, "{loads}: {}", reply.body);
        assert_eq!(reply.body, "1", "{loads}");
        assert_eq!(reply.set_cookies(), Vec::<String>::new(), "{loads}");
        assert_eq!(store.memory.len(), 1, "{loads}: no new session");
    }
}
