//! What the store leaves in Redis: no raw id in any key or value, and native TTLs that follow
//! each session's deadline.

use crate::common::unix_ms;
use redis::aio::ConnectionLike;
use serde_json::json;
use sessionware::store::{now, Applied, ChangeSet, Created, Cycled, Rekey, SessionStore, Touched};
use sessionware::{RedisStore, SessionId, StoreKey};
use std::time::{Duration, SystemTime};

use crate::common::{env_url, send_ok};

use super::{cluster_urls, key, pttl, raw, raw_cluster, record, redis, redis_cluster, redis_key};

/// Every key under `prefix`, on one server.
async fn scan(conn: &mut impl ConnectionLike, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Creates and cycles a session through the layer, then reads every key and value under the
/// store's prefix, on every server in `nodes`: only SHA-256 keys, never a raw id.
async fn ids_never_reach_redis(store: RedisStore, nodes: Vec<String>) {
    let prefix = store.key_prefix().to_owned();
    let app = crate::stores::login_app(store);
    // The id in the session cookie a reply sets.
    let id_set_by = |reply: crate::common::Reply| {
        let pair = reply.first_cookie().unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    };
    let first = id_set_by(send_ok(&app, "/login", None).await);
    let second = id_set_by(send_ok(&app, "/cycle", Some(&format!("id={first}"))).await);
    assert_ne!(first, second);
    for id in [&first, &second] {
        assert!(
            SessionId::parse(id).is_some(),
            "the cookie holds a plain id"
        );
    }
    let expected = format!("{prefix}{}", SessionId::parse(&second).unwrap().store_key());

    let mut found = Vec::new();
    for node in nodes {
        let mut conn = redis::Client::open(node)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for name in scan(&mut conn, &prefix).await {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .unwrap();
            for id in [&first, &second] {
                assert!(!name.contains(id.as_str()), "raw id in key {name}");
                for (field, value) in &fields {
                    for bytes in [field, value] {
                        let text = String::from_utf8_lossy(bytes);
                        assert!(!text.contains(id.as_str()), "raw id in {name}: {text}");
                    }
                }
            }
            found.push(name);
        }
    }
    // Only the cycled session is left, under the SHA-256 of its id.
    assert_eq!(found, vec![expected.clone()]);
    let digest = &expected[prefix.len()..];
    assert_eq!(digest.len(), 64);
    assert!(digest
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[tokio::test]
async fn raw_ids_never_reach_redis() {
    ids_never_reach_redis(redis().await, vec![env_url("REDIS_URL")]).await;
}

#[tokio::test]
async fn raw_ids_never_reach_redis_cluster() {
    // Every master: a cluster node's SCAN sees only its own slots.
    ids_never_reach_redis(redis_cluster().await, cluster_urls()).await;
}

/// Asserts that Redis will drop `key` close to `expires_at`.
async fn assert_ttl(
    conn: &mut impl ConnectionLike,
    store: &RedisStore,
    key: &StoreKey,
    expires_at: SystemTime,
) {
    let ttl = pttl(conn, &redis_key(store, key)).await;
    let expected = unix_ms(expires_at) - unix_ms(now());
    assert!(
        (ttl - expected).abs() < 1_000,
        "PTTL {ttl} ms, expected about {expected} ms"
    );
}

async fn native_ttl_follows_the_deadline(store: RedisStore, mut conn: impl ConnectionLike) {
    let (k, moved) = (key(), key());
    let rec = record(Duration::from_millis(60_000));
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_ttl(&mut conn, &store, &k, rec.expires_at).await;

    let later = now() + Duration::from_millis(120_000);
    let changes = ChangeSet::new(later).with_set("b", json!(2));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    assert_ttl(&mut conn, &store, &k, later).await;

    let sooner = now() + Duration::from_millis(30_000);
    assert_eq!(store.touch(&k, sooner).await.unwrap(), Touched::Done);
    assert_ttl(&mut conn, &store, &k, sooner).await;

    let cycled = now() + Duration::from_millis(90_000);
    assert_eq!(
        store
            .cycle(Rekey::new(&k, &moved), &ChangeSet::new(cycled))
            .await
            .unwrap(),
        Cycled::Done
    );
    assert_ttl(&mut conn, &store, &moved, cycled).await;
    assert_eq!(
        pttl(&mut conn, &redis_key(&store, &k)).await,
        -2,
        "the old key is gone"
    );

    // A deadline in the past: Redis drops the key at once.
    let past = ChangeSet::new(now() - Duration::from_millis(1));
    assert_eq!(store.apply(&moved, &past).await.unwrap(), Applied::Done);
    assert_eq!(pttl(&mut conn, &redis_key(&store, &moved)).await, -2);
    assert!(store.load(&moved).await.unwrap().is_none());
}

#[tokio::test]
async fn native_ttl_is_set() {
    native_ttl_follows_the_deadline(redis().await, raw().await).await;
}

#[tokio::test]
async fn native_ttl_is_set_cluster() {
    native_ttl_follows_the_deadline(redis_cluster().await, raw_cluster().await).await;
}
