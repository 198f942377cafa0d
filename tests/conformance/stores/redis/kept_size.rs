//! The size Redis keeps beside each session (`m:s`) so that a capped write reads only the
//! fields it changes: it stays `data_size` of the values through every kind of write, and a
//! session without it (stored before it was kept, or with garbage in it) is counted whole
//! once and gets it back.

use redis::aio::ConnectionLike;
use serde_json::json;
use sessionware::store::{
    data_size, now, Applied, ChangeSet, Created, Cycled, Data, Rekey, SessionStore,
};
use sessionware::RedisStore;

use super::{key, raw, raw_cluster, record, redis, redis_cluster, redis_key, HOUR};

/// The `m:s` field of `name`, if any.
async fn kept(conn: &mut impl ConnectionLike, name: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(name)
        .arg("m:s")
        .query_async(conn)
        .await
        .unwrap()
}

/// `m:s` of the session under `k` is the size of the values it holds.
async fn assert_kept(
    store: &RedisStore,
    conn: &mut impl ConnectionLike,
    k: &sessionware::StoreKey,
) {
    let data = store.load(k).await.unwrap().unwrap().data;
    let kept = kept(conn, &redis_key(store, k)).await;
    assert_eq!(kept, Some(data_size(&data).to_string()), "{data:?}");
}

async fn size_follows_every_write(store: RedisStore, mut conn: impl ConnectionLike) {
    let k = key();
    assert_eq!(
        store.create(&k, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    assert_kept(&store, &mut conn, &k).await;

    let steps = [
        ChangeSet::new(now() + HOUR).with_set("a", json!("x".repeat(40))),
        ChangeSet::new(now() + HOUR)
            .with_set("a", json!(1))
            .with_set("q\"/\u{7f}", json!([1, 2])),
        ChangeSet::new(now() + HOUR)
            .with_remove("a")
            .with_remove("never there"),
        ChangeSet::new(now() + HOUR),
        ChangeSet::new(now() + HOUR)
            .with_clear()
            .with_set("b", json!({"c": null})),
        ChangeSet::new(now() + HOUR).with_clear(),
        ChangeSet::new(now() + HOUR)
            .with_set("d", json!("é"))
            .with_max_size(1 << 20),
    ];
    for changes in &steps {
        assert_eq!(
            store.apply(&k, changes).await.unwrap(),
            Applied::Done,
            "{changes:?}"
        );
        assert_kept(&store, &mut conn, &k).await;
    }
    let moved = key();
    let cycle = ChangeSet::new(now() + HOUR).with_set("e", json!(5));
    assert_eq!(
        store.cycle(Rekey::new(&k, &moved), &cycle).await.unwrap(),
        Cycled::Done
    );
    assert_kept(&store, &mut conn, &moved).await;
}

/// Without `m:s` (or with garbage in it), a capped write counts the session whole: the cap is
/// as exact as with it, and the write stores the size again.
async fn a_session_without_a_kept_size_is_counted(
    store: RedisStore,
    mut conn: impl ConnectionLike,
) {
    for garbage in [None, Some("not a number")] {
        let k = key();
        let name = redis_key(&store, &k);
        let mut rec = record(HOUR);
        rec.data.insert("big".to_owned(), json!("y".repeat(100)));
        assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
        let size = data_size(&rec.data);
        let mut forget = match garbage {
            None => redis::cmd("HDEL"),
            Some(_) => redis::cmd("HSET"),
        };
        forget.arg(&name).arg("m:s");
        if let Some(text) = garbage {
            forget.arg(text);
        }
        forget.query_async::<()>(&mut conn).await.unwrap();

        // One byte under what `"n": 1` needs, then exactly that.
        let added = data_size(&Data::from([("n".to_owned(), json!(1))])) - 2;
        let over = ChangeSet::new(now() + HOUR)
            .with_set("n", json!(1))
            .with_max_size(size + added - 1);
        assert_eq!(
            store.apply(&k, &over).await.unwrap(),
            Applied::TooLarge { size: size + added }
        );
        let fits = over.clone().with_max_size(size + added);
        assert_eq!(store.apply(&k, &fits).await.unwrap(), Applied::Done);
        assert_kept(&store, &mut conn, &k).await;
    }
}

#[tokio::test]
async fn the_kept_size_follows_every_write() {
    size_follows_every_write(redis().await, raw().await).await;
}

#[tokio::test]
async fn the_kept_size_follows_every_write_on_a_cluster() {
    size_follows_every_write(redis_cluster().await, raw_cluster().await).await;
}

#[tokio::test]
async fn a_session_without_a_kept_size_is_counted_whole() {
    a_session_without_a_kept_size_is_counted(redis().await, raw().await).await;
}

#[tokio::test]
async fn a_session_without_a_kept_size_is_counted_whole_on_a_cluster() {
    a_session_without_a_kept_size_is_counted(redis_cluster().await, raw_cluster().await).await;
}
