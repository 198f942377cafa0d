//! Two app instances, each with its own store client, sharing one backend: a session created
//! through one is read, changed, cycled and destroyed through the other.

#![allow(dead_code)]

use sessionware::store::SessionStore;
use sessionware::SessionLayer;

use crate::common::{self, send_ok};

pub async fn shared_between_instances(one: impl SessionStore, two: impl SessionStore) {
    let (one, two) = (
        common::app(SessionLayer::new(one)),
        common::app(SessionLayer::new(two)),
    );
    let first = send_ok(&one, "/write", None).await;
    assert_eq!(first.body, "1");
    let cookie = first.first_cookie().unwrap();
    assert_eq!(
        send_ok(&two, "/write", Some(&cookie)).await.body,
        "2",
        "instance two did not see the session"
    );
    assert_eq!(
        send_ok(&one, "/read", Some(&cookie)).await.body,
        "2",
        "instance one did not see the change"
    );

    let cycled = send_ok(&two, "/cycle", Some(&cookie))
        .await
        .first_cookie()
        .unwrap();
    assert_eq!(send_ok(&one, "/read", Some(&cycled)).await.body, "2");
    assert_eq!(
        send_ok(&one, "/read", Some(&cookie)).await.body,
        "0",
        "the old id survived a cycle elsewhere"
    );

    send_ok(&one, "/destroy", Some(&cycled)).await;
    assert_eq!(
        send_ok(&two, "/read", Some(&cycled)).await.body,
        "0",
        "a destroyed session lived on"
    );
}

/// Sessions by user across instances: a log-in through one instance is known to another and to
/// a third started afterwards (a restart: the principal is in the store, not the process), and
/// `revoke_all` through one kills the session on the others.
pub async fn principals_shared_between_instances(
    one: impl SessionStore,
    two: impl SessionStore,
    restarted: impl SessionStore,
) {
    let principal = format!(
        "user-{}",
        sessionware::SessionId::generate().store_key().short()
    );
    let layer = SessionLayer::new(one);
    let sessions = layer.sessions();
    let (one, two) = (common::app(layer), common::app(SessionLayer::new(two)));
    let login = format!("/login/{principal}/phone");
    let cookie = send_ok(&two, &login, None).await.cookie();
    send_ok(&two, "/write", Some(&cookie)).await;
    assert_eq!(
        send_ok(&one, "/whoami", Some(&cookie)).await.body,
        principal
    );

    let restarted = SessionLayer::new(restarted);
    let listed = restarted.sessions().list(&principal).await.unwrap();
    assert_eq!(listed.len(), 1, "the log-in was lost in a restart");
    assert_eq!(listed[0].label(), Some("phone"));
    let restarted = common::app(restarted);
    assert_eq!(
        send_ok(&restarted, "/whoami", Some(&cookie)).await.body,
        principal
    );

    assert_eq!(sessions.revoke_all(&principal).await.unwrap(), 1);
    for app in [&two, &restarted, &one] {
        assert_eq!(
            send_ok(app, "/whoami", Some(&cookie)).await.body,
            "nobody",
            "a revoked session lived on in another instance"
        );
        assert_eq!(send_ok(app, "/read", Some(&cookie)).await.body, "0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_principals_shared_between_instances() {
    // One process, one store: the layers are the instances.
    let store = sessionware::MemoryStore::default();
    principals_shared_between_instances(store.clone(), store.clone(), store).await;
}

/// A new client of the test PostgreSQL: one app instance (or one after a restart).
#[cfg(feature = "postgres")]
async fn postgres_instance() -> sessionware::PostgresStore {
    let url = crate::common::env_url("DATABASE_URL");
    let store = sessionware::PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A new client of the test Redis (standalone).
#[cfg(feature = "redis")]
async fn redis_instance() -> sessionware::RedisStore {
    let url = crate::common::env_url("REDIS_URL");
    sessionware::RedisStore::connect(&url)
        .await
        .unwrap()
        .with_key_prefix("sessionware-test-instances:")
}

/// A new client of the test Redis Cluster.
#[cfg(feature = "redis")]
async fn redis_cluster_instance() -> sessionware::RedisStore {
    let urls = crate::common::env_url("REDIS_CLUSTER_URLS");
    let store = sessionware::RedisStore::connect_cluster(urls.split(','))
        .await
        .unwrap()
        .with_key_prefix("sessionware-test-instances:");
    assert!(store.is_cluster());
    store
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_principals_shared_between_instances() {
    let connect = crate::stores::sqlite;
    principals_shared_between_instances(connect().await, connect().await, connect().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_principals_shared_between_instances() {
    let connect = postgres_instance;
    principals_shared_between_instances(connect().await, connect().await, connect().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_principals_shared_between_instances() {
    let connect = redis_instance;
    principals_shared_between_instances(connect().await, connect().await, connect().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_principals_shared_between_instances() {
    let connect = redis_cluster_instance;
    principals_shared_between_instances(connect().await, connect().await, connect().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances() {
    shared_between_instances(postgres_instance().await, postgres_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_instances() {
    shared_between_instances(redis_instance().await, redis_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_two_instances() {
    let (one, two) = (
        redis_cluster_instance().await,
        redis_cluster_instance().await,
    );
    shared_between_instances(one, two).await;
}

/// Log-ins across two instances on one store. A request still carrying the pre-login id,
/// arriving at the other instance after the log-in's cycle completed, saves nothing and
/// leaves the cookie alone (it used to start a new session whose cookie replaced the log-in's:
/// a slow tab logged the user out). And simultaneous log-ins of one principal under a cap,
/// spread over both instances, leave exactly the cap of live, listed sessions (each used to
/// keep itself and revoke the others, so two log-ins under a cap of 1 left none).
pub async fn log_ins_across_instances<S: SessionStore + Clone>(one: S, two: S) {
    use std::num::NonZeroUsize;
    use std::sync::Arc;

    use axum::extract::Path;
    use axum::routing::get;
    use sessionware::{Error, Session};
    use tokio::sync::Barrier;

    let principal = || {
        format!(
            "user-{}",
            sessionware::SessionId::generate().store_key().short()
        )
    };

    // The old id after a completed log-in.
    let (a, b) = (
        common::app(SessionLayer::new(one.clone())),
        common::app(SessionLayer::new(two.clone())),
    );
    let ann = principal();
    let old = send_ok(&a, "/write", None).await.cookie();
    let new = send_ok(&a, &format!("/login/{ann}/laptop"), Some(&old))
        .await
        .cookie();
    let late = send_ok(&b, "/write", Some(&old)).await;
    assert!(
        late.set_cookies().is_empty(),
        "a request with the pre-login id set a cookie: {:?}",
        late.set_cookies()
    );
    assert_eq!(send_ok(&b, "/whoami", Some(&new)).await.body, ann);
    assert_eq!(
        send_ok(&a, "/read", Some(&new)).await.body,
        "1",
        "the late write landed"
    );

    // Simultaneous log-ins under a cap.
    for (cap, devices) in [(1, 2), (2, 3), (1, 4)] {
        for _ in 0..5 {
            let user = principal();
            let barrier = Arc::new(Barrier::new(devices));
            let app = |store: S| {
                let barrier = barrier.clone();
                let layer = SessionLayer::new(store)
                    .with_max_sessions_per_principal(NonZeroUsize::new(cap).unwrap());
                let sessions = layer.sessions();
                let router = common::routes()
                    .route(
                        "/login-together/{user}",
                        get(move |s: Session, Path(user): Path<String>| {
                            let barrier = barrier.clone();
                            async move {
                                s.get::<i64>("n").await?;
                                barrier.wait().await;
                                s.log_in(user).await?;
                                Ok::<_, Error>("in")
                            }
                        }),
                    )
                    .layer(layer);
                (router, sessions)
            };
            let (a, sessions) = app(one.clone());
            let (b, _) = app(two.clone());
            let mut logins = Vec::new();
            for device in 0..devices {
                let app = if device % 2 == 0 {
                    a.clone()
                } else {
                    b.clone()
                };
                let cookie = send_ok(&app, "/write", None).await.cookie();
                let path = format!("/login-together/{user}");
                logins.push(tokio::spawn(async move {
                    send_ok(&app, &path, Some(&cookie)).await.cookie()
                }));
            }
            let mut cookies = Vec::new();
            for login in logins {
                cookies.push(login.await.unwrap());
            }
            let listed = sessions.list(&user).await.unwrap();
            assert_eq!(listed.len(), cap, "cap {cap}, {devices} log-ins at once");
            let mut live = 0;
            for cookie in &cookies {
                if send_ok(&a, "/whoami", Some(cookie)).await.body == user {
                    live += 1;
                }
            }
            assert_eq!(
                live, cap,
                "cap {cap}, {devices} log-ins at once: live sessions"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_log_ins_across_instances() {
    let store = sessionware::MemoryStore::default();
    log_ins_across_instances(store.clone(), store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_ins_across_instances() {
    let connect = crate::stores::sqlite;
    log_ins_across_instances(connect().await, connect().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_log_ins_across_instances() {
    log_ins_across_instances(postgres_instance().await, postgres_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_log_ins_across_instances() {
    log_ins_across_instances(redis_instance().await, redis_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_log_ins_across_instances() {
    log_ins_across_instances(
        redis_cluster_instance().await,
        redis_cluster_instance().await,
    )
    .await;
}

/// The login time travels with the session: logged in through one instance, another sees a
/// recent login (and lets a `within` guard pass); `confirm_login` through that one gives a new
/// id and a fresh time the first sees.
pub async fn recent_login_across_instances<S: SessionStore + Clone>(one: S, two: S) {
    use std::time::{Duration, SystemTime};

    use axum::routing::get;
    use sessionware::auth::RequireLogin;
    use sessionware::{Error, Session};

    let app = |store: S| {
        common::routes()
            .route(
                "/logged-in-at",
                get(|s: Session| async move {
                    // When the login was, in Unix milliseconds.
                    let at = s.authenticated_at().await?;
                    let at = at.and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok());
                    Ok::<_, Error>(at.map_or("none".to_owned(), |at| at.as_millis().to_string()))
                }),
            )
            .route(
                "/confirm",
                get(|s: Session| async move { s.confirm_login().await }),
            )
            .merge(
                axum::Router::new()
                    .route("/sudo", get(|| async { "sudo" }))
                    .route_layer(RequireLogin::new().within(Duration::from_secs(60))),
            )
            .layer(SessionLayer::new(store))
    };
    let (a, b) = (app(one), app(two));
    let user = format!(
        "user-{}",
        sessionware::SessionId::generate().store_key().short()
    );
    assert_eq!(send_ok(&a, "/logged-in-at", None).await.body, "none");
    let cookie = send_ok(&a, &format!("/login/{user}/laptop"), None)
        .await
        .cookie();
    let now = || {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        u64::try_from(now.as_millis()).unwrap()
    };
    let at: u64 = send_ok(&b, "/logged-in-at", Some(&cookie))
        .await
        .body
        .parse()
        .unwrap();
    assert!(now() - at < 60_000, "logged in at {at}, now {}", now());
    assert_eq!(send_ok(&b, "/sudo", Some(&cookie)).await.body, "sudo");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let confirmed = send_ok(&b, "/confirm", Some(&cookie)).await.cookie();
    assert_ne!(confirmed, cookie);
    let confirmed_at: u64 = send_ok(&a, "/logged-in-at", Some(&confirmed))
        .await
        .body
        .parse()
        .unwrap();
    assert!(
        confirmed_at >= at + 20,
        "confirm_login kept the old time: {confirmed_at}, logged in at {at}"
    );
    assert_eq!(send_ok(&a, "/whoami", Some(&confirmed)).await.body, user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_recent_login_across_instances() {
    let store = sessionware::MemoryStore::default();
    recent_login_across_instances(store.clone(), store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_recent_login_across_instances() {
    let connect = crate::stores::sqlite;
    recent_login_across_instances(connect().await, connect().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recent_login_across_instances() {
    recent_login_across_instances(postgres_instance().await, postgres_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_recent_login_across_instances() {
    recent_login_across_instances(redis_instance().await, redis_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_recent_login_across_instances() {
    recent_login_across_instances(
        redis_cluster_instance().await,
        redis_cluster_instance().await,
    )
    .await;
}

/// Events across two instances on one store: a log-in through one is reported by its hook, a
/// revocation through the other's `Sessions` by that one's, once per session ended.
pub async fn events_across_instances<S: SessionStore + Clone>(one: S, two: S) {
    use std::sync::{Arc, Mutex};

    use sessionware::events::{EventKind, SessionEvent};

    type Seen = Arc<Mutex<Vec<(EventKind, Option<String>)>>>;
    let layer = |store: S| {
        let seen: Seen = Arc::default();
        let log = Arc::clone(&seen);
        let layer = SessionLayer::new(store).on_event(move |event: &SessionEvent| {
            let entry = (event.kind(), event.principal().map(str::to_owned));
            log.lock().unwrap().push(entry);
        });
        (layer, seen)
    };
    let (a, seen_a) = layer(one);
    let (b, seen_b) = layer(two);
    let sessions_b = b.sessions();
    let (a, _b) = (common::app(a), common::app(b));
    let user = format!(
        "user-{}",
        sessionware::SessionId::generate().store_key().short()
    );
    let laptop = send_ok(&a, &format!("/login/{user}/laptop"), None)
        .await
        .cookie();
    send_ok(&a, &format!("/login/{user}/phone"), None).await;
    let logged_in = seen_a.lock().unwrap().clone();
    assert_eq!(
        logged_in
            .iter()
            .filter(|e| **e == (EventKind::LoggedIn, Some(user.clone())))
            .count(),
        2,
        "{logged_in:?}"
    );
    assert!(seen_b.lock().unwrap().is_empty());

    assert_eq!(sessions_b.revoke_all(&user).await.unwrap(), 2);
    let revoked = seen_b.lock().unwrap().clone();
    assert_eq!(
        revoked,
        vec![(EventKind::Revoked, Some(user.clone())); 2],
        "{revoked:?}"
    );
    assert_eq!(send_ok(&a, "/whoami", Some(&laptop)).await.body, "nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_events_across_instances() {
    let store = sessionware::MemoryStore::default();
    events_across_instances(store.clone(), store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_events_across_instances() {
    let connect = crate::stores::sqlite;
    events_across_instances(connect().await, connect().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_across_instances() {
    events_across_instances(postgres_instance().await, postgres_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_events_across_instances() {
    events_across_instances(redis_instance().await, redis_instance().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_events_across_instances() {
    events_across_instances(
        redis_cluster_instance().await,
        redis_cluster_instance().await,
    )
    .await;
}
