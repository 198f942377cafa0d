//! Two app instances, each with its own store client, sharing one backend: a session created
//! through one is read, changed, cycled and destroyed through the other.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use sessionware::store::SessionStore;
use sessionware::{Error, Session, SessionLayer};
use tower::ServiceExt;

async fn write(s: Session) -> Result<String, Error> {
    let n = s.get::<i64>("n").await?.unwrap_or(0) + 1;
    s.insert("n", n).await?;
    Ok(n.to_string())
}

async fn read(s: Session) -> Result<String, Error> {
    Ok(s.get::<i64>("n").await?.unwrap_or(0).to_string())
}

fn instance(store: impl SessionStore) -> Router {
    Router::new()
        .route("/write", get(write))
        .route("/read", get(read))
        .route(
            "/cycle",
            get(|s: Session| async move { s.cycle_id().await }),
        )
        .route(
            "/destroy",
            get(|s: Session| async move { s.destroy().await }),
        )
        .layer(SessionLayer::new(store))
}

/// `(body, cookie set)` of `GET path` with `cookie`.
async fn send(app: &Router, path: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8(body.to_vec()).unwrap(), cookie)
}

pub async fn shared_between_instances(one: impl SessionStore, two: impl SessionStore) {
    let (one, two) = (instance(one), instance(two));
    let (body, cookie) = send(&one, "/write", None).await;
    assert_eq!(body, "1");
    let cookie = cookie.unwrap();
    assert_eq!(
        send(&two, "/write", Some(&cookie)).await.0,
        "2",
        "instance two did not see the session"
    );
    assert_eq!(
        send(&one, "/read", Some(&cookie)).await.0,
        "2",
        "instance one did not see the change"
    );

    let cycled = send(&two, "/cycle", Some(&cookie)).await.1.unwrap();
    assert_eq!(send(&one, "/read", Some(&cycled)).await.0, "2");
    assert_eq!(
        send(&one, "/read", Some(&cookie)).await.0,
        "0",
        "the old id survived a cycle elsewhere"
    );

    send(&one, "/destroy", Some(&cycled)).await;
    assert_eq!(
        send(&two, "/read", Some(&cycled)).await.0,
        "0",
        "a destroyed session lived on"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances() {
    let url = crate::stores::env_url("DATABASE_URL");
    let connect = || async {
        let store = sessionware::PostgresStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
    };
    shared_between_instances(connect().await, connect().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_instances() {
    let url = crate::stores::env_url("REDIS_URL");
    let connect = || async {
        sessionware::RedisStore::connect(&url)
            .await
            .unwrap()
            .with_key_prefix("sessionware-test-instances:")
    };
    shared_between_instances(connect().await, connect().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_two_instances() {
    let urls = crate::stores::env_url("REDIS_CLUSTER_URLS");
    let connect = || async {
        sessionware::RedisStore::connect_cluster(urls.split(','))
            .await
            .unwrap()
            .with_key_prefix("sessionware-test-instances:")
    };
    let (one, two) = (connect().await, connect().await);
    assert!(one.is_cluster());
    shared_between_instances(one, two).await;
}
