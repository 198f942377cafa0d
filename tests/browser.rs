//! The login demo (`examples/login`) in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`), two browser profiles as two devices of one user.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test fails and names what is missing. Ignored by a plain `cargo test`; run it with
//! `cargo test --features sqlite --test browser -- --ignored`. With `SESSIONWARE_SCREENSHOT=path`
//! it saves a screenshot of the demo's home page there (the README's picture).

// `main.rs` serves with what the test does not use (the default window, `app`).
#[allow(dead_code)]
#[path = "../examples/login/app.rs"]
mod app;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sessionware::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first of `names` found on `PATH`, or the test fails naming the package to install.
fn binary(names: &[&str], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found on PATH: install Debian's `{package}` package \
         (apt-get install chromium chromium-driver; .ci/run does it)",
        names.join(" or ")
    );
}

/// `chromedriver`, killed when the test ends.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

async fn start_driver() -> Driver {
    let chromedriver = binary(&["chromedriver"], "chromium-driver");
    let port = free_port().await;
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

/// A browser profile of its own (its own cookies): one device.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = binary(&["chromium", "chromium-browser"], "chromium");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=860,720",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium through chromedriver: {e}"))
}

async fn serve_demo(dir: &Path) -> SocketAddr {
    let url = format!("sqlite://{}?mode=rwc", dir.join("sessions.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    // A short window for the account page: the test waits it out to see the confirm step.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let app = app::app_with(app::session_layer(store), CONFIRM_WINDOW, metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

async fn text(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn body_text(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks what `locator` finds and waits for the page it leads to: the old page's root goes
/// stale, and the new one has loaded.
async fn click_to_navigate(client: &Client, locator: Locator<'_>) {
    let old_root = client.find(Locator::Css("html")).await.unwrap();
    client.find(locator).await.unwrap().click().await.unwrap();
    for _ in 0..200 {
        if old_root.tag_name().await.is_err() {
            let state = client.execute("return document.readyState", vec![]).await;
            if state.ok().as_ref().and_then(Value::as_str) == Some("complete") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the click did not lead to a new page within 5 s");
}

async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

async fn log_in(client: &Client, base: &str, user: &str, remember: bool) {
    client.goto(&format!("{base}/login")).await.unwrap();
    submit_login(client, user, app::DEMO_PASSWORD, remember).await;
    assert_eq!(
        path(client).await,
        "/",
        "the log-in did not land on the home page"
    );
}

/// Fills in and sends the login form on the current page.
async fn submit_login(client: &Client, user: &str, password: &str, remember: bool) {
    client
        .find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    let field = client.find(Locator::Id("password")).await.unwrap();
    field.send_keys(password).await.unwrap();
    if remember {
        client
            .find(Locator::Id("remember"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    click_to_navigate(client, Locator::Id("sign-in")).await;
}

/// Types `text` into the field `id` and clicks `button`, waiting for the next page.
async fn fill_and_send(client: &Client, id: &str, text: &str, button: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.send_keys(text).await.unwrap();
    click_to_navigate(client, Locator::Id(button)).await;
}

/// How recent a login the demo's account page wants in this test.
const CONFIRM_WINDOW: Duration = Duration::from_secs(3);

/// Runs `script` (a function body) in the page, awaiting a returned promise.
async fn run_js(client: &Client, script: &str) -> Value {
    let wrapped = format!("const done = arguments[0]; (async () => {{ {script} }})().then(done, e => done('error: ' + e));");
    client.execute_async(&wrapped, vec![]).await.unwrap()
}

/// `GET path` with a raw `Cookie` header, as a plain HTTP client: the status line and the
/// `Location` header.
async fn replay(address: SocketAddr, path: &str, cookie: &str) -> (String, Option<String>) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let location = response
        .lines()
        .find_map(|line| line.strip_prefix("location: ").map(str::to_owned));
    (status, location)
}

/// `GET path` as a plain HTTP client, without a cookie: the body.
async fn fetch(address: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "drives Chromium: run by .ci/run with --ignored (needs chromium and chromium-driver)"]
async fn the_login_demo_works_in_a_real_browser() {
    let scratch = ScratchDir::new();
    let dir = scratch.0.clone();
    let address = serve_demo(&dir).await;
    let base = format!("http://{address}");
    let driver = start_driver().await;
    let laptop = browser(&driver, &dir.join("laptop")).await;

    // Not signed in: a guarded page sends us to the login form, which, once we are logged in,
    // takes us to the page we asked for.
    laptop.goto(&format!("{base}/account")).await.unwrap();
    assert_eq!(path(&laptop).await, "/login");
    submit_login(&laptop, "ann", app::DEMO_PASSWORD, false).await;
    assert_eq!(
        path(&laptop).await,
        "/account",
        "the login did not return to the page"
    );
    let logged_in_at = std::time::Instant::now();

    // The welcome flash shows once, on the page the login returned to.
    assert!(body_text(&laptop).await.contains("Welcome, ann."));
    laptop.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(text(&laptop, "user").await, "ann");
    assert!(
        !body_text(&laptop).await.contains("Welcome, ann."),
        "the flash showed twice"
    );

    // The session cookie is HttpOnly: scripts cannot read it.
    let cookies = laptop
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(
        !cookies.as_str().unwrap_or_default().contains("id="),
        "{cookies}"
    );
    let session_cookie = laptop.get_named_cookie("id").await.unwrap();
    assert!(session_cookie.http_only().unwrap_or(false));
    let old_cookie = format!("id={}", session_cookie.value());

    // The cart survives page loads, and two quick clicks both count.
    click_to_navigate(&laptop, Locator::Id("add-apple")).await;
    laptop.refresh().await.unwrap();
    assert!(text(&laptop, "cart-apple").await.contains("× 1"));
    let both = run_js(
        &laptop,
        r#"const token = document.querySelector('input[name=csrf_token]').value;
           const add = () => fetch('/cart/add', { method: 'POST', redirect: 'manual',
               body: new URLSearchParams({ csrf_token: token, product: 'pear' }) });
           const replies = await Promise.all([add(), add()]);
           return replies.map(r => r.type);"#,
    )
    .await;
    assert_eq!(both, json!(["opaqueredirect", "opaqueredirect"]), "{both}");
    laptop.refresh().await.unwrap();
    assert!(
        text(&laptop, "cart-pear").await.contains("× 2"),
        "a quick click was lost"
    );

    // A form posted without its CSRF token is refused.
    let forged = run_js(
        &laptop,
        r#"const reply = await fetch('/cart/add', { method: 'POST',
               body: new URLSearchParams({ product: 'plum' }) });
           return [reply.status, await reply.text()];"#,
    )
    .await;
    assert_eq!(forged[0], json!(403), "{forged}");
    assert!(
        forged[1].as_str().unwrap().contains("no CSRF token"),
        "{forged}"
    );

    // A second device logs in as the same user, with "keep me signed in".
    let phone = browser(&driver, &dir.join("phone")).await;
    log_in(&phone, &base, "ann", true).await;
    let in_30_days = time::OffsetDateTime::now_utc() + Duration::from_secs(30 * 24 * 3600);
    let date = format!(
        "{:04}-{:02}-{:02}",
        in_30_days.year(),
        u8::from(in_30_days.month()),
        in_30_days.day()
    );
    assert!(
        text(&phone, "deadlines").await.contains(&date),
        "keep me signed in"
    );
    assert!(!text(&laptop, "deadlines").await.contains(&date));

    // The laptop sees both sessions and revokes the phone's.
    laptop.refresh().await.unwrap();
    let devices = laptop.find_all(Locator::Css("tr.device")).await.unwrap();
    assert_eq!(devices.len(), 2, "the second device is not listed");
    if let Some(path) = std::env::var_os("SESSIONWARE_SCREENSHOT") {
        let png = laptop.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
    }
    click_to_navigate(&laptop, Locator::Css("button.revoke")).await;
    assert!(body_text(&laptop)
        .await
        .contains("That device is signed out."));
    phone.refresh().await.unwrap();
    assert_eq!(
        path(&phone).await,
        "/login",
        "a revoked device is still signed in"
    );

    // The log-ins and the revocation are counted in /metrics.
    let metrics = fetch(address, "/metrics").await;
    let value = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(value("sessionware_logins_total") >= 2.0, "{metrics}");
    assert!(
        value("sessionware_sessions_revoked_total") >= 1.0,
        "{metrics}"
    );

    // A login form whose `next` points to another host goes home instead.
    phone
        .goto(&format!("{base}/login?next=//evil.example/"))
        .await
        .unwrap();
    submit_login(&phone, "ann", app::DEMO_PASSWORD, false).await;
    let landed = phone.current_url().await.unwrap();
    assert_eq!(
        (landed.host_str(), landed.path()),
        (Some("127.0.0.1"), "/"),
        "an open redirect: {landed}"
    );

    // The password change wants a recent login: past the window, it asks for the password
    // again, then works, and signs the other device (the phone) out.
    let waited = logged_in_at.elapsed();
    if waited <= CONFIRM_WINDOW {
        tokio::time::sleep(CONFIRM_WINDOW - waited + Duration::from_millis(300)).await;
    }
    laptop.goto(&format!("{base}/account")).await.unwrap();
    assert_eq!(
        path(&laptop).await,
        "/confirm",
        "a stale login reached the account page"
    );
    fill_and_send(&laptop, "password", app::DEMO_PASSWORD, "confirm-password").await;
    assert_eq!(
        path(&laptop).await,
        "/account",
        "confirming did not return to the page"
    );
    fill_and_send(&laptop, "new-password", "s3cret", "change-password").await;
    assert!(
        body_text(&laptop)
            .await
            .contains("Password changed. Signed out 1 other session(s)."),
        "{}",
        body_text(&laptop).await
    );
    phone.refresh().await.unwrap();
    assert_eq!(
        path(&phone).await,
        "/login",
        "the other device is still signed in"
    );
    submit_login(&phone, "ann", app::DEMO_PASSWORD, false).await;
    assert_eq!(path(&phone).await, "/login", "the old password still works");
    submit_login(&phone, "ann", "s3cret", false).await;
    assert_eq!(path(&phone).await, "/");

    // Log out: back to the login form, and the old cookie no longer works anywhere.
    click_to_navigate(&laptop, Locator::Id("logout")).await;
    assert_eq!(path(&laptop).await, "/login");
    assert!(body_text(&laptop).await.contains("You are signed out."));
    let (status, location) = replay(address, "/", &old_cookie).await;
    assert!(status.contains("303"), "{status}");
    assert_eq!(
        location.as_deref(),
        Some("/login?next=%2F"),
        "the old cookie still logs in"
    );

    laptop.close().await.unwrap();
    phone.close().await.unwrap();
    drop(driver);
}

/// The test's database and browser profiles, removed when the test ends, passed or failed.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sessionware-browser-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
