//! Cycles on a cluster, where a cycle is several steps: onto a taken key, the moved-id marker,
//! racing cycles, large sessions, and cycles racing writes to the old key (also through the
//! layer). Most checks run on the standalone server as well.

use crate::common::unix_ms;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use redis::aio::ConnectionLike;
use serde_json::json;
use sessionware::store::{
    now, Applied, ChangeSet, Created, Cycled, Precondition, Record, Rekey, SessionStore,
};
use sessionware::{RedisStore, StoreError, StoreKey};

use crate::common::send_ok;

use super::{key, pttl, raw, raw_cluster, record, redis, redis_cluster, redis_key, HOUR};

/// A cluster cycle onto a taken key changes neither session (step 2 stops it).
#[tokio::test]
async fn cluster_cycle_leaves_nothing_when_the_target_is_taken() {
    let store = redis_cluster().await;
    let mut conn = raw_cluster().await;
    let (old, taken) = (key(), key());
    assert_eq!(
        store.create(&old, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    assert_eq!(
        store.create(&taken, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    let changes = ChangeSet::new(now() + HOUR).with_set("a", json!(2));
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &taken), &changes)
            .await
            .unwrap(),
        Cycled::Collision
    );
    assert_eq!(
        store.load(&old).await.unwrap().unwrap().data.get("a"),
        Some(&json!(1))
    );
    assert_eq!(
        store.load(&taken).await.unwrap().unwrap().data.get("a"),
        Some(&json!(1))
    );
    assert!(pttl(&mut conn, &redis_key(&store, &old)).await > 0);
}

/// A cycle's moved-id marker is a string next to the old key, in its slot (`{<old key>}:moved`),
/// holding its end on the application's clock and expiring then; the old key itself is gone, a
/// create may take it (the marker is no session), and a marker that is not a timestamp is
/// corrupt data rather than a panic.
async fn moved_marker_layout<C>(store: RedisStore, conn: C)
where
    C: ConnectionLike + Clone,
{
    let mut conn = conn;
    let (old, new) = (key(), key());
    assert_eq!(
        store.create(&old, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    let before = now();
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &new), &ChangeSet::new(now() + HOUR))
            .await
            .unwrap(),
        Cycled::Done
    );
    let marker = format!("{{{}}}:moved", redis_key(&store, &old));
    let until: i64 = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    let lifetime = unix_ms(UNIX_EPOCH + sessionware::defaults::MOVED_MARKER);
    assert!(
        (unix_ms(before) + lifetime..=unix_ms(now()) + lifetime).contains(&until),
        "{until}"
    );
    let ttl = pttl(&mut conn, &marker).await;
    assert!(0 < ttl && ttl <= lifetime, "{ttl}");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(redis_key(&store, &old))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    assert!(store.was_moved(&old).await.unwrap());

    assert_eq!(
        store.create(&old, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    assert!(store.load(&old).await.unwrap().is_some());

    let _: () = redis::cmd("SET")
        .arg(&marker)
        .arg("soon")
        .query_async(&mut conn)
        .await
        .unwrap();
    match store.was_moved(&old).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains(&old.short()), "{message}"),
        other => panic!("a garbled marker read as {other:?}"),
    }
    for name in [marker, redis_key(&store, &old), redis_key(&store, &new)] {
        let _: i64 = redis::cmd("UNLINK")
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn moved_marker() {
    moved_marker_layout(redis().await, raw().await).await;
}

#[tokio::test]
async fn moved_marker_cluster() {
    moved_marker_layout(redis_cluster().await, raw_cluster().await).await;
}

/// Cycles racing each other or a destroy: at most one new session, and it exists exactly when
/// its cycle says `Done`. On a cluster this exercises the last step's check that the old
/// session is still live (without it, two racing cycles would both "succeed" and copy the
/// session twice, and a cycle racing a logout would resurrect it under a new id).
async fn racing_cycles_leave_one_session(store: RedisStore) {
    let store = Arc::new(store);
    let changes = ChangeSet::new(now() + HOUR).with_set("b", json!(2));
    for _ in 0..20 {
        let (old, a, b) = (key(), key(), key());
        assert_eq!(
            store.create(&old, &record(HOUR)).await.unwrap(),
            Created::Done
        );
        let cycle = |new: StoreKey| {
            let (store, changes) = (store.clone(), changes.clone());
            tokio::spawn(
                async move { store.cycle(Rekey::new(&old, &new), &changes).await.unwrap() },
            )
        };
        let (first, second) = (cycle(a), cycle(b));
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let mut live = 0;
        for (new, outcome) in [(a, outcomes[0]), (b, outcomes[1])] {
            let loaded = store.load(&new).await.unwrap();
            assert_eq!(loaded.is_some(), outcome == Cycled::Done, "{outcomes:?}");
            live += usize::from(loaded.is_some());
        }
        assert_eq!(live, 1, "{outcomes:?}");
        assert!(store.load(&old).await.unwrap().is_none());

        let (old, new) = (key(), key());
        assert_eq!(
            store.create(&old, &record(HOUR)).await.unwrap(),
            Created::Done
        );
        let destroy = {
            let store = store.clone();
            tokio::spawn(async move { store.delete(&old).await.unwrap() })
        };
        let outcome = store.cycle(Rekey::new(&old, &new), &changes).await.unwrap();
        destroy.await.unwrap();
        let loaded = store.load(&new).await.unwrap();
        assert_eq!(loaded.is_some(), outcome == Cycled::Done, "{outcome:?}");
        assert!(store.load(&old).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cycles() {
    racing_cycles_leave_one_session(redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cycles_cluster() {
    racing_cycles_leave_one_session(redis_cluster().await).await;
}

/// Thousands of values in one create or change set: the scripts send them in slices (Lua's
/// `unpack` has a limit of a few thousand values).
async fn large_sessions_round_trip(store: RedisStore) {
    let (k, moved) = (key(), key());
    let t = now();
    let data = (0..5_000).map(|i| (format!("k{i}"), json!(i))).collect();
    let rec = Record::new(data, t + HOUR).with_created_at(t);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap().data, rec.data);

    let mut changes = ChangeSet::new(t + HOUR);
    for i in 0..5_000 {
        changes = if i % 2 == 0 {
            changes.with_set(format!("k{i}"), json!(format!("v{i}")))
        } else {
            changes.with_remove(format!("k{i}"))
        };
    }
    for i in 5_000..9_000 {
        changes = changes.with_set(format!("k{i}"), json!(i));
    }
    let mut expected = rec.clone();
    changes.apply_to(&mut expected);
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap().data, expected.data);

    let cleared = changes.with_clear();
    cleared.apply_to(&mut expected);
    assert_eq!(
        store.cycle(Rekey::new(&k, &moved), &cleared).await.unwrap(),
        Cycled::Done
    );
    assert_eq!(
        store.load(&moved).await.unwrap().unwrap().data,
        expected.data
    );
    store.delete(&moved).await.unwrap();
}

#[tokio::test]
async fn large_sessions() {
    large_sessions_round_trip(redis().await).await;
}

#[tokio::test]
async fn large_sessions_cluster() {
    large_sessions_round_trip(redis_cluster().await).await;
}

// ---------------------------------------------------------------------------------------------
// A cluster cycle racing writes to the old key

/// How many times each race below is run.
const RACES: usize = 200;

/// A cluster cycle is three steps (read, create the new key, release the old), so writes to the
/// old key can land between the read and the release. Whatever interleaving: every increment
/// and every take the store answered `Done` is in the session under its new key (an increment)
/// or gone from it (a take), and the values nobody took are still there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cycle_loses_no_racing_write() {
    let store = Arc::new(redis_cluster().await);
    let flashes: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    for round in 0..RACES {
        let (old, new) = (key(), key());
        let expires_at = now() + HOUR;
        let mut data = sessionware::store::Data::new();
        data.insert("n".to_owned(), json!(0));
        for name in &flashes {
            data.insert(name.clone(), json!(true));
        }
        let record = Record::new(data, expires_at);
        assert_eq!(store.create(&old, &record).await.unwrap(), Created::Done);
        let barrier = Arc::new(tokio::sync::Barrier::new(3));

        // Increments n by compare-and-set until the session is gone from the old key.
        let incrementer = tokio::spawn({
            let (store, barrier) = (store.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                let mut saved = 0;
                while let Some(record) = store.load(&old).await.unwrap() {
                    let n = record.data["n"].clone();
                    let next = json!(n.as_i64().unwrap() + 1);
                    let change = ChangeSet::new(expires_at)
                        .with_expected("n", Precondition::Equals(n))
                        .with_set("n", next);
                    match store.apply(&old, &change).await.unwrap() {
                        Applied::Done => saved += 1,
                        Applied::Conflict => {}
                        Applied::Missing => break,
                        other => panic!("{other:?}"),
                    }
                    if saved == 3 {
                        break;
                    }
                }
                saved
            }
        });
        // Takes the flash-like values one by one, as `take_flashes` does: each must still hold
        // what was read, and is removed.
        let taker = tokio::spawn({
            let (store, barrier, flashes) = (store.clone(), barrier.clone(), flashes.clone());
            async move {
                barrier.wait().await;
                let mut taken = Vec::new();
                for name in flashes {
                    let take = ChangeSet::new(expires_at)
                        .with_expected(name.clone(), Precondition::Equals(json!(true)))
                        .with_remove(name.clone());
                    match store.apply(&old, &take).await.unwrap() {
                        Applied::Done => taken.push(name),
                        Applied::Missing => break,
                        other => panic!("{other:?}"),
                    }
                }
                taken
            }
        });
        barrier.wait().await;
        // Spread the cycle over the writers' steps from one round to the next.
        tokio::time::sleep(Duration::from_micros((round % 10) as u64 * 150)).await;
        let cycled = store
            .cycle(Rekey::new(&old, &new), &ChangeSet::new(expires_at))
            .await
            .unwrap();
        assert_eq!(cycled, Cycled::Done, "round {round}");
        let saved = incrementer.await.unwrap();
        let taken = taker.await.unwrap();

        assert!(store.load(&old).await.unwrap().is_none());
        let moved = store.load(&new).await.unwrap().expect("the cycled session");
        assert_eq!(
            moved.data["n"],
            json!(saved),
            "round {round}: an increment answered Done is not in the cycled session"
        );
        let left: Vec<&String> = flashes
            .iter()
            .filter(|name| moved.data.contains_key(*name))
            .collect();
        for name in &flashes {
            let kept = moved.data.contains_key(name);
            assert!(
                kept != taken.contains(name),
                "round {round}: {name} was taken {} and is {} in the cycled session \
                 (taken {taken:?}, left {left:?})",
                if taken.contains(name) {
                    "once"
                } else {
                    "never"
                },
                if kept { "still" } else { "not" },
            );
        }
    }
}

/// The same race through the layer on a cluster: one request cycles the id while another runs
/// `update` and a third takes the flash messages. The update is in the session under its new id,
/// or `update` reported the session ended (`f(None)`, unsaved); each message is shown once, by
/// the racing page or under the new id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cycle_racing_update_and_flashes_through_the_layer() {
    use axum::routing::get;
    use sessionware::{Error, Level, Session, SessionLayer};

    let app = crate::common::flash_routes()
        .route(
            "/start",
            get(|s: Session| async move {
                s.insert("n", 0).await?;
                for text in ["a", "b", "c"] {
                    s.flash(Level::Info, text).await?;
                }
                Ok::<_, Error>(())
            }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move { s.cycle_id().await }),
        )
        .route(
            "/incr",
            get(|s: Session| async move {
                // -1: the session ended under the update (f(None) is never saved).
                let n = s
                    .update("n", |n: Option<i64>| n.map_or(-1, |n| n + 1))
                    .await?;
                Ok::<_, Error>(n.to_string())
            }),
        )
        .route(
            "/n",
            get(|s: Session| async move {
                Ok::<_, Error>(s.get::<i64>("n").await?.unwrap_or(-2).to_string())
            }),
        )
        .layer(SessionLayer::new(redis_cluster().await));
    let app = Arc::new(app);
    for round in 0..RACES {
        let cookie = send_ok(&app, "/start", None).await.cookie();
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let request = |path: &'static str| {
            let (app, barrier, cookie) = (app.clone(), barrier.clone(), cookie.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                send_ok(&app, path, Some(&cookie)).await
            })
        };
        let (cycle, incr, show) = (request("/cycle"), request("/incr"), request("/show"));
        let (cycle, incr, show) = (
            cycle.await.unwrap(),
            incr.await.unwrap(),
            show.await.unwrap(),
        );
        let moved = cycle.cookie();
        let n = send_ok(&app, "/n", Some(&moved)).await.body;
        match incr.body.as_str() {
            "1" => assert_eq!(n, "1", "round {round}: an update reported saved was lost"),
            "-1" => assert_eq!(n, "0", "round {round}: an unsaved update was saved"),
            other => panic!("round {round}: update answered {other}"),
        }
        let left = send_ok(&app, "/show", Some(&moved)).await.body;
        let mut shown: Vec<&str> = [show.body.as_str(), left.as_str()]
            .into_iter()
            .filter(|body| !body.is_empty())
            .flat_map(|body| body.split(','))
            .collect();
        shown.sort_unstable();
        assert_eq!(
            shown,
            ["info:a", "info:b", "info:c"],
            "round {round}: shown by the racing page {:?}, left under the new id {left:?}",
            show.body
        );
    }
}
