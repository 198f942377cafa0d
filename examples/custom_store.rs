//! A session store of your own, proved against the store contract.
//!
//! `MapStore` keeps sessions in a map behind a mutex, with an index by principal and markers
//! under the keys a cycle moved away from. Each method is one critical section, so each is one
//! atomic step, as the contract asks; the change-set semantics come from the reference helpers
//! on `ChangeSet` (`preconditions_hold`, `check_size`, `apply_to`). A store over a database
//! keeps the same points with its own transactions or scripts.
//!
//! ```text
//! cargo run --features store-conformance --example custom_store    # the store behind a layer
//! cargo test --features store-conformance --example custom_store   # the contract, point by point
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use sessionware::store::{
    now, Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore,
};
use sessionware::{defaults, Error, Session, SessionLayer, StoreError, StoreKey};
use tower::ServiceExt;

/// Sessions in a map behind a mutex.
#[derive(Debug, Default)]
pub struct MapStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<StoreKey, Record>,
    /// The keys of each principal's sessions: listing and deleting by principal cost in
    /// proportion to the principal's sessions. An entry may outlive its session (expired, or
    /// cycled away); `list` and `delete_expired` drop those.
    by_principal: HashMap<String, HashSet<StoreKey>>,
    /// Keys a cycle moved a session away from, and until when they say so.
    moved: HashMap<StoreKey, SystemTime>,
}

impl Inner {
    /// The session under `key`, if it is live at `now`.
    fn live(&mut self, key: &StoreKey, now: SystemTime) -> Option<&mut Record> {
        self.sessions
            .get_mut(key)
            .filter(|record| record.is_live(now))
    }

    /// Files `key` under its owner's principal, if it has one.
    fn index(&mut self, key: StoreKey, record: &Record) {
        if let Some(owner) = &record.owner {
            let keys = self.by_principal.entry(owner.principal.clone());
            keys.or_default().insert(key);
        }
    }
}

impl MapStore {
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        // A panic while the lock was held may have left a session half-changed: refuse to go
        // on rather than serve it.
        self.inner
            .lock()
            .map_err(|_| StoreError::backend("the map store's lock is poisoned"))
    }
}

#[async_trait]
impl SessionStore for MapStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self.lock()?.live(key, now()).map(|record| record.clone()))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        let mut inner = self.lock()?;
        // An expired record under the key counts as free.
        if inner.live(key, now()).is_some() {
            return Ok(Created::Collision);
        }
        inner.sessions.insert(*key, record.clone());
        inner.index(*key, record);
        Ok(Created::Done)
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        let mut inner = self.lock()?;
        let Some(record) = inner.live(key, now()) else {
            return Ok(Applied::Missing);
        };
        if !changes.preconditions_hold(&record.data) {
            return Ok(Applied::Conflict);
        }
        if let Err(size) = changes.check_size(&record.data) {
            return Ok(Applied::TooLarge { size });
        }
        changes.apply_to(record);
        Ok(Applied::Done)
    }

    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        let mut inner = self.lock()?;
        let now = now();
        let Some(record) = inner.live(keys.old, now) else {
            return Ok(Cycled::Missing);
        };
        if !changes.preconditions_hold(&record.data) {
            return Ok(Cycled::Conflict);
        }
        if let Err(size) = changes.check_size(&record.data) {
            return Ok(Cycled::TooLarge { size });
        }
        if inner.live(keys.new, now).is_some() {
            return Ok(Cycled::Collision);
        }
        let Some(mut record) = inner.sessions.remove(keys.old) else {
            return Ok(Cycled::Missing);
        };
        changes.apply_to(&mut record);
        if let Some(owner) = keys.tie {
            record.owner = Some(owner.clone());
        }
        inner.index(*keys.new, &record);
        inner.sessions.insert(*keys.new, record);
        inner.moved.insert(*keys.old, now + defaults::MOVED_MARKER);
        Ok(Cycled::Done)
    }

    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let inner = self.lock()?;
        Ok(inner.moved.get(key).is_some_and(|until| *until > now()))
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if let Some(owner) = inner.sessions.remove(key).and_then(|record| record.owner) {
            if let Some(keys) = inner.by_principal.get_mut(&owner.principal) {
                keys.remove(key);
            }
        }
        Ok(())
    }

    async fn delete_expired(&self) -> Result<u64, StoreError> {
        // One pass under the lock: fine for a map in memory. A database store deletes in
        // bounded batches instead, so that no request waits long behind the purge.
        let mut inner = self.lock()?;
        let now = now();
        let before = inner.sessions.len();
        inner.sessions.retain(|_, record| record.is_live(now));
        let purged = before - inner.sessions.len();
        inner.moved.retain(|_, until| *until > now);
        let Inner {
            sessions,
            by_principal,
            ..
        } = &mut *inner;
        by_principal.retain(|_, keys| {
            keys.retain(|key| sessions.contains_key(key));
            !keys.is_empty()
        });
        Ok(purged as u64)
    }

    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let mut inner = self.lock()?;
        let now = now();
        let Inner {
            sessions,
            by_principal,
            ..
        } = &mut *inner;
        let Some(keys) = by_principal.get_mut(principal) else {
            return Ok(Vec::new());
        };
        let mut listed = Vec::new();
        keys.retain(|key| {
            let Some(record) = sessions.get(key).filter(|record| record.is_live(now)) else {
                return false;
            };
            let Some(owner) = record.owner.as_ref().filter(|o| o.principal == principal) else {
                return false;
            };
            let session = Listed::new(
                *key,
                record.created_at,
                record.expires_at,
                owner.label.clone(),
            );
            listed.push(session.with_tied_at(owner.tied_at));
            true
        });
        Ok(listed)
    }
}

/// The store behind a layer: two requests of one browser count to 2.
#[tokio::main]
async fn main() {
    let app = Router::new()
        .route(
            "/",
            get(|session: Session| async move {
                let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
                session.insert("n", n).await?;
                Ok::<_, Error>(n.to_string())
            }),
        )
        .layer(SessionLayer::new(MapStore::default()).with_secure(false));

    let mut cookie = None;
    for _ in 0..2 {
        let mut request = http::Request::get("/");
        if let Some(cookie) = &cookie {
            request = request.header(http::header::COOKIE, cookie);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).expect("a request"))
            .await
            .expect("infallible");
        if let Some(set) = response.headers().get(http::header::SET_COOKIE) {
            let set = set.to_str().expect("a cookie");
            cookie = set.split(';').next().map(str::to_owned);
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        println!("count: {}", String::from_utf8_lossy(&body));
    }
}

/// Every point of the store contract, one test each.
#[cfg(test)]
mod contract {
    sessionware::store_conformance!(super::MapStore::default());
}
