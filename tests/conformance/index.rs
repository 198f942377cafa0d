//! What the public suite cannot check from outside a store: that a purge drops the owner
//! index's entries of expired and deleted sessions. Each store says how many entries a
//! principal has through [`IndexProbe`].

use std::time::Duration;

use serde_json::json;
use sessionware::store::{now, Created, Owner, Record, SessionStore};
use sessionware::{SessionId, StoreKey};
use tokio::time::sleep;

use crate::stores::IndexProbe;

const HOUR: Duration = Duration::from_secs(3600);

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

/// A session tied to `owner` that lives `ttl`.
fn tied(owner: &Owner, ttl: Duration) -> Record {
    let t = now();
    Record::new([("n".to_owned(), json!(1))].into(), t + ttl)
        .with_created_at(t)
        .with_owner(owner.clone())
}

async fn listed_keys(store: &impl SessionStore, principal: &str) -> Vec<StoreKey> {
    let listed = store.list(principal).await.unwrap();
    listed.into_iter().map(|session| session.key).collect()
}

/// The purge drops the index entries of expired and deleted sessions, and only those.
pub async fn purge_removes_index_entries<S: SessionStore + IndexProbe>(store: S) {
    let ann = format!("user-{}", key().short());
    let owner = Owner::new(&ann);
    let (short, deleted, live) = (key(), key(), key());
    for (k, ttl) in [
        (&short, Duration::from_millis(300)),
        (&deleted, HOUR),
        (&live, HOUR),
    ] {
        assert_eq!(
            store.create(k, &tied(&owner, ttl)).await.unwrap(),
            Created::Done
        );
    }
    assert_eq!(store.index_entries(&ann).await, 3);
    store.delete(&deleted).await.unwrap();
    // Past the expiry, and past the time a store may keep an entry whose session it has not
    // seen yet (a write in flight).
    sleep(store.settle().max(Duration::from_millis(300)) + Duration::from_millis(150)).await;
    sessionware::conformance::delete_expired_in_turn(&store)
        .await
        .unwrap();
    assert_eq!(
        store.index_entries(&ann).await,
        1,
        "stale index entries survived the purge"
    );
    assert_eq!(listed_keys(&store, &ann).await, [live]);
}
