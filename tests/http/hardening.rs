//! Races and edge cases that must keep the promises in SECURITY.md: a race lost to a destroy
//! sends no removal cookie (races lost to a login: `ended.rs`), a failing logout still logs out, garbage timestamps never panic, responses built
//! from a session never reach a shared cache, prefixes and id headers are read as browsers and
//! clients mean them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderName, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use sessionware::store::{
    Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore,
};
use sessionware::{
    ConfigError, Error, MemoryStore, Session, SessionId, SessionLayer, StoreError, StoreKey,
};

use crate::common::{send, send_request, Reply};
use crate::support::{app, routes, Held};

/// A race lost to a destroy in another tab: no removal cookie either (the destroying request
/// sent it); the old id is dead all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_destroying_request_sends_the_removal_cookie() {
    let held = Held::default();
    let app: Router = routes()
        .route("/slow-write", held.route("theme", "dark", "written"))
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&app, "/write", None).await.cookie();
    let slow = {
        let (app, cookie) = (app.clone(), cookie.clone());
        tokio::spawn(async move { send(&app, "/slow-write", Some(&cookie)).await })
    };
    held.loaded.notified().await;
    let destroyed = send(&app, "/destroy", Some(&cookie)).await;
    assert!(destroyed.set_cookie().unwrap().contains("Max-Age=0"));
    held.go.notify_one();
    let slow = slow.await.unwrap();
    assert_eq!(slow.set_cookie(), None);
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "0");
}

/// A logout handler whose response is a 5xx (a failing audit log, say) still ends the session.
#[tokio::test]
async fn destroy_in_a_failing_handler_still_logs_out() {
    let store = MemoryStore::default();
    let app: Router = routes()
        .route(
            "/logout-fails",
            get(|s: Session| async move {
                s.destroy().await?;
                s.insert("flash", "bye").await?;
                Ok::<_, Error>((StatusCode::INTERNAL_SERVER_ERROR, "audit log down"))
            }),
        )
        .layer(SessionLayer::new(store.clone()));
    let cookie = send(&app, "/write", None).await.cookie();
    assert_eq!(store.len(), 1);

    let reply = send(&app, "/logout-fails", Some(&cookie)).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "audit log down");
    assert!(
        reply.set_cookie().unwrap().contains("Max-Age=0"),
        "no removal cookie"
    );
    assert_eq!(
        store.len(),
        0,
        "the session was not deleted (and nothing new saved)"
    );
    assert_eq!(send(&app, "/read", Some(&cookie)).await.body, "0");
}

/// Returns one record with the given times for every key, whatever was stored.
#[derive(Debug, Clone)]
struct Garbage {
    created_at: SystemTime,
    expires_at: SystemTime,
}

#[async_trait]
impl SessionStore for Garbage {
    async fn load(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
        let data = [("counter".to_owned(), serde_json::json!(1))].into();
        Ok(Some(
            Record::new(data, self.expires_at).with_created_at(self.created_at),
        ))
    }
    async fn create(&self, _: &StoreKey, _: &Record) -> Result<Created, StoreError> {
        Ok(Created::Done)
    }
    async fn apply(&self, _: &StoreKey, _: &ChangeSet) -> Result<Applied, StoreError> {
        Ok(Applied::Done)
    }
    async fn cycle(&self, _: Rekey<'_>, _: &ChangeSet) -> Result<Cycled, StoreError> {
        Ok(Cycled::Done)
    }
    async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn list(&self, _: &str) -> Result<Vec<Listed>, StoreError> {
        Ok(Vec::new())
    }
}

/// Times at the edges in a stored record (before 1970, at it, and as far in the future as a
/// `SystemTime` and the stores' `i64` milliseconds go): every path of the layer (read, touch,
/// write, cycle, destroy, Max-Age) must do saturating arithmetic. Tests run in debug, where an
/// overflow panics.
#[tokio::test]
async fn garbage_timestamps_in_the_store_never_panic() {
    let ms = |n: u64| Duration::from_millis(n);
    let far = |d: Duration| UNIX_EPOCH.checked_add(d);
    let edges: Vec<SystemTime> = [
        UNIX_EPOCH.checked_sub(Duration::from_secs(1 << 40)),
        UNIX_EPOCH.checked_sub(ms(1)),
        Some(UNIX_EPOCH),
        far(ms(i64::MAX as u64 - 1)),
        far(ms(i64::MAX as u64)),
        far(ms(u64::MAX)),
        far(Duration::from_secs(i64::MAX as u64)),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        edges.len() >= 5,
        "this platform's SystemTime is narrow: {edges:?}"
    );
    let expiries = [
        sessionware::Expiry::OnSessionEnd,
        sessionware::Expiry::OnInactivity(std::time::Duration::from_secs(60)),
    ];
    let cookie = format!("id={}", SessionId::generate().expose());
    for &created_at in &edges {
        for &expires_at in &edges {
            for expiry in expiries {
                let layer = SessionLayer::new(Garbage {
                    created_at,
                    expires_at,
                })
                .with_expiry(expiry);
                let app = app(layer);
                for path in ["/read", "/write", "/cycle", "/destroy", "/clear"] {
                    let reply = send(&app, path, Some(&cookie)).await;
                    assert_eq!(
                        reply.status, 200,
                        "{path} with created_at {created_at:?}, expires_at {expires_at:?}"
                    );
                    for set in reply.set_cookies() {
                        assert!(!set.contains("Max-Age=-"), "{set}");
                    }
                }
            }
        }
    }
}

/// `Vary: Cookie` on every response whose handler loaded the session, including read-only
/// ones that send no cookie, and 5xx ones.
#[tokio::test]
async fn every_response_built_from_a_session_varies_on_the_cookie() {
    let app: Router = routes()
        .route(
            "/read-fails",
            get(|s: Session| async move {
                s.get::<i64>("counter").await?;
                Ok::<_, Error>((StatusCode::INTERNAL_SERVER_ERROR, "oops"))
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&app, "/write", None).await.cookie();
    for (path, cookie) in [
        ("/read", Some(cookie.as_str())),
        ("/read", None),
        ("/read-fails", Some(cookie.as_str())),
    ] {
        let reply = send(&app, path, cookie).await;
        assert_eq!(reply.set_cookie(), None, "{path}");
        assert_eq!(reply.headers[header::VARY], "cookie", "{path} {cookie:?}");
    }
    // A route that never loads the session stays as it was.
    assert!(!send(&app, "/plain", Some(&cookie))
        .await
        .headers
        .contains_key(header::VARY));
}

/// A handler's `Cache-Control: public` on a response that sets or clears the id is replaced by
/// `no-store`; `private` and `no-store` are kept.
#[tokio::test]
async fn a_public_cache_policy_never_reaches_a_response_that_sets_the_id() {
    fn route(policy: &'static str) -> axum::routing::MethodRouter {
        get(move |s: Session| async move {
            s.insert("x", 1).await?;
            Ok::<_, Error>(([(header::CACHE_CONTROL, policy)], "ok"))
        })
    }
    let app: Router = routes()
        .route("/public", route("public, max-age=3600"))
        .route("/s-maxage", route("s-maxage=60"))
        .route("/no-cache", route("no-cache"))
        .route("/private", route("private, max-age=60"))
        .route("/no-store", route("no-store"))
        .route(
            "/logout-public",
            get(|s: Session| async move {
                s.destroy().await?;
                Ok::<_, Error>(([(header::CACHE_CONTROL, "public")], "bye"))
            }),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    for (path, expected) in [
        ("/public", "no-store"),
        ("/s-maxage", "no-store"),
        ("/no-cache", "no-store"),
        ("/private", "private, max-age=60"),
        ("/no-store", "no-store"),
    ] {
        let reply = send(&app, path, None).await;
        assert!(reply.set_cookie().is_some(), "{path}");
        assert_eq!(reply.headers[header::CACHE_CONTROL], expected, "{path}");
    }
    let cookie = send(&app, "/write", None).await.cookie();
    let reply = send(&app, "/logout-public", Some(&cookie)).await;
    assert!(reply.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
}

/// Browsers match `__Host-` and `__Secure-` case-insensitively, so must the checks.
#[test]
fn cookie_prefixes_are_checked_case_insensitively() {
    for name in ["__host-id", "__HOST-id", "__Host-id"] {
        let layer = SessionLayer::new(MemoryStore::default())
            .with_cookie_name(name)
            .with_path("/app");
        assert!(
            matches!(layer.validate(), Err(ConfigError::HostPrefix(_))),
            "{name}"
        );
    }
    for name in ["__secure-id", "__SECURE-id"] {
        let layer = SessionLayer::new(MemoryStore::default())
            .with_cookie_name(name)
            .with_secure(false);
        assert_eq!(layer.validate(), Err(ConfigError::SecurePrefix), "{name}");
    }
}

const ID_HEADER: HeaderName = HeaderName::from_static("x-session-id");

async fn with_headers(app: &Router, path: &str, cookie: Option<&str>, ids: &[&str]) -> Reply {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    for id in ids {
        req = req.header(ID_HEADER, *id);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

/// An empty id header counts as absent: the cookie is used and nothing is counted as refused.
/// Two different id headers are refused, like two different id cookies.
#[tokio::test]
async fn empty_id_headers_are_absent_and_conflicting_ones_refused() {
    let layer = SessionLayer::new(MemoryStore::default()).with_header(ID_HEADER);
    let stats = layer.stats();
    let app = app(layer);
    let first = with_headers(&app, "/write", None, &[]).await;
    let cookie = first.cookie();
    let id = first.headers[&ID_HEADER].to_str().unwrap().to_owned();

    assert_eq!(
        with_headers(&app, "/read", Some(&cookie), &[""]).await.body,
        "1"
    );
    assert_eq!(
        stats.refused_ids(),
        0,
        "an empty header was counted as refused"
    );
    assert_eq!(
        with_headers(&app, "/read", None, &[&id, &id]).await.body,
        "1"
    );
    assert_eq!(stats.refused_ids(), 0);

    let other = with_headers(&app, "/write", None, &[]).await.headers[&ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let both = with_headers(&app, "/read", Some(&cookie), &[&id, &other]).await;
    assert_eq!(both.body, "0", "one of two conflicting ids was used");
    assert_eq!(stats.refused_ids(), 1);
}

/// `Option<Session>` is `None` outside the layer instead of a 500, and `Some` inside it.
#[tokio::test]
async fn option_session_is_none_without_the_layer() {
    async fn maybe(session: Option<Session>) -> Result<String, Error> {
        Ok(match session {
            Some(s) => format!("some {}", s.get::<i64>("counter").await?.unwrap_or(0)),
            None => "none".to_owned(),
        })
    }
    let bare: Router = Router::new().route("/maybe", get(maybe));
    let reply = send(&bare, "/maybe", None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "none")
    );

    let layered: Router = routes()
        .route("/maybe", get(maybe))
        .layer(SessionLayer::new(MemoryStore::default()));
    let cookie = send(&layered, "/write", None).await.cookie();
    assert_eq!(send(&layered, "/maybe", Some(&cookie)).await.body, "some 1");
}

/// Eight requests of one browser, each adding 100 KiB under the default 256 KiB cap, all loaded
/// before any saves: the stored session stays under the cap. The requests whose save would
/// cross it fail (a 500 through the error handler), the others keep their value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_grow_a_session_past_the_cap() {
    use sessionware::defaults::MAX_SESSION_SIZE;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let store = MemoryStore::default();
    let app: Router = routes()
        .route(
            "/big/{key}",
            get(
                move |s: Session, axum::extract::Path(key): axum::extract::Path<String>| {
                    let barrier = barrier.clone();
                    async move {
                        s.get::<i64>("counter").await?;
                        barrier.wait().await;
                        s.insert(&key, "x".repeat(100 * 1024)).await?;
                        Ok::<_, Error>("inserted")
                    }
                },
            ),
        )
        .layer(SessionLayer::new(store.clone()));
    let cookie = send(&app, "/write", None).await.cookie();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { send(&app, &format!("/big/k{i}"), Some(&cookie)).await })
        })
        .collect();
    let mut kept = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::OK => kept += 1,
            StatusCode::INTERNAL_SERVER_ERROR => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(kept, 2, "two 100 KiB values fit under 256 KiB");
    let key = SessionId::parse(cookie.trim_start_matches("id="))
        .unwrap()
        .store_key();
    let stored = store.load(&key).await.unwrap().unwrap();
    assert!(sessionware::store::data_size(&stored.data) <= MAX_SESSION_SIZE);
    assert_eq!(stored.data.len(), 3, "counter and the two values that fit");
}

/// The count is the stored one: a cleared session counts as `{}`, and a key that needs JSON
/// escaping counts escaped.
#[tokio::test]
async fn the_size_counted_is_the_size_stored() {
    let app: Router = routes()
        .route(
            "/clear-then/{n}",
            get(
                |s: Session, axum::extract::Path(n): axum::extract::Path<usize>| async move {
                    s.clear().await?;
                    Ok::<_, Error>(match s.insert("k", "x".repeat(n)).await {
                        Err(Error::TooLarge { size, .. }) => format!("too large {size}"),
                        other => other.map(|()| "stored".to_owned())?,
                    })
                },
            ),
        )
        .route(
            "/quotes/{n}",
            get(
                |s: Session, axum::extract::Path(n): axum::extract::Path<usize>| async move {
                    Ok::<_, Error>(match s.insert(&"\"".repeat(n), 1).await {
                        Err(Error::TooLarge { size, .. }) => format!("too large {size}"),
                        other => other.map(|()| "stored".to_owned())?,
                    })
                },
            ),
        )
        .layer(SessionLayer::new(MemoryStore::default()).with_max_session_size(100));
    let cookie = send(&app, "/write", None).await.cookie();
    // `{}` + `"k":` + `"` 91 x `"` + `,` = 100 bytes; one more is over.
    assert_eq!(
        send(&app, "/clear-then/91", Some(&cookie)).await.body,
        "stored"
    );
    assert_eq!(
        send(&app, "/clear-then/92", Some(&cookie)).await.body,
        "too large 101"
    );
    // 47 quotes: `{}` + 96 bytes as a JSON string (escapes and quotes) + `:1,` = 101 bytes;
    // unescaped they would count 54.
    let fresh = send(&app, "/quotes/47", None).await;
    assert_eq!(fresh.body, "too large 101");
}

/// A policy spread over several `Cache-Control` lines is read whole: `private` on any line keeps
/// every line the handler wrote; lines that all let shared caches store the response become one
/// `no-store`. A `Vary` that already names the cookie (in any case, on any line) or `*` gets no
/// second entry.
#[tokio::test]
async fn cache_policies_and_vary_spread_over_several_lines() {
    use axum::http::{HeaderMap, HeaderValue};
    fn route(
        cache: &'static [&'static str],
        vary: &'static [&'static str],
    ) -> axum::routing::MethodRouter {
        get(move |s: Session| async move {
            s.insert("x", 1).await?;
            let mut headers = HeaderMap::new();
            for value in cache {
                headers.append(header::CACHE_CONTROL, HeaderValue::from_static(value));
            }
            for value in vary {
                headers.append(header::VARY, HeaderValue::from_static(value));
            }
            Ok::<_, Error>((headers, "ok"))
        })
    }
    fn lines(reply: &Reply, name: HeaderName) -> Vec<String> {
        reply
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }
    let app: Router = routes()
        .route(
            "/private-second",
            route(&["max-age=60", "private"], &["Accept-Encoding", "COOKIE"]),
        )
        .route("/public-twice", route(&["public", "max-age=60"], &["*"]))
        .route("/vary-other", route(&["no-store"], &["Accept-Encoding"]))
        .layer(SessionLayer::new(MemoryStore::default()));

    let reply = send(&app, "/private-second", None).await;
    assert!(reply.set_cookie().is_some());
    assert_eq!(
        lines(&reply, header::CACHE_CONTROL),
        ["max-age=60", "private"]
    );
    assert_eq!(lines(&reply, header::VARY), ["Accept-Encoding", "COOKIE"]);

    let reply = send(&app, "/public-twice", None).await;
    assert_eq!(lines(&reply, header::CACHE_CONTROL), ["no-store"]);
    assert_eq!(lines(&reply, header::VARY), ["*"]);

    let reply = send(&app, "/vary-other", None).await;
    assert_eq!(lines(&reply, header::VARY), ["Accept-Encoding", "cookie"]);
}
