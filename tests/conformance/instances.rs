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

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances() {
    let url = crate::common::env_url("DATABASE_URL");
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
    let url = crate::common::env_url("REDIS_URL");
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
    let urls = crate::common::env_url("REDIS_CLUSTER_URLS");
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
