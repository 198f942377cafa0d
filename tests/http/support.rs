//! The HTTP tests' app (the shared routes and a few more) and a store probe for fault
//! injection; the request helper is the shared one, in `tests/common/`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, MethodRouter};
use axum::Router;
use sessionware::store::{
    Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, Touched,
};
use sessionware::{Error, MemoryStore, Session, SessionLayer, StoreError, StoreKey};
use tokio::sync::Notify;

use crate::common;

/// A real `MemoryStore` that counts calls and fails (or returns garbage) on cue.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub memory: MemoryStore,
    pub calls: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    pub fail: Arc<AtomicBool>,
    pub corrupt: Arc<AtomicBool>,
    /// Fail `list` only (the per-principal cap's step after a log-in).
    pub fail_list: Arc<AtomicBool>,
    /// Answer `Conflict` to every change set with preconditions.
    pub conflict: Arc<AtomicBool>,
}

impl Probe {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    pub fn set_failing(&self, on: bool) {
        self.fail.store(on, Ordering::SeqCst);
    }
    fn enter(&self, write: bool) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if write {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::backend("injected failure"));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for Probe {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter(false)?;
        if self.corrupt.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt("injected garbage".into()));
        }
        self.memory.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        self.enter(true)?;
        self.memory.create(key, record).await
    }
    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        self.enter(true)?;
        if self.conflict.load(Ordering::SeqCst) && !changes.expect.is_empty() {
            return Ok(Applied::Conflict);
        }
        self.memory.apply(key, changes).await
    }
    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        self.enter(true)?;
        self.memory.cycle(keys, changes).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.enter(true)?;
        self.memory.delete(key).await
    }
    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
        self.enter(true)?;
        self.memory.touch(key, expires_at).await
    }
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        self.enter(true)?;
        self.memory.delete_expired().await
    }
    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.enter(false)?;
        if self.fail_list.load(Ordering::SeqCst) {
            return Err(StoreError::backend("injected list failure"));
        }
        self.memory.list(principal).await
    }
    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.enter(false)?;
        self.memory.was_moved(key).await
    }
}

/// A request held between its load and its write, for races: the handler [`Held::route`] makes
/// loads the session, signals `loaded`, waits for `go`, then writes.
#[derive(Default)]
pub struct Held {
    pub loaded: Arc<Notify>,
    pub go: Arc<Notify>,
}

impl Held {
    /// `GET` that loads the session, waits as above, inserts `key = value` and answers `answer`.
    pub fn route(
        &self,
        key: &'static str,
        value: &'static str,
        answer: &'static str,
    ) -> MethodRouter {
        let (l, g) = (self.loaded.clone(), self.go.clone());
        get(move |s: Session| {
            let (loaded, go) = (l.clone(), g.clone());
            async move {
                s.get::<i64>("counter").await?;
                loaded.notify_one();
                go.notified().await;
                s.insert(key, value).await?;
                Ok::<_, Error>(answer)
            }
        })
    }
}

async fn set(session: Session, Path((key, value)): Path<(String, String)>) -> Result<(), Error> {
    session.insert(&key, value).await
}

async fn get_key(session: Session, Path(key): Path<String>) -> Result<String, Error> {
    Ok(session
        .get::<String>(&key)
        .await?
        .unwrap_or_else(|| "none".into()))
}

async fn remove(session: Session, Path(key): Path<String>) -> Result<String, Error> {
    Ok(session
        .remove::<String>(&key)
        .await?
        .unwrap_or_else(|| "none".into()))
}

/// The routes most tests use, behind `layer`.
pub fn app(layer: SessionLayer) -> Router {
    routes().layer(layer)
}

/// The shared routes, plus setting, reading and removing any key, clearing, and a handler
/// that fails after a write.
pub fn routes() -> Router {
    common::routes()
        .route("/set/{key}/{value}", get(set))
        .route("/get/{key}", get(get_key))
        .route("/remove/{key}", get(remove))
        .route("/clear", get(|s: Session| async move { s.clear().await }))
        .route(
            "/fail",
            get(|s: Session| async move {
                s.insert("half", "done").await?;
                Ok::<_, Error>((StatusCode::INTERNAL_SERVER_ERROR, "handler failed"))
            }),
        )
}
