//! `PurgeTask` deletes expired sessions in the background and stops when told.

use std::time::Duration;

use serde_json::json;
use sessionware::store::{now, Outcome, PurgeTask, Record, SessionStore};
use sessionware::{MemoryStore, SessionId};

#[tokio::test]
async fn purge_task_removes_expired_sessions_until_stopped() {
    let store = MemoryStore::default();
    let t = now();
    let short = Record::new([("a".to_owned(), json!(1))].into(), t, t + 200, None);
    let long = Record::new(short.data.clone(), t, t + 3_600_000, None);
    for _ in 0..10 {
        let outcome = store
            .create(&SessionId::generate().store_key(), &short)
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Done);
    }
    let live = SessionId::generate().store_key();
    assert_eq!(store.create(&live, &long).await.unwrap(), Outcome::Done);

    let task = PurgeTask::spawn(store.clone(), Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.len(), 1, "expired sessions were not purged");
    assert!(store.load(&live).await.unwrap().is_some());
    task.stop().await;

    // Stopped: new expired entries stay until someone else purges them.
    let late = Record::new(short.data.clone(), now(), now() + 50, None);
    assert_eq!(
        store
            .create(&SessionId::generate().store_key(), &late)
            .await
            .unwrap(),
        Outcome::Done
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.len(), 2);
}
