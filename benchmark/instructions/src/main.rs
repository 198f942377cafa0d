//! A fixed amount of work through the layer, for counting instructions with callgrind:
//! `instructions.sh` runs it twice per workload (N and 2N requests) and reports the difference
//! divided by N, which leaves out start-up. One thread, no sockets: what is counted is the
//! router, the layer, the session and the memory store, through the public API only (so the
//! same file builds against older commits).
//!
//! Usage: `sessionware-instructions plain|read|write|new N`.

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use sessionware::{Error, MemoryStore, Session, SessionLayer};
use tower::{Service, ServiceExt};

async fn read(session: Session) -> Result<String, Error> {
    Ok(session.get::<i64>("counter").await?.unwrap_or(0).to_string())
}

async fn write(session: Session) -> Result<String, Error> {
    let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", n).await?;
    Ok(n.to_string())
}

fn request(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).expect("a valid request")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().expect("a workload: plain, read, write or new");
    let n: usize = args
        .next()
        .map(|n| n.parse().expect("a number of requests"))
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let app = Router::new()
            .route("/plain", get(|| async { "ok" }))
            .route("/read", get(read))
            .route("/write", get(write))
            .layer(SessionLayer::new(MemoryStore::default()));
        // One service for all requests, as a server keeps one.
        let mut service = app.into_service::<Body>();
        let first = service.call(request("/write", None)).await.unwrap();
        let cookie = first.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let (path, cookie) = match workload.as_str() {
            "plain" => ("/plain", None),
            "read" => ("/read", Some(cookie.as_str())),
            "write" => ("/write", Some(cookie.as_str())),
            "new" => ("/write", None),
            other => panic!("unknown workload {other}: plain, read, write or new"),
        };
        for _ in 0..n {
            let response = service.call(request(path, cookie)).await.unwrap();
            assert!(response.status().is_success());
        }
        let _ = ServiceExt::<Request<Body>>::ready(&mut service).await;
    });
}
