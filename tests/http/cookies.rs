//! The cookie: defaults, options, and every kind of bad input.

use std::time::Duration;

use sessionware::{Expiry, Key, MemoryStore, SameSite, SessionId, SessionLayer};

use crate::common::send;
use crate::support::{app, Probe};

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn untouched_session_costs_no_store_call_and_no_cookie() {
    let probe = Probe::default();
    let app = app(SessionLayer::new(probe.clone()));
    let first = send(&app, "/write", None).await;
    let cookie = first.cookie();
    let calls = probe.calls();

    for cookie in [None, Some(cookie.as_str()), Some("id=garbage")] {
        let reply = send(&app, "/plain", cookie).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.set_cookie(), None);
    }
    assert_eq!(
        probe.calls(),
        calls,
        "a route that ignores the session touched the store"
    );
}

#[tokio::test]
async fn defaults_are_secure() {
    let app = app(SessionLayer::new(MemoryStore::default()));
    let set = send(&app, "/write", None).await.set_cookie().unwrap();
    assert!(set.starts_with("id="), "{set}");
    let attrs = attributes(&set);
    for expected in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            attrs.iter().any(|a| a == expected),
            "{expected} missing in {set}"
        );
    }
    // A browser-session cookie, host-only.
    assert!(
        !attrs.iter().any(|a| a.starts_with("Domain")
            || a.starts_with("Max-Age")
            || a.starts_with("Expires")),
        "{set}"
    );
}

#[tokio::test]
async fn every_builder_option_reaches_the_cookie() {
    let layer = SessionLayer::new(MemoryStore::default())
        .with_cookie_name("sid")
        .with_secure(false)
        .with_http_only(false)
        .with_same_site(SameSite::Strict)
        .with_path("/app")
        .with_domain("example.com")
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(600)));
    let set = send(&app(layer), "/write", None)
        .await
        .set_cookie()
        .unwrap();
    assert!(set.starts_with("sid="), "{set}");
    let attrs = attributes(&set);
    for expected in [
        "SameSite=Strict",
        "Path=/app",
        "Domain=example.com",
        "Max-Age=600",
    ] {
        assert!(
            attrs.iter().any(|a| a == expected),
            "{expected} missing in {set}"
        );
    }
    assert!(
        !attrs.iter().any(|a| a == "Secure" || a == "HttpOnly"),
        "{set}"
    );

    let none = SessionLayer::new(MemoryStore::default()).with_same_site(SameSite::None);
    let set = send(&app(none), "/write", None).await.set_cookie().unwrap();
    assert!(
        attributes(&set).iter().any(|a| a == "SameSite=None"),
        "{set}"
    );
}

#[tokio::test]
async fn absolute_timeout_caps_the_cookie_max_age() {
    let layer = SessionLayer::new(MemoryStore::default())
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(3600)))
        .with_absolute_timeout(Duration::from_secs(60));
    let set = send(&app(layer), "/write", None)
        .await
        .set_cookie()
        .unwrap();
    let max_age = attributes(&set)
        .into_iter()
        .find_map(|a| {
            a.strip_prefix("Max-Age=")
                .map(|v| v.parse::<i64>().unwrap())
        })
        .unwrap();
    assert!((58..=60).contains(&max_age), "{set}");
}

/// Values a client may send in place of a good id; each must give a fresh session, never a 5xx.
#[tokio::test]
async fn bad_cookies_give_a_fresh_session() {
    let store = MemoryStore::default();
    let app = app(SessionLayer::new(store.clone()));
    let a = send(&app, "/write", None).await.cookie();
    let b = send(&app, "/write", None).await.cookie();
    send(&app, "/write", Some(&b)).await;
    let oversized = format!("id={}", "a".repeat(8 * 1024));
    let valid_id = a.trim_start_matches("id=").to_owned();
    let cases = [
        "id=not-an-id".to_owned(),
        "id=".to_owned(),
        "id".to_owned(),
        ";;;==;".to_owned(),
        oversized,
        format!("id={}", valid_id.to_uppercase()),
        format!("id={valid_id}x"),
        format!("id=\"{valid_id}\""),
        format!("{a}; {b}"), // two different sessions under one name
        format!("{b}; {a}"),
    ];
    for cookie in &cases {
        let reply = send(&app, "/write", Some(cookie)).await;
        assert_eq!(reply.status, 200, "{cookie}");
        assert_eq!(reply.body, "1", "{cookie} reached an existing session");
        let new = reply.cookie();
        assert_ne!(new, a);
        assert_ne!(new, b);
    }
    // Nothing already saved was lost or changed.
    assert_eq!(send(&app, "/read", Some(&a)).await.body, "1");
    assert_eq!(send(&app, "/read", Some(&b)).await.body, "2");
    // The same id twice is not ambiguous.
    assert_eq!(
        send(&app, "/read", Some(&format!("{a}; {a}"))).await.body,
        "1"
    );
}

#[tokio::test]
async fn non_utf8_cookie_gives_a_fresh_session() {
    use axum::body::Body;
    use axum::http::{header, HeaderValue, Request};
    let app = app(SessionLayer::new(MemoryStore::default()));
    let mut req = Request::get("/write").body(Body::empty()).unwrap();
    let raw = HeaderValue::from_bytes(b"id=\xff\xfe\xfd; other=\xc3\x28").unwrap();
    req.headers_mut().insert(header::COOKIE, raw);
    let reply = crate::common::send_request(&app, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "1");
}

#[tokio::test]
async fn unknown_id_is_never_adopted() {
    let store = MemoryStore::default();
    let app = app(SessionLayer::new(store.clone()));
    let chosen = SessionId::generate();
    let reply = send(&app, "/write", Some(&format!("id={}", chosen.expose()))).await;
    assert_eq!(reply.body, "1");
    let issued = reply.cookie();
    assert_ne!(issued, format!("id={}", chosen.expose()));
    use sessionware::store::SessionStore;
    assert!(store.load(&chosen.store_key()).await.unwrap().is_none());
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn tampered_signed_and_private_cookies_are_refused() {
    for private in [false, true] {
        let key = Key::generate();
        let layer = SessionLayer::new(MemoryStore::default());
        let layer = if private {
            layer.with_private(key)
        } else {
            layer.with_signed(key)
        };
        let app = app(layer);
        let good = send(&app, "/write", None).await.cookie();
        assert_eq!(send(&app, "/write", Some(&good)).await.body, "2");

        // Flip one character in the signature/ciphertext part, and one in the id part.
        for position in [4, good.len() - 3] {
            let mut bytes = good.clone().into_bytes();
            bytes[position] = if bytes[position] == b'a' { b'b' } else { b'a' };
            let tampered = String::from_utf8(bytes).unwrap();
            let reply = send(&app, "/read", Some(&tampered)).await;
            assert_eq!(
                (reply.status.as_u16(), reply.body.as_str()),
                (200, "0"),
                "private={private} {tampered}"
            );
        }
        // A bare id, as a plain cookie would carry it, is refused too.
        let id = SessionId::generate();
        assert_eq!(
            send(&app, "/read", Some(&format!("id={}", id.expose())))
                .await
                .body,
            "0"
        );
        assert_eq!(send(&app, "/read", Some(&good)).await.body, "2");
    }
}

#[tokio::test]
async fn previous_key_is_accepted_and_reissued_with_the_current_one() {
    for private in [false, true] {
        let store = MemoryStore::default();
        let (old, new) = (Key::generate(), Key::generate());
        let with = |layer: SessionLayer, key: Key| {
            if private {
                layer.with_private(key)
            } else {
                layer.with_signed(key)
            }
        };
        let before = app(with(SessionLayer::new(store.clone()), old.clone()));
        let cookie = send(&before, "/write", None).await.cookie();

        let rotated =
            app(with(SessionLayer::new(store.clone()), new.clone()).with_previous_keys([old]));
        let reply = send(&rotated, "/read", Some(&cookie)).await;
        assert_eq!(reply.body, "1");
        let reissued = reply.cookie();
        assert_ne!(reissued, cookie);

        // Only the new key is needed from now on.
        let after = app(with(SessionLayer::new(store.clone()), new));
        assert_eq!(send(&after, "/read", Some(&reissued)).await.body, "1");
        assert_eq!(send(&after, "/read", Some(&cookie)).await.body, "0");
    }
}

/// HTTP/2 clients may split cookies over several `Cookie` headers.
#[tokio::test]
async fn id_is_found_in_any_of_several_cookie_headers() {
    use axum::body::Body;
    use axum::http::{header, Request};
    let app = app(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&app, "/write", None).await.cookie();
    let req = Request::get("/read")
        .header(header::COOKIE, "theme=dark")
        .header(header::COOKIE, cookie.as_str())
        .body(Body::empty())
        .unwrap();
    assert_eq!(crate::common::send_request(&app, req).await.body, "1");
}

#[tokio::test]
async fn responses_that_set_or_clear_the_id_are_not_cacheable() {
    use axum::http::header;
    let app = app(SessionLayer::new(MemoryStore::default()));
    let created = send(&app, "/write", None).await;
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(created.headers[header::VARY], "cookie");
    let cookie = created.cookie();
    let removed = send(&app, "/destroy", Some(&cookie)).await;
    assert_eq!(removed.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(removed.headers[header::VARY], "cookie");

    // Nothing to hide: untouched and read-only responses keep their cacheability.
    let plain = send(&app, "/plain", None).await;
    assert!(!plain.headers.contains_key(header::CACHE_CONTROL));
    assert!(!plain.headers.contains_key(header::VARY));
}

#[tokio::test]
async fn a_handler_cache_policy_is_kept_and_vary_is_merged() {
    use axum::http::{header, HeaderName};
    use axum::routing::get;
    use sessionware::Session;
    let app = crate::support::routes()
        .route(
            "/private",
            get(|s: Session| async move {
                s.insert("x", 1).await.unwrap();
                (
                    [
                        (header::CACHE_CONTROL, "private, max-age=0"),
                        (header::VARY, "Accept-Encoding"),
                    ],
                    "ok",
                )
            }),
        )
        .layer(
            SessionLayer::new(MemoryStore::default())
                .with_header(HeaderName::from_static("x-session-id")),
        );
    let reply = send(&app, "/private", None).await;
    assert_eq!(reply.headers[header::CACHE_CONTROL], "private, max-age=0");
    let vary: Vec<_> = reply
        .headers
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(vary, ["Accept-Encoding", "cookie", "x-session-id"]);
}
