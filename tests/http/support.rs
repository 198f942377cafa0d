//! Shared test app, request helper and a store probe for fault injection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use sessionware::store::{Applied, ChangeSet, Created, Cycled, Record, SessionStore, Touched};
use sessionware::{Error, MemoryStore, Session, SessionLayer, StoreError, StoreKey};
use tower::ServiceExt;

/// A real `MemoryStore` that counts calls and fails (or returns garbage) on cue.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub memory: MemoryStore,
    pub calls: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    pub fail: Arc<AtomicBool>,
    pub corrupt: Arc<AtomicBool>,
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
        self.memory.apply(key, changes).await
    }
    async fn cycle(
        &self,
        old: &StoreKey,
        new: &StoreKey,
        changes: &ChangeSet,
    ) -> Result<Cycled, StoreError> {
        self.enter(true)?;
        self.memory.cycle(old, new, changes).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.enter(true)?;
        self.memory.delete(key).await
    }
    async fn touch(&self, key: &StoreKey, expires_at: i64) -> Result<Touched, StoreError> {
        self.enter(true)?;
        self.memory.touch(key, expires_at).await
    }
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        self.enter(true)?;
        self.memory.delete_expired().await
    }
}

async fn read(session: Session) -> Result<String, Error> {
    Ok(session
        .get::<i64>("counter")
        .await?
        .unwrap_or(0)
        .to_string())
}

async fn write(session: Session) -> Result<String, Error> {
    let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", n).await?;
    Ok(n.to_string())
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

pub fn routes() -> Router {
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/set/{key}/{value}", get(set))
        .route("/get/{key}", get(get_key))
        .route("/remove/{key}", get(remove))
        .route("/clear", get(|s: Session| async move { s.clear().await }))
        .route(
            "/cycle",
            get(|s: Session| async move { s.cycle_id().await }),
        )
        .route(
            "/destroy",
            get(|s: Session| async move { s.destroy().await }),
        )
        .route(
            "/fail",
            get(|s: Session| async move {
                s.insert("half", "done").await?;
                Ok::<_, Error>((StatusCode::INTERNAL_SERVER_ERROR, "handler failed"))
            }),
        )
}

/// What a test looks at in a response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The single `Set-Cookie` header, if there is exactly one.
    pub fn set_cookie(&self) -> Option<String> {
        let all = self.set_cookies();
        assert!(all.len() <= 1, "more than one Set-Cookie: {all:?}");
        all.into_iter().next()
    }

    /// `name=value` of the cookie set, ready for a `Cookie` header.
    pub fn cookie(&self) -> String {
        let set = self.set_cookie().expect("a Set-Cookie header");
        set.split(';').next().unwrap().to_owned()
    }
}

/// Sends `GET path` with an optional raw `Cookie` header.
pub async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

pub async fn send_request(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}
