//! `sessionware::auth`: route guards, the logged-in principal, the app's user, recent logins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sessionware::auth::{CurrentUser, FromPrincipal, LoggedIn, RequireLogin};
use sessionware::{Error, MemoryStore, Session, SessionLayer};

use crate::common::{send, send_ok};
use crate::support::Probe;

/// Pages behind `redirect_to`, an API behind `new()`, a sudo page behind `within`, and the
/// routes that log in and confirm.
fn guarded(layer: SessionLayer, recent: Duration) -> Router {
    Router::new()
        .route("/account", get(|| async { "account" }))
        .route_layer(RequireLogin::redirect_to("/login"))
        .merge(
            Router::new()
                .route("/api/me", get(|LoggedIn(p): LoggedIn| async move { p }))
                .route_layer(RequireLogin::new()),
        )
        .merge(
            Router::new()
                .route("/sudo", get(|| async { "sudo" }))
                .route_layer(RequireLogin::redirect_to("/confirm?x=1").within(recent)),
        )
        .route(
            "/login/{user}",
            get(
                |s: Session, axum::extract::Path(user): axum::extract::Path<String>| async move {
                    s.log_in(user).await
                },
            ),
        )
        .route(
            "/confirm",
            get(|s: Session| async move { s.confirm_login().await }),
        )
        .route(
            "/maybe",
            get(|user: Option<LoggedIn>| async move {
                user.map_or_else(|| "nobody".to_owned(), |LoggedIn(p)| p)
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn guards_answer_401_or_redirect_with_the_target() {
    let app = guarded(
        SessionLayer::new(MemoryStore::default()),
        Duration::from_secs(60),
    );
    let page = send(&app, "/account?tab=a%20b", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers["location"],
        "/login?next=%2Faccount%3Ftab%3Da%2520b"
    );
    let api = send(&app, "/api/me", None).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(api.body.contains("logged-in session"), "{}", api.body);
    // A login path with a query of its own gets `&next=`.
    let sudo = send(&app, "/sudo", None).await;
    assert_eq!(sudo.headers["location"], "/confirm?x=1&next=%2Fsudo");
    assert_eq!(send_ok(&app, "/maybe", None).await.body, "nobody");

    let cookie = send_ok(&app, "/login/ann", None).await.cookie();
    assert_eq!(
        send_ok(&app, "/account", Some(&cookie)).await.body,
        "account"
    );
    assert_eq!(send_ok(&app, "/api/me", Some(&cookie)).await.body, "ann");
    assert_eq!(send_ok(&app, "/sudo", Some(&cookie)).await.body, "sudo");
    assert_eq!(send_ok(&app, "/maybe", Some(&cookie)).await.body, "ann");
    // Unknown paths still answer 404 (route_layer).
    assert_eq!(
        send(&app, "/nowhere", None).await.status,
        StatusCode::NOT_FOUND
    );
}

/// A stale login gets the same answer as none, the target kept; `confirm_login` gives the
/// session a new id and a fresh time, and the guard lets it through again.
#[tokio::test]
async fn a_stale_login_must_be_confirmed() {
    let app = guarded(
        SessionLayer::new(MemoryStore::default()),
        Duration::from_millis(300),
    );
    let cookie = send_ok(&app, "/login/ann", None).await.cookie();
    assert_eq!(send_ok(&app, "/sudo", Some(&cookie)).await.body, "sudo");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = send(&app, "/sudo", Some(&cookie)).await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    assert_eq!(stale.headers["location"], "/confirm?x=1&next=%2Fsudo");
    // Still logged in for everything else.
    assert_eq!(
        send_ok(&app, "/account", Some(&cookie)).await.body,
        "account"
    );

    let confirmed = send_ok(&app, "/confirm", Some(&cookie)).await.cookie();
    assert_ne!(
        confirmed, cookie,
        "confirm_login must give the session a new id"
    );
    assert_eq!(send_ok(&app, "/sudo", Some(&confirmed)).await.body, "sudo");
    assert_eq!(send_ok(&app, "/api/me", Some(&confirmed)).await.body, "ann");
    assert_eq!(
        send(&app, "/api/me", Some(&cookie)).await.status,
        401,
        "the old id lives"
    );
}

/// A session logged in before stores kept the login time (the test kit seeds such a one) is
/// logged in, with an unknown time: stale for `within`. `confirm_login` on an anonymous
/// session is refused.
#[tokio::test]
async fn an_unknown_login_time_is_stale() {
    let layer = SessionLayer::new(MemoryStore::default());
    let kit = layer.test_sessions();
    let app = guarded(layer, Duration::from_secs(3600));
    let seeded = kit.seed().logged_in("ann").create().await.unwrap();
    let cookie = seeded.cookie();
    assert_eq!(send_ok(&app, "/api/me", Some(cookie)).await.body, "ann");
    assert_eq!(
        send(&app, "/sudo", Some(cookie)).await.status,
        StatusCode::SEE_OTHER
    );
    let anonymous: Router = Router::new()
        .route(
            "/confirm",
            get(|s: Session| async move {
                let refused = matches!(s.confirm_login().await, Err(Error::NotLoggedIn));
                refused.to_string()
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    assert_eq!(send_ok(&anonymous, "/confirm", None).await.body, "true");
}

/// A guarded request without a cookie costs no store call; one with a logged-in session costs
/// its load and writes nothing, and sets no cookie. Around a whole router, every path is
/// guarded.
#[tokio::test]
async fn guards_read_and_never_write() {
    let probe = Probe::default();
    let app = guarded(SessionLayer::new(probe.clone()), Duration::from_secs(60));
    send(&app, "/api/me", None).await;
    assert_eq!(
        probe.calls(),
        0,
        "a request without a cookie reached the store"
    );

    let cookie = send_ok(&app, "/login/ann", None).await.cookie();
    let writes = probe.writes();
    for path in ["/account", "/api/me", "/sudo"] {
        let reply = send_ok(&app, path, Some(&cookie)).await;
        assert!(
            reply.set_cookies().is_empty(),
            "{path}: {:?}",
            reply.set_cookies()
        );
    }
    assert_eq!(probe.writes(), writes, "a guard wrote to the store");

    let whole = Router::new()
        .route("/a", get(|| async { "a" }))
        .layer(RequireLogin::new())
        .layer(SessionLayer::new(MemoryStore::default()));
    assert_eq!(send(&whole, "/a", None).await.status, 401);
    assert_eq!(send(&whole, "/nowhere", None).await.status, 401);
}

#[derive(Clone, Debug)]
struct User {
    name: String,
}

#[derive(Clone, Default)]
struct Users {
    names: Arc<Mutex<Vec<(String, String)>>>,
    loads: Arc<AtomicUsize>,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl FromPrincipal<Users> for User {
    type Rejection = (StatusCode, &'static str);

    async fn from_principal(
        principal: &str,
        state: &Users,
    ) -> Result<Option<Self>, Self::Rejection> {
        state.loads.fetch_add(1, Ordering::SeqCst);
        if state.broken.load(Ordering::SeqCst) {
            return Err((StatusCode::SERVICE_UNAVAILABLE, "user database down"));
        }
        let names = state.names.lock().unwrap();
        Ok(names
            .iter()
            .find(|(id, _)| id == principal)
            .map(|(_, name)| User { name: name.clone() }))
    }
}

/// `CurrentUser` loads the user once per request however many extractors ask; a user gone
/// ends the session (removal cookie, deleted in the store) with a 401; the app's rejection is
/// answered as it is.
#[tokio::test]
async fn current_user_loads_once_and_ends_the_session_of_a_gone_user() {
    let users = Users::default();
    users
        .names
        .lock()
        .unwrap()
        .push(("u1".into(), "Ann".into()));
    let store = MemoryStore::default();
    let app: Router = Router::new()
        .route(
            "/account",
            get(
                |CurrentUser(a): CurrentUser<User>, CurrentUser(b): CurrentUser<User>| async move {
                    format!("{} {}", a.name, b.name)
                },
            ),
        )
        .route(
            "/login",
            get(|s: Session| async move { s.log_in("u1").await }),
        )
        .route(
            "/count",
            get(|State(users): State<Users>| async move {
                users.loads.load(Ordering::SeqCst).to_string()
            }),
        )
        .layer(SessionLayer::new(store.clone()))
        .with_state(users.clone());
    let cookie = send_ok(&app, "/login", None).await.cookie();
    assert_eq!(
        send_ok(&app, "/account", Some(&cookie)).await.body,
        "Ann Ann"
    );
    assert_eq!(
        users.loads.load(Ordering::SeqCst),
        1,
        "loaded more than once"
    );

    users.broken.store(true, Ordering::SeqCst);
    let down = send(&app, "/account", Some(&cookie)).await;
    assert_eq!(
        (down.status.as_u16(), down.body.as_str()),
        (503, "user database down")
    );
    users.broken.store(false, Ordering::SeqCst);

    users.names.lock().unwrap().clear();
    let gone = send(&app, "/account", Some(&cookie)).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert!(
        gone.set_cookie().unwrap().contains("Max-Age=0"),
        "{:?}",
        gone.set_cookies()
    );
    assert_eq!(store.len(), 0, "the session of a gone user lives on");
    assert_eq!(
        send(&app, "/account", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}
