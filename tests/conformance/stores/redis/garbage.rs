//! Damage in Redis the store must survive: corrupt data written straight into a session's
//! keys, a hash whose deadline is unreadable, and scripts the server lost (`NOSCRIPT`).

use redis::aio::ConnectionLike;
use serde_json::json;
use sessionware::store::{now, Applied, ChangeSet, Created, Cycled, Rekey, SessionStore, Touched};
use sessionware::{RedisStore, StoreError};

use super::{key, raw, raw_cluster, record, redis, redis_cluster, redis_key, HOUR};

/// Ways to damage a session in Redis; each must load as `StoreError::Corrupt`. `{key}` stands
/// for the session's Redis key.
const CORRUPTIONS: &[&[&[u8]]] = &[
    &[b"HSET", b"{key}", b"d:a", b"{not json"],
    &[b"HSET", b"{key}", b"d:a", b"\xff\xfe"],
    &[b"HSET", b"{key}", b"d:\xff", b"1"],
    &[b"HSET", b"{key}", b"m:e", b"soon"],
    &[b"HSET", b"{key}", b"m:x", b"forever"],
    &[b"HSET", b"{key}", b"stray", b"1"],
    &[b"HDEL", b"{key}", b"m:c"],
    // A key of the wrong type: a plain string.
    &[b"SET", b"{key}", b"garbage"],
];

async fn corrupt_rows<C>(store: RedisStore, conn: C)
where
    C: ConnectionLike + Clone + Send + 'static,
{
    for corruption in CORRUPTIONS {
        let conn = conn.clone();
        sessionware::conformance::corrupt_row_is_not_a_panic(store.clone(), move |store, key| {
            let mut conn = conn.clone();
            async move {
                let name = redis_key(&store, &key);
                let mut cmd = redis::cmd(std::str::from_utf8(corruption[0]).unwrap());
                for arg in &corruption[1..] {
                    cmd.arg(if *arg == b"{key}" {
                        name.as_bytes()
                    } else {
                        arg
                    });
                }
                let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
                match store.load(&key).await {
                    Err(StoreError::Corrupt(message)) => {
                        assert!(message.contains(&key.short()), "{message}")
                    }
                    other => panic!("{corruption:?} loaded as {other:?}"),
                }
            }
        })
        .await;
    }
}

#[tokio::test]
async fn corrupt_row_is_not_a_panic() {
    corrupt_rows(redis().await, raw().await).await;
}

#[tokio::test]
async fn corrupt_row_is_not_a_panic_cluster() {
    corrupt_rows(redis_cluster().await, raw_cluster().await).await;
}

/// A hash whose deadline is unreadable is not a live session: writes say `Missing`, and create
/// takes the key over, whole: nothing of the dead hash shows through.
#[tokio::test]
async fn unreadable_deadline_is_not_live() {
    let store = redis().await;
    let mut conn = raw().await;
    let k = key();
    assert_eq!(
        store.create(&k, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    let _: () = redis::cmd("HSET")
        .arg(redis_key(&store, &k))
        .arg("m:e")
        .arg("soon")
        .arg("d:stale")
        .arg("\"left over\"")
        .query_async(&mut conn)
        .await
        .unwrap();
    let changes = ChangeSet::new(now() + HOUR).with_set("b", json!(2));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Missing);
    assert_eq!(
        store.touch(&k, now() + HOUR).await.unwrap(),
        Touched::Missing
    );
    let fresh = record(HOUR);
    assert_eq!(store.create(&k, &fresh).await.unwrap(), Created::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap().data, fresh.data);
    store.delete(&k).await.unwrap();
}

/// The store sends scripts by SHA-1; a server that lost them (restart, failover, `SCRIPT
/// FLUSH`) answers `NOSCRIPT`, and every operation loads its script and goes on. On a cluster
/// the flush reaches every node, and a cycle runs as create and release scripts.
async fn survives_script_flushes<C>(store: RedisStore, conn: C)
where
    C: ConnectionLike + Clone,
{
    let flush = || {
        let mut conn = conn.clone();
        async move {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    let (k, moved) = (key(), key());
    flush().await;
    assert_eq!(
        store.create(&k, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    flush().await;
    let changes = ChangeSet::new(now() + HOUR).with_set("b", json!(2));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    flush().await;
    assert_eq!(store.touch(&k, now() + HOUR).await.unwrap(), Touched::Done);
    flush().await;
    let changes = ChangeSet::new(now() + HOUR).with_set("c", json!(3));
    assert_eq!(
        store.cycle(Rekey::new(&k, &moved), &changes).await.unwrap(),
        Cycled::Done
    );
    let data = store.load(&moved).await.unwrap().unwrap().data;
    assert_eq!(
        (data["a"].clone(), data["b"].clone(), data["c"].clone()),
        (json!(1), json!(2), json!(3))
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg(redis_key(&store, &k))
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert_eq!(exists, 0, "the old key is gone after the cycle");
    store.delete(&moved).await.unwrap();
}

#[tokio::test]
async fn scripts_survive_a_script_flush() {
    survives_script_flushes(redis().await, raw().await).await;
}

#[tokio::test]
async fn scripts_survive_a_script_flush_cluster() {
    survives_script_flushes(redis_cluster().await, raw_cluster().await).await;
}
