//! The login demo's application: routes, handlers and pages. `main.rs` serves it on SQLite;
//! `tests/browser.rs` drives it in Chromium.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use sessionware::auth::{safe_next, LoggedIn, RequireLogin};
use sessionware::events::SessionEvent;
use sessionware::{
    CsrfLayer, Error, Expiry, FlashMessage, Flashes, Level, Session, SessionHandle, SessionInfo,
    SessionKey, SessionLayer, Sessions,
};

/// The password every user name accepts in this demo until the user changes it (shown on the
/// login page).
pub const DEMO_PASSWORD: &str = "sessionware";

/// How recent a login the account page (the password change) wants: older ones confirm the
/// password first.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(10 * 60);

/// How long a quiet session lives.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// How long any session lives at most.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// "Keep me signed in": a longer absolute lifetime.
pub const REMEMBERED: Duration = Duration::from_secs(30 * 24 * 3600);

/// The products the shop sells.
const PRODUCTS: [&str; 3] = ["apple", "pear", "plum"];

/// The cart: counts per product, kept in the session as one typed value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub items: Vec<(String, u32)>,
}

impl Cart {
    fn add(&mut self, product: &str) {
        match self.items.iter_mut().find(|(name, _)| name == product) {
            Some((_, count)) => *count += 1,
            None => self.items.push((product.to_owned(), 1)),
        }
    }
}

const CART: SessionKey<Cart> = SessionKey::new("cart");

/// The session layer the demo uses on `store`: plain HTTP on localhost, so not `Secure`. Its
/// events go to standard output as an audit log, one JSON line each.
pub fn session_layer(store: impl sessionware::store::SessionStore) -> SessionLayer {
    SessionLayer::new(store)
        .on_event(|event: &SessionEvent| println!("{}", audit_line(event)))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(IDLE))
        .with_absolute_timeout(ABSOLUTE)
        .with_max_absolute_timeout(REMEMBERED)
}

/// What the handlers share: the layer's sessions by user, and the passwords users changed
/// (in memory: a demo).
#[derive(Clone)]
struct AppState {
    sessions: Sessions,
    passwords: Arc<Mutex<HashMap<String, String>>>,
}

impl AppState {
    fn password_matches(&self, user: &str, password: &str) -> bool {
        let passwords = self.passwords.lock().unwrap_or_else(|e| e.into_inner());
        passwords.get(user).map_or(DEMO_PASSWORD, String::as_str) == password
    }
}

/// One audit-log line: the event as JSON (never the session's id: its handle at most).
fn audit_line(event: &SessionEvent) -> String {
    let at = event
        .at()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |at| at.as_millis());
    serde_json::json!({
        "at_ms": at,
        "event": event.kind().as_str(),
        "principal": event.principal(),
        "session": event.handle().map(ToString::to_string),
    })
    .to_string()
}

/// The demo on `layer`, the account page wanting a login within [`CONFIRM_WINDOW`], its
/// metrics served at `/metrics` from `metrics`.
pub fn app(layer: SessionLayer, metrics: PrometheusHandle) -> Router {
    app_with(layer, CONFIRM_WINDOW, metrics)
}

/// The demo on `layer`, the account page wanting a login within `confirm_window`, its metrics
/// served at `/metrics` from `metrics`.
pub fn app_with(
    layer: SessionLayer,
    confirm_window: Duration,
    metrics: PrometheusHandle,
) -> Router {
    let state = AppState {
        sessions: layer.sessions(),
        passwords: Arc::default(),
    };
    // Pages for logged-in users: others are sent to the login form, and back here after it.
    let pages = Router::new()
        .route("/", get(home))
        .route("/cart/add", post(add_to_cart))
        .route("/devices/revoke", post(revoke))
        .route("/devices/others", post(revoke_others))
        .route_layer(RequireLogin::redirect_to("/login"));
    // The password change wants a recent login: an older one confirms the password first.
    let account = Router::new()
        .route("/account", get(account_page))
        .route(
            "/account/password",
            get(|| async { Redirect::to("/account") }).post(change_password),
        )
        .route_layer(RequireLogin::redirect_to("/confirm").within(confirm_window))
        // Checked first: a visitor who is not logged in at all goes to the login form.
        .route_layer(RequireLogin::redirect_to("/login"));
    Router::new()
        .merge(pages)
        .merge(account)
        .route("/login", get(login_page).post(log_in))
        .route("/confirm", get(confirm_page).post(confirm))
        .route("/logout", post(log_out))
        // Prometheus text: sessions created, log-ins, revocations, store latency...
        .route("/metrics", get(move || async move { metrics.render() }))
        .with_state(state)
        .layer(CsrfLayer::new())
        .layer(layer)
}

/// The `next` parameter of the login and confirm pages: where to go afterwards.
#[derive(Deserialize)]
struct Next {
    #[serde(default)]
    next: Option<String>,
}

impl Next {
    /// The page to go to: `next` if it is a path on this site (never another host), else home.
    fn target(&self) -> &str {
        self.next.as_deref().and_then(safe_next).unwrap_or("/")
    }

    /// `?next=...` for a link back to this page, or nothing.
    fn query(&self) -> String {
        match self.next.as_deref().and_then(safe_next) {
            Some(next) => {
                let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                format!("?next={encoded}")
            }
            None => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    remember: Option<String>,
}

#[derive(Deserialize)]
struct AddForm {
    product: String,
}

#[derive(Deserialize)]
struct RevokeForm {
    handle: String,
}

async fn login_page(
    session: Session,
    Query(next): Query<Next>,
    Flashes(flashes): Flashes,
) -> Result<Response, Error> {
    if session.principal().await?.is_some() {
        return Ok(Redirect::to(next.target()).into_response());
    }
    let token = session.csrf_token().await?;
    let body = format!(
        r#"<h1>Sign in</h1>
{flashes}
<form method="post" action="/login{query}" id="login">
  <input type="hidden" name="csrf_token" value="{token}">
  <label>User name <input name="user" id="user" required autofocus></label>
  <label>Password <input name="password" id="password" type="password" required></label>
  <label class="inline"><input type="checkbox" name="remember" id="remember" value="1"> Keep me signed in (30 days)</label>
  <button type="submit" id="sign-in">Sign in</button>
</form>
<p class="hint">Any user name works; the demo password is <code>{DEMO_PASSWORD}</code>.</p>"#,
        flashes = render_flashes(&flashes),
        query = escape(&next.query()),
    );
    Ok(page("Sign in", &body).into_response())
}

async fn log_in(
    session: Session,
    State(state): State<AppState>,
    Query(next): Query<Next>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, Error> {
    let user = form.user.trim();
    if user.is_empty() || !state.password_matches(user, &form.password) {
        session
            .flash(Level::Error, "Wrong user name or password.")
            .await?;
        let back = format!("/login{}", next.query());
        return Ok(Redirect::to(&back).into_response());
    }
    let browser = headers
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .map(browser_name)
        .unwrap_or("a browser");
    session.log_in_with_label(user, browser).await?;
    if form.remember.is_some() {
        session.set_absolute_timeout(Some(REMEMBERED));
    }
    session
        .flash(Level::Success, format!("Welcome, {user}."))
        .await?;
    // Back to the page that sent us here (only a page of this site: see `safe_next`).
    Ok(Redirect::to(next.target()).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

/// The confirm-password page: a login older than the account page allows is confirmed here.
async fn confirm_page(
    session: Session,
    LoggedIn(user): LoggedIn,
    Query(next): Query<Next>,
    Flashes(flashes): Flashes,
) -> Result<Response, Error> {
    let token = session.csrf_token().await?;
    let body = format!(
        r#"<h1>Confirm it is you</h1>
{flashes}
<p>Enter the password of <b>{user}</b> again to continue.</p>
<form method="post" action="/confirm{query}" id="confirm">
  <input type="hidden" name="csrf_token" value="{token}">
  <label>Password <input name="password" id="password" type="password" required autofocus></label>
  <button type="submit" id="confirm-password">Confirm</button>
</form>"#,
        flashes = render_flashes(&flashes),
        user = escape(&user),
        query = escape(&next.query()),
    );
    Ok(page("Confirm", &body).into_response())
}

async fn confirm(
    session: Session,
    LoggedIn(user): LoggedIn,
    State(state): State<AppState>,
    Query(next): Query<Next>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Error> {
    if !state.password_matches(&user, &form.password) {
        session.flash(Level::Error, "Wrong password.").await?;
        let back = format!("/confirm{}", next.query());
        return Ok(Redirect::to(&back).into_response());
    }
    // A new id and a fresh login time: the account page lets us in again.
    session.confirm_login().await?;
    Ok(Redirect::to(next.target()).into_response())
}

async fn account_page(
    session: Session,
    LoggedIn(user): LoggedIn,
    Flashes(flashes): Flashes,
) -> Result<Response, Error> {
    let token = session.csrf_token().await?;
    let body = format!(
        r#"<h1>Account of <span id="user">{user}</span></h1>
{flashes}
<p class="hint">Changing the password signs out your other devices.</p>
<form method="post" action="/account/password" id="change">
  <input type="hidden" name="csrf_token" value="{token}">
  <label>New password <input name="password" id="new-password" type="password" required></label>
  <button type="submit" id="change-password">Change password</button>
</form>
<p><a href="/">Back</a></p>"#,
        flashes = render_flashes(&flashes),
        user = escape(&user),
    );
    Ok(page("Account", &body).into_response())
}

async fn change_password(
    session: Session,
    LoggedIn(user): LoggedIn,
    State(state): State<AppState>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Error> {
    if form.password.is_empty() {
        session.flash(Level::Error, "Enter a new password.").await?;
        return Ok(Redirect::to("/account").into_response());
    }
    state
        .passwords
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(user, form.password);
    // Whoever knew the old password is signed out everywhere but here.
    let n = session.revoke_others().await?;
    session
        .flash(
            Level::Success,
            format!("Password changed. Signed out {n} other session(s)."),
        )
        .await?;
    Ok(Redirect::to("/").into_response())
}

async fn log_out(session: Session) -> Result<Redirect, Error> {
    session.destroy().await?;
    // After `destroy`, values go into a new session: the message survives the log-out.
    session.flash(Level::Info, "You are signed out.").await?;
    Ok(Redirect::to("/login"))
}

async fn home(
    session: Session,
    LoggedIn(user): LoggedIn,
    Flashes(flashes): Flashes,
) -> Result<Response, Error> {
    let token = session.csrf_token().await?;
    let cart = session.get(CART).await?.unwrap_or_default();
    let devices = session.devices().await?;
    let current = devices.iter().find(|device| device.is_current());

    let cart_rows: String = if cart.items.is_empty() {
        "<li class=\"empty\">Your cart is empty.</li>".to_owned()
    } else {
        cart.items
            .iter()
            .map(|(name, count)| {
                format!(
                    "<li id=\"cart-{name}\">{} × <b>{count}</b></li>",
                    escape(name)
                )
            })
            .collect()
    };
    let buttons: String = PRODUCTS
        .iter()
        .map(|product| {
            format!(
                r#"<form method="post" action="/cart/add" class="inline"><input type="hidden" name="csrf_token" value="{token}"><input type="hidden" name="product" value="{product}"><button id="add-{product}">Add {product}</button></form>"#
            )
        })
        .collect();
    let device_rows: String = devices
        .iter()
        .map(|device| device_row(device, &token))
        .collect();
    let deadlines = match current {
        Some(current) => format!(
            "<p id=\"deadlines\">Idle deadline: {1} UTC ({0} after the last request). Absolute deadline: {2} UTC.</p>",
            human(match session.expiry() {
                Expiry::OnInactivity(idle) => idle,
                _ => IDLE,
            }),
            clock(current.expires_at()),
            clock(current.created_at() + session.absolute_timeout()),
        ),
        None => String::new(),
    };
    let body = format!(
        r#"<h1>Hello, <span id="user">{user}</span></h1>
{flashes}
{deadlines}
<h2>Cart</h2>
<ul id="cart">{cart_rows}</ul>
<p>{buttons}</p>
<h2>Your devices</h2>
<table id="devices"><tr><th>Device</th><th>Signed in</th><th>Ends if idle</th><th></th></tr>{device_rows}</table>
<form method="post" action="/devices/others" class="inline"><input type="hidden" name="csrf_token" value="{token}"><button id="sign-out-others">Sign out everywhere else</button></form>
<a href="/account" id="account">Account</a>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf_token" value="{token}"><button id="logout">Sign out</button></form>"#,
        user = escape(&user),
        flashes = render_flashes(&flashes),
    );
    Ok(page("Home", &body).into_response())
}

fn device_row(device: &SessionInfo, token: &str) -> String {
    let label = escape(device.label().unwrap_or("unknown"));
    let action = if device.is_current() {
        "<b class=\"current\">this device</b>".to_owned()
    } else {
        format!(
            r#"<form method="post" action="/devices/revoke" class="inline"><input type="hidden" name="csrf_token" value="{token}"><input type="hidden" name="handle" value="{}"><button class="revoke">Revoke</button></form>"#,
            device.handle()
        )
    };
    format!(
        "<tr class=\"device\"><td>{label}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
        clock(device.created_at()),
        clock(device.expires_at()),
    )
}

async fn add_to_cart(session: Session, Form(form): Form<AddForm>) -> Result<Response, Error> {
    if PRODUCTS.contains(&form.product.as_str()) {
        // `update`: two quick clicks (or two tabs) both count.
        session
            .update(CART, |cart| {
                let mut cart = cart.unwrap_or_default();
                cart.add(&form.product);
                cart
            })
            .await?;
    }
    Ok(Redirect::to("/").into_response())
}

async fn revoke(
    session: Session,
    LoggedIn(user): LoggedIn,
    State(state): State<AppState>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, Error> {
    let sessions = &state.sessions;
    // The handle came from a form: revoke it only if it is one of this user's sessions.
    let revoked = match form.handle.parse::<SessionHandle>() {
        Ok(handle) => sessions.revoke(&user, &handle).await?,
        Err(_) => false,
    };
    let (level, text) = if revoked {
        (Level::Success, "That device is signed out.")
    } else {
        (Level::Warning, "No such device.")
    };
    session.flash(level, text).await?;
    Ok(Redirect::to("/").into_response())
}

async fn revoke_others(session: Session) -> Result<Redirect, Error> {
    let n = session.revoke_others().await?;
    session
        .flash(Level::Success, format!("Signed out {n} other session(s)."))
        .await?;
    Ok(Redirect::to("/"))
}

fn render_flashes(flashes: &[FlashMessage]) -> String {
    flashes
        .iter()
        .map(|flash| {
            format!(
                "<p class=\"flash {}\">{}</p>",
                flash.level.as_str(),
                escape(&flash.text)
            )
        })
        .collect()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · sessionware demo</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
h1 {{ margin-bottom: .5rem; }} label {{ display: block; margin: .5rem 0; }} label.inline {{ display: inline; }}
input[name=user], input[name=password] {{ display: block; padding: .3rem; width: 16rem; }}
button {{ padding: .3rem .8rem; margin: .2rem .2rem .2rem 0; }} form.inline {{ display: inline; }}
.flash {{ padding: .5rem .8rem; border-radius: 4px; }} .success {{ background: #e3f6e3; }}
.info {{ background: #e6f0fa; }} .warning {{ background: #fdf3d8; }} .error {{ background: #fbe3e3; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .2rem .8rem .2rem 0; text-align: left; }}
.hint, #deadlines {{ color: #555; font-size: .9rem; }}
</style></head><body>{body}</body></html>"#
    ))
}

/// A short name for a `User-Agent`.
fn browser_name(agent: &str) -> &'static str {
    if agent.contains("HeadlessChrome") {
        "Headless Chrome"
    } else if agent.contains("Firefox") {
        "Firefox"
    } else if agent.contains("Edg/") {
        "Edge"
    } else if agent.contains("Chrome") {
        "Chrome"
    } else if agent.contains("Safari") {
        "Safari"
    } else if agent.contains("curl") {
        "curl"
    } else {
        "a browser"
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human(duration: Duration) -> String {
    let minutes = duration.as_secs() / 60;
    if minutes >= 60 {
        format!("{} h", minutes / 60)
    } else {
        format!("{minutes} min")
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn clock(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}
