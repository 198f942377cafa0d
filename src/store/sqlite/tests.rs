//! Unit tests of [`SqliteStore`](super::SqliteStore): URLs, background checkpoints, large
//! change sets, and the writer thread's batches when a write panics or taints its batch. The
//! store contract itself is checked by the conformance suite.

use std::time::Duration;

use super::scratch::ScratchDir;
use super::*;
use crate::clock::now;
use crate::store::Precondition;

#[test]
fn urls_name_a_file_or_memory() {
    for memory in [
        "sqlite::memory:",
        "sqlite://file:x?mode=memory&cache=shared",
    ] {
        assert!(matches!(location(memory), Ok(Location::Memory)), "{memory}");
    }
    let Ok(Location::File { path, create }) = location("sqlite://sessions.db?mode=rwc") else {
        panic!("not a file");
    };
    assert_eq!((path.to_str(), create), (Some("sessions.db"), true));
    let Ok(Location::File { path, create }) = location("sqlite:memory.db") else {
        panic!("not a file");
    };
    assert_eq!((path.to_str(), create), (Some("memory.db"), false));
    for bad in ["postgres://x", "sqlite://", "sqlite://x.db?mode=ro"] {
        assert!(location(bad).is_err(), "{bad}");
    }
}

/// A file database in a fresh directory, removed with the returned guard.
fn file_db(name: &str) -> (ScratchDir, String) {
    let dir = ScratchDir::new(&format!("sqlite-{name}"));
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    (dir, url)
}

/// Writes start background checkpoints once the log has grown by a step, which keep the
/// log from growing between the writer's own (rare) ones.
#[tokio::test]
async fn writes_start_background_checkpoints() {
    let (dir, url) = file_db("checkpoints");
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.connections.checkpoints(), Some(0));
    let record = Record::new(Default::default(), now() + Duration::from_millis(60_000));
    // Each write commits alone and appends at least one page to the log.
    for _ in 0..2 * checkpoints::LOG_PAGES_PER_CHECKPOINT {
        let key = crate::SessionId::generate().store_key();
        assert_eq!(store.create(&key, &record).await.unwrap(), Created::Done);
    }
    let mut waited = 0;
    while store.connections.checkpoints() == Some(0) && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    assert!(store.connections.checkpoints() > Some(0), "{store:?}");
    // The store's files are closed before the directory goes.
    drop(store);
    drop(dir);
}

/// A session with one value, an hour to live.
fn one_value(n: i64) -> Record {
    let data = [("n".to_owned(), serde_json::json!(n))].into();
    Record::new(data, now() + Duration::from_millis(3_600_000))
}

/// Creates, applies to and loads a fresh session: the store serves writes and reads.
async fn assert_serves(store: &SqliteStore) {
    let key = crate::SessionId::generate().store_key();
    let record = one_value(1);
    assert_eq!(store.create(&key, &record).await.unwrap(), Created::Done);
    let changes = ChangeSet::new(record.expires_at)
        .with_expected("n", Precondition::Equals(serde_json::json!(1)))
        .with_set("n", serde_json::json!(2));
    assert_eq!(store.apply(&key, &changes).await.unwrap(), Applied::Done);
    let loaded = store
        .load(&key)
        .await
        .unwrap()
        .expect("the session was saved");
    assert_eq!(loaded.data["n"], serde_json::json!(2));
}

/// A `with_connection` closure that panics gets an error naming the panic; what it wrote
/// before it panicked is undone, and the store keeps serving (in memory, reads go through
/// the writer too).
#[tokio::test]
async fn a_panicking_write_fails_alone_and_the_writer_carries_on() {
    let (dir, url) = file_db("panic");
    for url in ["sqlite::memory:", url.as_str()] {
        let store = SqliteStore::connect(url).await.unwrap();
        store.migrate().await.unwrap();
        for _ in 0..3 {
            let table = store.table_name().to_owned();
            let result = store
                .with_connection(move |db| {
                    db.execute(
                        &format!(
                            "INSERT INTO {table} (key, data, created_at, expires_at) \
                             VALUES ('half-done', '{{}}', 0, 0)"
                        ),
                        [],
                    )?;
                    if true {
                        panic!("a bug in the closure");
                    }
                    Ok(())
                })
                .await;
            let error = result
                .expect_err("a panicking write cannot succeed")
                .to_string();
            assert!(error.contains("panicked"), "{error}");
            assert!(error.contains("a bug in the closure"), "{error}");
            assert_serves(&store).await;
        }
        let table = store.table_name().to_owned();
        let half_done: i64 = store
            .with_connection(move |db| {
                db.query_row(
                    &format!("SELECT count(*) FROM {table} WHERE key = 'half-done'"),
                    [],
                    |row| row.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(half_done, 0, "a panicking write's changes were committed");
    }
    drop(dir);
}

/// Ten thousand keys expected, removed and set in one change set: past SQLite's limits on
/// expression depth (1,000) and on parameters (32,766) if each were spelled out.
#[tokio::test]
async fn ten_thousand_keys_in_one_change_set() {
    use serde_json::json;
    const COUNT: usize = 10_000;
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let key = crate::SessionId::generate().store_key();
    let data = (0..COUNT).map(|i| (format!("old {i}"), json!(i))).collect();
    let record = Record::new(data, now() + Duration::from_millis(3_600_000));
    assert_eq!(store.create(&key, &record).await.unwrap(), Created::Done);
    let changes = (0..COUNT).fold(ChangeSet::new(record.expires_at), |c, i| {
        c.with_expected(format!("old {i}"), Precondition::Equals(json!(i)))
            .with_expected(format!("new {i}"), Precondition::Absent)
            .with_remove(format!("old {i}"))
            .with_set(format!("new {i}"), json!([i, u64::MAX]))
    });
    // Over the cap: refused, and told so.
    let capped = changes.clone().with_max_size(1_000);
    let refused = store.apply(&key, &capped).await.unwrap();
    assert!(
        matches!(refused, Applied::TooLarge { size } if size > 1_000),
        "{refused:?}"
    );
    // A failed precondition: refused.
    let stale = changes
        .clone()
        .with_expected("old 9999", Precondition::Equals(json!(0)));
    assert_eq!(store.apply(&key, &stale).await.unwrap(), Applied::Conflict);
    assert_eq!(store.load(&key).await.unwrap().unwrap().data, record.data);
    assert_eq!(
        store
            .apply(&key, &changes.with_max_size(1 << 20))
            .await
            .unwrap(),
        Applied::Done
    );
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.data.len(), COUNT);
    assert!((0..COUNT).all(|i| loaded.data[&format!("new {i}")] == json!([i, u64::MAX])));
}

/// Holds the writer (a write that waits) until the returned sender sends, so that the
/// writes sent meanwhile queue up behind it and run as one batch.
async fn hold_writer(
    store: &SqliteStore,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let blocker = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .with_connection(move |_| {
                    let _ = hold.recv_timeout(std::time::Duration::from_secs(10));
                    Ok(())
                })
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    (release, blocker)
}

/// A write of a batch whose changes cannot be undone alone (here it released the writer's
/// savepoint itself) rolls the whole transaction back: the writes that ran in it before
/// fail, none is acknowledged, and the writes after it run in a new transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_taints_its_batch_acknowledges_nothing_uncommitted() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let (release, blocker) = hold_writer(&store).await;
    let spawn_create = |key: StoreKey| {
        let store = store.clone();
        tokio::spawn(async move { store.create(&key, &one_value(1)).await })
    };
    let (before, after) = (
        crate::SessionId::generate().store_key(),
        crate::SessionId::generate().store_key(),
    );
    let first = spawn_create(before);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let taint = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .with_connection(|db| {
                    db.execute_batch("RELEASE sessionware_write")?;
                    db.execute_batch("SELECT no_such_function()")
                })
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let last = spawn_create(after);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    let error = first.await.unwrap().expect_err("rolled back").to_string();
    assert!(error.contains("rolled back"), "{error}");
    assert!(store.load(&before).await.unwrap().is_none());
    assert!(taint.await.unwrap().is_err());
    assert_eq!(last.await.unwrap().unwrap(), Created::Done);
    assert!(store.load(&after).await.unwrap().is_some());
    assert_serves(&store).await;
}

/// A write that panics in a batch: it alone fails, and every other write of the batch is
/// answered as it ended (committed and acknowledged, or refused), none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_in_a_batch_loses_no_other_write() {
    let (dir, url) = file_db("panic-batch");
    for url in ["sqlite::memory:", url.as_str()] {
        let store = SqliteStore::connect(url).await.unwrap();
        store.migrate().await.unwrap();
        // Sessions the batch changes: each `apply` below expects n = 1.
        let existing: Vec<StoreKey> = (0..8)
            .map(|_| crate::SessionId::generate().store_key())
            .collect();
        for key in &existing {
            assert_eq!(
                store.create(key, &one_value(1)).await.unwrap(),
                Created::Done
            );
        }
        let (release, blocker) = hold_writer(&store).await;
        let commits = store.connections.commits();
        let mut creates = Vec::new();
        let mut applies = Vec::new();
        let mut panics = Vec::new();
        for i in 0..8 {
            let key = crate::SessionId::generate().store_key();
            let (store2, record) = (store.clone(), one_value(i));
            creates.push((
                key,
                i,
                tokio::spawn(async move { store2.create(&key, &record).await }),
            ));
            let (store2, key) = (store.clone(), existing[i as usize]);
            let changes = ChangeSet::new(now() + Duration::from_millis(3_600_000))
                .with_expected("n", Precondition::Equals(serde_json::json!(1)))
                .with_set("n", serde_json::json!(100 + i));
            applies.push((
                key,
                i,
                tokio::spawn(async move { store2.apply(&key, &changes).await }),
            ));
            if i % 4 == 1 {
                let store2 = store.clone();
                panics.push(tokio::spawn(async move {
                    store2
                        .with_connection(|db| -> rusqlite::Result<()> {
                            db.execute_batch("CREATE TABLE half_done (x)")?;
                            panic!("a bug in the batch")
                        })
                        .await
                }));
            }
            // Queued in this order, behind the blocker.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for task in panics {
            let error = task.await.unwrap().expect_err("it panicked").to_string();
            assert!(error.contains("a bug in the batch"), "{error}");
        }
        let mut created = Vec::new();
        for (key, i, task) in creates {
            assert_eq!(task.await.unwrap().unwrap(), Created::Done);
            created.push((key, i));
        }
        let mut applied = Vec::new();
        for (key, i, task) in applies {
            assert_eq!(task.await.unwrap().unwrap(), Applied::Done);
            applied.push((key, i));
        }
        // One commit for the blocker, one for the batch: the panics were in the batch.
        assert_eq!(store.connections.commits(), commits + 2);
        for (key, i) in created {
            let loaded = store
                .load(&key)
                .await
                .unwrap()
                .expect("acknowledged, so saved");
            assert_eq!(loaded.data["n"], serde_json::json!(i));
        }
        for (key, i) in applied {
            let loaded = store.load(&key).await.unwrap().expect("still there");
            assert_eq!(loaded.data["n"], serde_json::json!(100 + i));
        }
        let tables: i64 = store
            .with_connection(|db| {
                db.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
                    [],
                    |row| row.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(tables, 0, "a panicking write's changes were committed");
        assert_serves(&store).await;
    }
    drop(dir);
}
