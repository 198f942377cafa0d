//! The app kit's sharp edges: the crate's own keys are not a handler's to write, struct fields
//! are one level deep, and unread flash messages are bounded.

use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use sessionware::defaults::MAX_UNREAD_FLASHES;
use sessionware::{Error, Level, MemoryStore, Session, SessionLayer};

use crate::common::{send, send_ok};
use crate::support::routes;

/// `insert`, `update` and `insert_fields` refuse a key starting with `__` with a clear error,
/// so a handler cannot forge a flash message or replace the CSRF secret by a chosen name; the
/// crate's own writes of such keys still work.
#[tokio::test]
async fn reserved_keys_are_refused() {
    #[derive(Serialize)]
    struct Fields {
        a: i64,
    }
    let app: Router = routes()
        .route(
            "/try",
            get(|s: Session| async move {
                let insert = s.insert("__csrf", "mine").await;
                let flash = s.insert("__flash.0000000000000001", 1).await;
                let update = s
                    .update("__csrf", |_: Option<String>| "mine".to_owned())
                    .await;
                let fields = s.insert_fields("__flash", &Fields { a: 1 }).await;
                let refused = [insert, flash, update.map(|_| ()), fields]
                    .iter()
                    .all(|r| matches!(r, Err(Error::ReservedKey { .. })));
                // The crate's own keys still work beside the refusals.
                s.flash(Level::Info, "hello").await?;
                let token = s.csrf_token().await?;
                Ok::<_, Error>(format!("{refused} {}", s.verify_csrf(&token).await?))
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    assert_eq!(send_ok(&app, "/try", None).await.body, "true true");
}

/// The error names the key and the fix.
#[test]
fn the_reserved_key_error_says_what_to_do() {
    let message = Error::ReservedKey {
        key: "__csrf".to_owned(),
    }
    .to_string();
    assert!(
        message.contains("`__csrf`") && message.contains("reserved"),
        "{message}"
    );
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct User {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Prefs {
    #[serde(default)]
    theme: String,
}

/// The fields of `user` are `user.<name>`, one level: writing the `user` struct leaves the
/// struct kept under `user.prefs` alone, and reading `user` does not pick up its fields.
#[tokio::test]
async fn fields_are_one_level_deep() {
    let app: Router = routes()
        .route(
            "/both",
            get(|s: Session| async move {
                s.insert_fields(
                    "user.prefs",
                    &Prefs {
                        theme: "dark".into(),
                    },
                )
                .await?;
                s.insert_fields("user", &User { name: "ann".into() })
                    .await?;
                Ok::<_, Error>("ok")
            }),
        )
        .route(
            "/rename",
            get(|s: Session| async move {
                s.insert_fields("user", &User { name: "bob".into() })
                    .await?;
                let user: User = s.get_fields("user").await?;
                let prefs: Prefs = s.get_fields("user.prefs").await?;
                Ok::<_, Error>(format!("{} {}", user.name, prefs.theme))
            }),
        )
        .route(
            "/dotted",
            get(|s: Session| async move {
                let map: std::collections::BTreeMap<&str, i64> = [("a.b", 1)].into();
                let refused = matches!(
                    s.insert_fields("x", &map).await,
                    Err(Error::Serialize { .. })
                );
                Ok::<_, Error>(refused.to_string())
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send_ok(&app, "/both", None).await.cookie();
    assert_eq!(
        send_ok(&app, "/rename", Some(&cookie)).await.body,
        "bob dark"
    );
    assert_eq!(
        send_ok(&app, "/get/user.prefs.theme", Some(&cookie))
            .await
            .body,
        "dark"
    );
    assert_eq!(send_ok(&app, "/dotted", Some(&cookie)).await.body, "true");
}

/// A session whose messages nobody reads keeps the newest `MAX_UNREAD_FLASHES`.
#[tokio::test]
async fn unread_flash_messages_are_bounded() {
    let app: Router = routes()
        .route(
            "/flash/{n}",
            get(
                |s: Session, axum::extract::Path(n): axum::extract::Path<usize>| async move {
                    for i in 0..n {
                        s.flash(Level::Info, i.to_string()).await?;
                    }
                    Ok::<_, Error>("ok")
                },
            ),
        )
        .route(
            "/show",
            get(|s: Session| async move {
                let texts: Vec<String> = s
                    .take_flashes()
                    .await?
                    .into_iter()
                    .map(|m| m.text)
                    .collect();
                Ok::<_, Error>(texts.join(","))
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let extra = 7;
    let cookie = send_ok(&app, "/write", None).await.cookie();
    // Half in one request, the rest in another: the bound counts stored and pending ones.
    let half = (MAX_UNREAD_FLASHES + extra) / 2;
    send_ok(&app, &format!("/flash/{half}"), Some(&cookie)).await;
    send_ok(
        &app,
        &format!("/flash/{}", MAX_UNREAD_FLASHES + extra - half),
        Some(&cookie),
    )
    .await;
    let shown = send(&app, "/show", Some(&cookie)).await.body;
    let shown: Vec<&str> = shown.split(',').collect();
    assert_eq!(shown.len(), MAX_UNREAD_FLASHES, "{shown:?}");
    // The oldest were dropped: the first request's first `extra` messages.
    let expected_first = extra.to_string();
    assert_eq!(shown[0], expected_first.as_str());
}

/// `clear()` drops the app's values but not the crate's own keys: a CSRF token made before
/// still verifies (another tab's form keeps working), and an unread flash message is shown.
#[tokio::test]
async fn clear_keeps_the_csrf_secret_and_flashes() {
    let app: Router = routes()
        .route(
            "/token",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route(
            "/flash-and-clear",
            get(|s: Session| async move {
                s.flash(Level::Info, "bye").await?;
                s.clear().await
            }),
        )
        .route(
            "/verify/{token}",
            get(
                |s: Session, axum::extract::Path(token): axum::extract::Path<String>| async move {
                    Ok::<_, Error>(s.verify_csrf(&token).await?.to_string())
                },
            ),
        )
        .route(
            "/show",
            get(|s: Session| async move {
                let texts: Vec<String> = s
                    .take_flashes()
                    .await?
                    .into_iter()
                    .map(|m| m.text)
                    .collect();
                Ok::<_, Error>(texts.join(","))
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send_ok(&app, "/set/a/1", None).await.cookie();
    let token = send_ok(&app, "/token", Some(&cookie)).await.body;
    send_ok(&app, "/flash-and-clear", Some(&cookie)).await;
    assert_eq!(send_ok(&app, "/get/a", Some(&cookie)).await.body, "none");
    let verified = send_ok(&app, &format!("/verify/{token}"), Some(&cookie)).await;
    assert_eq!(verified.body, "true");
    assert_eq!(send_ok(&app, "/show", Some(&cookie)).await.body, "bye");
}

/// `CsrfLayer` lets a client that sends its session id in the id header through without a
/// token (a browser cannot add that header to a forged cross-site request), unless asked to
/// check those too; a cookie-carried session still needs its token.
#[tokio::test]
async fn csrf_exempts_sessions_carried_in_the_id_header() {
    use axum::body::Body;
    use axum::http::{header, HeaderName, Request};
    use sessionware::CsrfLayer;
    const HEADER: HeaderName = HeaderName::from_static("x-session-id");
    let build = |csrf: CsrfLayer| -> Router {
        routes()
            .route("/post", axum::routing::post(|| async { "done" }))
            .layer(csrf)
            .layer(SessionLayer::new(MemoryStore::default()).with_header(HEADER))
    };
    for check in [false, true] {
        let app = build(CsrfLayer::new().check_header_clients(check));
        let first = send_ok(&app, "/write", None).await;
        let id = first.headers[&HEADER].to_str().unwrap().to_owned();
        let cookie = first.cookie();
        let post = |by_header: bool| {
            let req = Request::post("/post");
            let req = if by_header {
                req.header(&HEADER, &id)
            } else {
                req.header(header::COOKIE, &cookie)
            };
            req.body(Body::empty()).unwrap()
        };
        let by_header = crate::common::send_request(&app, post(true)).await;
        let expected = if check { 403 } else { 200 };
        assert_eq!(by_header.status, expected, "check_header_clients({check})");
        let by_cookie = crate::common::send_request(&app, post(false)).await;
        assert_eq!(by_cookie.status, 403);
    }
}

/// `CsrfLayer::with_refusal` replaces the `403` for a missing or wrong token with the app's
/// response: a stale tab gets the app's redirect.
#[tokio::test]
async fn csrf_refusal_can_be_the_apps_response() {
    use axum::response::{IntoResponse, Redirect};
    use sessionware::CsrfLayer;
    let app: Router = routes()
        .route("/post", axum::routing::post(|| async { "done" }))
        .layer(CsrfLayer::new().with_refusal(|request| {
            Redirect::to(&format!("/login?from={}", request.uri.path())).into_response()
        }))
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send_ok(&app, "/write", None).await.cookie();
    let request = axum::http::Request::post("/post")
        .header(axum::http::header::COOKIE, &cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = crate::common::send_request(&app, request).await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.headers["location"], "/login?from=/post");
}

/// The test kit seeds with a typed key, and a seeded session gives a CSRF token that a form
/// post through `CsrfLayer` accepts (a made-up token is refused).
#[tokio::test]
async fn the_test_kit_seeds_typed_keys_and_csrf_tokens() {
    use axum::body::Body;
    use axum::http::{header, Request};
    use sessionware::{CsrfLayer, SessionKey};
    const CART: SessionKey<Vec<String>> = SessionKey::new("cart");
    let layer = SessionLayer::new(MemoryStore::default());
    let kit = layer.test_sessions();
    let app: Router = Router::new()
        .route(
            "/cart",
            axum::routing::post(|s: Session| async move {
                Ok::<_, Error>(s.get(CART).await?.unwrap_or_default().join(","))
            }),
        )
        .layer(CsrfLayer::new())
        .layer(layer);
    let seeded = kit
        .seed()
        .with(CART, vec!["apple".to_owned()])
        .create()
        .await
        .unwrap();
    let post = |token: String| {
        let mut request = Request::post("/cart")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf_token={token}")))
            .unwrap();
        seeded.add_to(&mut request);
        request
    };
    let token = seeded.csrf_token().unwrap();
    let reply = crate::common::send_request(&app, post(token)).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "apple"));
    let forged = crate::common::send_request(&app, post("made-up".to_owned())).await;
    assert_eq!(forged.status, 403);
}

/// A handle kept after the response holds a snapshot; `reload` reads what other requests
/// saved since, keeping the handle's own unsaved change on top.
#[tokio::test]
async fn reload_refreshes_a_kept_handle() {
    use std::sync::{Arc, Mutex};
    let kept: Arc<Mutex<Option<Session>>> = Arc::default();
    let keep = kept.clone();
    let app: Router = routes()
        .route(
            "/keep",
            get(move |s: Session| {
                let keep = keep.clone();
                async move {
                    s.get::<String>("a").await?;
                    *keep.lock().unwrap() = Some(s);
                    Ok::<_, Error>("kept")
                }
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send_ok(&app, "/set/a/1", None).await.cookie();
    send_ok(&app, "/keep", Some(&cookie)).await;
    let session = kept.lock().unwrap().take().unwrap();
    send_ok(&app, "/set/a/2", Some(&cookie)).await;
    session.insert("mine", "x").await.unwrap();
    assert_eq!(
        session.get::<String>("a").await.unwrap().as_deref(),
        Some("1")
    );
    session.reload().await.unwrap();
    assert_eq!(
        session.get::<String>("a").await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        session.get::<String>("mine").await.unwrap().as_deref(),
        Some("x")
    );
    session.save().await.unwrap();
    assert_eq!(send_ok(&app, "/get/mine", Some(&cookie)).await.body, "x");
    assert_eq!(send_ok(&app, "/get/a", Some(&cookie)).await.body, "2");
}
