//! What apps build on sessions, through the layer: typed keys and struct fields, flash messages,
//! CSRF tokens and the test kit, with real concurrency where the claim is about concurrency.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use sessionware::{CsrfLayer, Error, Level, MemoryStore, Session, SessionKey, SessionLayer};
use tokio::sync::Barrier;

use crate::common::{send, send_ok, send_request, Reply};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

const CART: SessionKey<Cart> = SessionKey::new("cart");

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Prefs {
    #[serde(default)]
    theme: String,
    #[serde(default)]
    language: String,
}

// --- typed data -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_typed_cart_with_update_keeps_every_concurrent_add() {
    const ADDS: usize = 8;
    let barrier = Arc::new(Barrier::new(ADDS));
    let app = Router::new()
        .route(
            "/add/{item}",
            get(move |s: Session, Path(item): Path<String>| {
                let barrier = barrier.clone();
                async move {
                    s.get(CART).await?;
                    barrier.wait().await;
                    s.update(CART, |cart| {
                        let mut cart = cart.unwrap_or_default();
                        cart.items.push(item.clone());
                        cart
                    })
                    .await?;
                    Ok::<_, Error>(())
                }
            }),
        )
        .route(
            "/cart",
            get(|s: Session| async move {
                let mut items = s.get(CART).await?.unwrap_or_default().items;
                items.sort();
                Ok::<_, Error>(items.join(","))
            }),
        )
        .route(
            "/start",
            get(|s: Session| async move { s.insert(CART, Cart::default()).await }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send_ok(&app, "/start", None).await.cookie();
    let tasks: Vec<_> = (0..ADDS)
        .map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { send(&app, &format!("/add/i{i}"), Some(&cookie)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status, StatusCode::OK);
    }
    let expected: Vec<String> = (0..ADDS).map(|i| format!("i{i}")).collect();
    assert_eq!(
        send_ok(&app, "/cart", Some(&cookie)).await.body,
        expected.join(",")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_requests_changing_different_fields_both_keep_their_change() {
    let barrier = Arc::new(Barrier::new(2));
    let app = Router::new()
        .route(
            "/set/{field}/{value}",
            get(
                move |s: Session, Path((field, value)): Path<(String, String)>| {
                    let barrier = barrier.clone();
                    async move {
                        // Both read the whole struct before either writes it back.
                        let mut prefs: Prefs = s.get_fields("prefs").await?;
                        barrier.wait().await;
                        match field.as_str() {
                            "theme" => prefs.theme = value,
                            _ => prefs.language = value,
                        }
                        s.insert_fields("prefs", &prefs).await
                    }
                },
            ),
        )
        .route(
            "/prefs",
            get(|s: Session| async move {
                let prefs: Prefs = s.get_fields("prefs").await?;
                Ok::<_, Error>(format!("{}/{}", prefs.theme, prefs.language))
            }),
        )
        .route(
            "/start",
            get(|s: Session| async move {
                let prefs = Prefs {
                    theme: "light".into(),
                    language: "en".into(),
                };
                s.insert_fields("prefs", &prefs).await
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send_ok(&app, "/start", None).await.cookie();
    assert_eq!(
        send_ok(&app, "/prefs", Some(&cookie)).await.body,
        "light/en"
    );
    let (a, b) = tokio::join!(
        send(&app, "/set/theme/dark", Some(&cookie)),
        send(&app, "/set/language/pl", Some(&cookie)),
    );
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        send_ok(&app, "/prefs", Some(&cookie)).await.body,
        "dark/pl",
        "one request's field was lost"
    );
}

// --- flash messages ---------------------------------------------------------------------------

fn flash_app(store: impl sessionware::store::SessionStore) -> Router {
    crate::common::flash_routes()
        .route(
            "/flash-two",
            get(|s: Session| async move {
                s.flash(Level::Success, "first").await?;
                s.flash(Level::Warning, "second").await
            }),
        )
        .route(
            "/flash-and-fail",
            get(|s: Session| async move {
                s.flash(Level::Error, "lost").await?;
                Ok::<_, Error>(StatusCode::INTERNAL_SERVER_ERROR)
            }),
        )
        .layer(SessionLayer::new(store))
}

#[tokio::test]
async fn a_flash_shows_once_in_order_and_not_after_a_5xx() {
    let app = flash_app(MemoryStore::default());
    let cookie = send_ok(&app, "/flash-two", None).await.cookie();
    // (Racing pages: `conformance::apps::flash_is_taken_once`, on every store.)
    assert_eq!(
        send_ok(&app, "/show", Some(&cookie)).await.body,
        "success:first,warning:second"
    );
    assert_eq!(
        send_ok(&app, "/show", Some(&cookie)).await.body,
        "",
        "shown twice"
    );

    let failed = send(&app, "/flash-and-fail", Some(&cookie)).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        send_ok(&app, "/show", Some(&cookie)).await.body,
        "",
        "a flash of a failed request was kept"
    );
}

// --- CSRF -------------------------------------------------------------------------------------

fn csrf_app(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/form",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route("/save", post(|| async { "saved" }))
        .route(
            "/login",
            post(|s: Session| async move { s.log_in("ann").await }),
        )
        .layer(CsrfLayer::new())
        .layer(layer)
}

fn post_form(path: &str, cookie: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

/// A session with a token: `(cookie, token)`.
async fn form(app: &Router, cookie: Option<&str>) -> (String, String) {
    let reply = send_ok(app, "/form", cookie).await;
    let cookie = reply
        .first_cookie()
        .or_else(|| cookie.map(str::to_owned))
        .unwrap();
    (cookie, reply.body)
}

#[tokio::test]
async fn unsafe_methods_need_a_token_of_their_own_session() {
    let app = csrf_app(SessionLayer::new(MemoryStore::default()));
    let (cookie, token) = form(&app, None).await;
    let (_, other_token) = form(&app, None).await;
    let (_, second_token) = form(&app, Some(&cookie)).await;
    assert_ne!(token, second_token, "tokens are masked per form");

    let ok = send_request(
        &app,
        post_form("/save", &cookie, format!("a=1&csrf_token={token}")),
    )
    .await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "saved"));
    let again = post_form("/save", &cookie, format!("csrf_token={second_token}"));
    assert_eq!(send_request(&app, again).await.status, StatusCode::OK);

    let missing = send_request(&app, post_form("/save", &cookie, "a=1".into())).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(
        missing.body.contains("csrf_token") && missing.body.contains("x-csrf-token"),
        "{}",
        missing.body
    );

    let foreign = post_form("/save", &cookie, format!("csrf_token={other_token}"));
    let foreign = send_request(&app, foreign).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(
        foreign.body.contains("does not belong to this session"),
        "{}",
        foreign.body
    );

    // The header works for any body; safe methods pass without a token.
    for method in ["PUT", "PATCH", "DELETE"] {
        let request = |token: Option<&str>| {
            let mut request = Request::builder()
                .method(method)
                .uri("/save")
                .header(header::COOKIE, &cookie);
            if let Some(token) = token {
                request = request.header("x-csrf-token", token);
            }
            request.body(Body::from("{}")).unwrap()
        };
        assert_eq!(
            send_request(&app, request(None)).await.status,
            StatusCode::FORBIDDEN,
            "{method}"
        );
        // 405: the route has no such method, but the request got past the check.
        assert_eq!(
            send_request(&app, request(Some(&token))).await.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    assert_eq!(
        send(&app, "/form", Some(&cookie)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn log_in_rotates_the_csrf_secret() {
    let app = csrf_app(SessionLayer::new(MemoryStore::default()));
    let (cookie, token) = form(&app, None).await;
    let login = send_request(
        &app,
        post_form("/login", &cookie, format!("csrf_token={token}")),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    let logged_in = login.cookie();
    let stale = send_request(
        &app,
        post_form("/save", &logged_in, format!("csrf_token={token}")),
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::FORBIDDEN,
        "a token from before the log-in still works"
    );
    let (_, fresh) = form(&app, Some(&logged_in)).await;
    let ok = send_request(
        &app,
        post_form("/save", &logged_in, format!("csrf_token={fresh}")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_forms_and_a_missing_session_layer_are_named() {
    let app = Router::new()
        .route("/save", post(|| async { "saved" }))
        .layer(CsrfLayer::new().with_max_form_size(16))
        .layer(SessionLayer::new(MemoryStore::default()));
    let big = send_request(
        &app,
        post_form("/save", "id=x", "a=".to_owned() + &"b".repeat(100)),
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);

    let no_session = Router::new()
        .route("/save", post(|| async { "saved" }))
        .layer(CsrfLayer::new());
    let reply: Reply = send_request(&no_session, post_form("/save", "id=x", String::new())).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.body.contains("apply SessionLayer outside it"),
        "{}",
        reply.body
    );
}

// --- the test kit -----------------------------------------------------------------------------

#[tokio::test]
async fn a_seeded_session_never_shows_its_id_in_debug_output() {
    let layer = SessionLayer::new(MemoryStore::default());
    let seeded = layer.test_sessions().seed().create().await.unwrap();
    // A plain cookie's value is the id itself.
    let (_, value) = seeded.cookie().split_once('=').unwrap();
    let shown = format!("{seeded:?}");
    assert!(!shown.contains(value), "{shown}");
}

#[tokio::test]
async fn the_test_kit_seeds_a_logged_in_session_and_reads_a_response_back() {
    let layer = SessionLayer::new(MemoryStore::default()).with_signed(sessionware::Key::generate());
    let kit = layer.test_sessions();
    let app = crate::common::app(layer);
    let seeded = kit
        .seed()
        .with("counter", 41)
        .logged_in_with_label("ann", "test")
        .create()
        .await
        .unwrap();
    assert_eq!(
        send_ok(&app, "/whoami", Some(seeded.cookie())).await.body,
        "ann"
    );
    assert_eq!(
        send_ok(&app, "/write", Some(seeded.cookie())).await.body,
        "42"
    );
    let after = kit.session_for(&seeded).await.unwrap().unwrap();
    assert_eq!(after.data["counter"], 42);

    // A response that cycles the id: the kit follows the new cookie.
    let mut request = Request::get("/cycle").body(Body::empty()).unwrap();
    seeded.add_to(&mut request);
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    let moved = kit.session_of(&response).await.unwrap().expect("a session");
    assert_eq!(moved.data["counter"], 42);
    assert_eq!(moved.owner.unwrap().principal, "ann");
    assert!(
        kit.session_for(&seeded).await.unwrap().is_none(),
        "the old id lives"
    );
}
