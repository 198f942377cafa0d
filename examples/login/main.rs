//! A login app on sessionware, in one command:
//!
//! ```text
//! cargo run --example login --features sqlite,metrics
//! ```
//!
//! Open the printed URL, sign in with any user name and the password shown on the page, add
//! things to the cart, sign in from a second browser (or a private window) as the same user and
//! revoke one session from the other's device list. Sessions live in `sessionware-login.db`
//! (`SQLITE_URL` picks another file) and survive a restart. Every session event is printed as
//! one JSON line (an audit log), and `/metrics` serves the session metrics as Prometheus text. `tests/browser.rs` drives this app
//! in headless Chromium.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use sessionware::store::PurgeTask;
use sessionware::SqliteStore;

mod app;

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("SQLITE_URL")
        .unwrap_or_else(|_| "sqlite://sessionware-login.db?mode=rwc".to_owned());
    let store = match SqliteStore::connect(&url).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open the SQLite database {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = store.migrate().await {
        eprintln!("cannot create the sessions table in {url}: {e}");
        return ExitCode::FAILURE;
    }
    let purge = PurgeTask::spawn(store.clone(), Duration::from_secs(600));
    let metrics = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("cannot install the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = app::app(app::session_layer(store), metrics);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3000);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {address}: {e} (set PORT to use another port)");
            return ExitCode::FAILURE;
        }
    };
    println!("sessionware login demo: http://{address}/");
    let served = axum::serve(listener, app).await;
    let _ = purge.stop().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
