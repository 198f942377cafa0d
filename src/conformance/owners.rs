//! The owner points of the store contract (sessions by user). Principals are random, so tests
//! may share a backend.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{now, ChangeSet, Created, Cycled, Owner, Record, Rekey, SessionStore};
use crate::{SessionId, StoreKey};
use serde_json::json;
use tokio::sync::Barrier;
use tokio::time::sleep;

const HOUR: Duration = Duration::from_secs(3600);

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn principal() -> String {
    format!("user-{}", key().short())
}

/// A session tied to `owner` that lives `ttl`.
fn tied(owner: &Owner, ttl: Duration) -> Record {
    let t = now();
    Record::new([("n".to_owned(), json!(1))].into(), t + ttl)
        .with_created_at(t)
        .with_owner(owner.clone())
}

async fn listed_keys(store: &impl SessionStore, principal: &str) -> Vec<StoreKey> {
    let mut keys: Vec<StoreKey> = store
        .list(principal)
        .await
        .unwrap()
        .into_iter()
        .map(|listed| listed.key)
        .collect();
    keys.sort();
    keys
}

fn sorted(mut keys: Vec<StoreKey>) -> Vec<StoreKey> {
    keys.sort();
    keys
}

/// A tied session keeps its owner through loads and applies and is listed with what was
/// given; untied sessions and other principals' are not listed.
pub async fn owners_are_kept_and_listed(store: impl SessionStore) {
    let (ann, bob) = (principal(), principal());
    let owner = Owner::new(&ann).with_label("Firefox on Linux");
    let (mine, theirs, nobodys) = (key(), key(), key());
    let record = tied(&owner, HOUR);
    assert_eq!(store.create(&mine, &record).await.unwrap(), Created::Done);
    let bobs = tied(&Owner::new(&bob), HOUR);
    assert_eq!(store.create(&theirs, &bobs).await.unwrap(), Created::Done);
    let untied = Record::new(Default::default(), now() + HOUR);
    assert_eq!(
        store.create(&nobodys, &untied).await.unwrap(),
        Created::Done
    );

    assert_eq!(
        store.load(&mine).await.unwrap().unwrap().owner,
        Some(owner.clone())
    );
    assert_eq!(store.load(&nobodys).await.unwrap().unwrap().owner, None);
    let listed = store.list(&ann).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, mine);
    assert_eq!(listed[0].created_at, record.created_at);
    assert_eq!(listed[0].expires_at, record.expires_at);
    assert_eq!(listed[0].label.as_deref(), Some("Firefox on Linux"));
    assert_eq!(listed_keys(&store, &bob).await, [theirs]);
    assert!(store.list(&principal()).await.unwrap().is_empty());

    // An apply changes data and deadline, never the owner; the listing follows the deadline.
    let later = record.expires_at + Duration::from_millis(5_000);
    let change = ChangeSet::new(later).with_set("n", json!(2));
    assert_eq!(
        store.apply(&mine, &change).await.unwrap(),
        crate::store::Applied::Done
    );
    assert_eq!(store.load(&mine).await.unwrap().unwrap().owner, Some(owner));
    assert_eq!(store.list(&ann).await.unwrap()[0].expires_at, later);
}

/// Expired and deleted sessions are not listed.
pub async fn listing_skips_expired_and_destroyed(store: impl SessionStore) {
    let ann = principal();
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
    assert_eq!(
        listed_keys(&store, &ann).await,
        sorted(vec![short, deleted, live])
    );
    store.delete(&deleted).await.unwrap();
    sleep(Duration::from_millis(400)).await;
    assert_eq!(listed_keys(&store, &ann).await, [live]);
}

/// A cycle keeps a tied session listed under its new key only; a cycle with a tie moves it to
/// the new principal's list.
pub async fn cycle_keeps_the_owner_under_the_new_key(store: impl SessionStore) {
    let (ann, bob) = (principal(), principal());
    let owner = Owner::new(&ann).with_label("phone");
    let (first, second, third) = (key(), key(), key());
    assert_eq!(
        store.create(&first, &tied(&owner, HOUR)).await.unwrap(),
        Created::Done
    );
    let keep = ChangeSet::new(now() + HOUR);
    let rekey = Rekey::new(&first, &second).with_loaded_principal(&ann);
    assert_eq!(store.cycle(rekey, &keep).await.unwrap(), Cycled::Done);
    assert_eq!(listed_keys(&store, &ann).await, [second]);
    let listed = store.list(&ann).await.unwrap();
    assert_eq!(listed[0].label.as_deref(), Some("phone"));
    assert_eq!(
        store.load(&second).await.unwrap().unwrap().owner,
        Some(owner)
    );

    let bobs = Owner::new(&bob);
    let rekey = Rekey::new(&second, &third)
        .with_tie(&bobs)
        .with_loaded_principal(&ann);
    assert_eq!(store.cycle(rekey, &keep).await.unwrap(), Cycled::Done);
    assert!(listed_keys(&store, &ann).await.is_empty());
    assert_eq!(listed_keys(&store, &bob).await, [third]);
    let loaded = store.load(&third).await.unwrap().unwrap();
    assert_eq!(
        loaded.owner,
        Some(bobs),
        "the label of the old owner leaked"
    );

    // An untied session tied by a cycle (a log-in of a visitor's session).
    let (visitor, logged_in) = (key(), key());
    let anonymous = Record::new(Default::default(), now() + HOUR);
    assert_eq!(
        store.create(&visitor, &anonymous).await.unwrap(),
        Created::Done
    );
    let carol = principal();
    let owner = Owner::new(&carol);
    let rekey = Rekey::new(&visitor, &logged_in).with_tie(&owner);
    assert_eq!(store.cycle(rekey, &keep).await.unwrap(), Cycled::Done);
    assert_eq!(listed_keys(&store, &carol).await, [logged_in]);
}

/// `delete_all` ends every session of the principal and no other.
pub async fn delete_all_ends_the_principals_sessions(store: impl SessionStore) {
    let (ann, bob) = (principal(), principal());
    let anns: Vec<StoreKey> = (0..3).map(|_| key()).collect();
    for k in &anns {
        assert_eq!(
            store
                .create(k, &tied(&Owner::new(&ann), HOUR))
                .await
                .unwrap(),
            Created::Done
        );
    }
    let bobs = key();
    let record = tied(&Owner::new(&bob), HOUR);
    assert_eq!(store.create(&bobs, &record).await.unwrap(), Created::Done);

    assert_eq!(store.delete_all(&ann).await.unwrap(), 3);
    for k in &anns {
        assert!(
            store.load(k).await.unwrap().is_none(),
            "a revoked session lives"
        );
    }
    assert!(store.list(&ann).await.unwrap().is_empty());
    assert!(
        store.load(&bobs).await.unwrap().is_some(),
        "another user's session died"
    );
    assert_eq!(store.delete_all(&ann).await.unwrap(), 0);
}

/// Log-ins (creates and cycles with a tie) racing `delete_all` of the same principal: each new
/// session ends either dead or listed, never live and unlisted.
pub async fn log_in_racing_delete_all_is_listed_or_dead(store: impl SessionStore) {
    let store = Arc::new(store);
    for _ in 0..10 {
        let ann = principal();
        let owner = Owner::new(&ann);
        // One session already logged in, one visitor about to log in, one fresh log-in.
        let (before, visitor) = (key(), key());
        assert_eq!(
            store.create(&before, &tied(&owner, HOUR)).await.unwrap(),
            Created::Done
        );
        let anonymous = Record::new(Default::default(), now() + HOUR);
        assert_eq!(
            store.create(&visitor, &anonymous).await.unwrap(),
            Created::Done
        );
        let (cycled, created) = (key(), key());

        let barrier = Arc::new(Barrier::new(3));
        let revoke = tokio::spawn({
            let (store, barrier, ann) = (store.clone(), barrier.clone(), ann.clone());
            async move {
                barrier.wait().await;
                store.delete_all(&ann).await.unwrap()
            }
        });
        let cycle = tokio::spawn({
            let (store, barrier, owner) = (store.clone(), barrier.clone(), owner.clone());
            async move {
                barrier.wait().await;
                let rekey = Rekey::new(&visitor, &cycled).with_tie(&owner);
                store
                    .cycle(rekey, &ChangeSet::new(now() + HOUR))
                    .await
                    .unwrap()
            }
        });
        let create = tokio::spawn({
            let (store, barrier, owner) = (store.clone(), barrier.clone(), owner.clone());
            async move {
                barrier.wait().await;
                store.create(&created, &tied(&owner, HOUR)).await.unwrap()
            }
        });
        revoke.await.unwrap();
        assert_eq!(cycle.await.unwrap(), Cycled::Done);
        assert_eq!(create.await.unwrap(), Created::Done);

        let listed = listed_keys(&*store, &ann).await;
        for k in [before, cycled, created] {
            let live = store.load(&k).await.unwrap().is_some();
            assert!(
                !live || listed.contains(&k),
                "a live session is missing from the index"
            );
        }
        assert!(
            store.load(&before).await.unwrap().is_none(),
            "a revoked session lives"
        );
    }
}

/// Through the layer: with a cap of two sessions per principal, a third log-in revokes the
/// oldest, and the two youngest stay.
pub async fn the_cap_per_principal_revokes_the_oldest(store: impl SessionStore) {
    let two = std::num::NonZeroUsize::new(2).unwrap();
    let layer = crate::SessionLayer::new(store).with_max_sessions_per_principal(two);
    let sessions = layer.sessions();
    let app = super::http::app(layer);
    let ann = principal();
    let mut cookies = Vec::new();
    for device in ["first", "second", "third"] {
        // Creation times in distinct milliseconds: "oldest" is well defined.
        sleep(Duration::from_millis(3)).await;
        let reply = super::http::send_ok(&app, &format!("/login/{ann}/{device}"), None).await;
        cookies.push(reply.cookie());
    }
    let whoami = |cookie: String| {
        let app = app.clone();
        async move {
            super::http::send_ok(&app, "/whoami", Some(&cookie))
                .await
                .body
        }
    };
    assert_eq!(
        whoami(cookies[0].clone()).await,
        "nobody",
        "the oldest survived the cap"
    );
    assert_eq!(whoami(cookies[1].clone()).await, ann);
    assert_eq!(whoami(cookies[2].clone()).await, ann);
    let labels: Vec<String> = sessions
        .list(&ann)
        .await
        .unwrap()
        .iter()
        .map(|info| info.label().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(labels, ["second", "third"]);
}

/// The tie time is stored with the owner: loaded, listed, kept by a cycle without a tie,
/// replaced by a cycle with one; an owner without one reads back without one.
pub async fn tie_time_is_kept_and_listed(store: impl SessionStore) {
    let ann = principal();
    let t1 = now() - Duration::from_millis(5_000);
    let owner = Owner::new(&ann).with_label("laptop").with_tied_at(t1);
    let k = key();
    assert_eq!(
        store.create(&k, &tied(&owner, HOUR)).await.unwrap(),
        Created::Done
    );
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded.owner.as_ref().and_then(|o| o.tied_at), Some(t1));
    let listed = store.list(&ann).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tied_at, Some(t1));

    let k2 = key();
    let keep = ChangeSet::new(now() + HOUR);
    assert_eq!(
        store.cycle(Rekey::new(&k, &k2), &keep).await.unwrap(),
        Cycled::Done
    );
    assert_eq!(
        store.list(&ann).await.unwrap()[0].tied_at,
        Some(t1),
        "a cycle without a tie keeps it"
    );

    let t2 = now();
    let again = Owner::new(&ann).with_tied_at(t2);
    let k3 = key();
    let rekey = Rekey::new(&k2, &k3).with_tie(&again);
    assert_eq!(store.cycle(rekey, &keep).await.unwrap(), Cycled::Done);
    let loaded = store.load(&k3).await.unwrap().unwrap();
    assert_eq!(loaded.owner.and_then(|o| o.tied_at), Some(t2));
    assert_eq!(store.list(&ann).await.unwrap()[0].tied_at, Some(t2));

    let bob = principal();
    let k4 = key();
    let untimed = tied(&Owner::new(&bob), HOUR);
    assert_eq!(store.create(&k4, &untimed).await.unwrap(), Created::Done);
    assert_eq!(store.list(&bob).await.unwrap()[0].tied_at, None);
}

/// A cycle marks the old key as moved, in the same step: `was_moved` says so for the old key
/// only, while every other operation still finds the old key absent. A delete or an unknown
/// key is not "moved".
pub async fn a_cycle_marks_the_old_key_moved(store: impl SessionStore) {
    let (old, new) = (key(), key());
    let record = tied(&Owner::new(principal()), HOUR);
    assert_eq!(store.create(&old, &record).await.unwrap(), Created::Done);
    assert!(!store.was_moved(&old).await.unwrap());
    let changes = ChangeSet::new(now() + HOUR);
    assert_eq!(
        store.cycle(Rekey::new(&old, &new), &changes).await.unwrap(),
        Cycled::Done
    );
    assert!(
        store.was_moved(&old).await.unwrap(),
        "no marker after a cycle"
    );
    assert!(!store.was_moved(&new).await.unwrap());
    assert!(store.load(&old).await.unwrap().is_none());
    assert_eq!(
        store
            .apply(&old, &ChangeSet::new(now() + HOUR).with_set("x", json!(1)))
            .await
            .unwrap(),
        crate::store::Applied::Missing
    );
    assert!(store.load(&new).await.unwrap().is_some());

    let deleted = key();
    assert_eq!(
        store.create(&deleted, &record).await.unwrap(),
        Created::Done
    );
    store.delete(&deleted).await.unwrap();
    assert!(
        !store.was_moved(&deleted).await.unwrap(),
        "a delete is not a move"
    );
    assert!(!store.was_moved(&key()).await.unwrap());
}
