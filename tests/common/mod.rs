//! Helpers shared by the test crates and the `layer` bench: requests through a router and what
//! a test looks at in the reply ([`request`]), the handlers and routes most suites serve
//! ([`app`]), and the servers' addresses from the environment ([`env`]).
//!
//! Included with `mod common;` (single-file tests), `#[path = "../common/mod.rs"] mod common;`
//! (the directory crates) or `#[path = "../tests/common/mod.rs"] mod common;` (benches).

// Each test crate (and the bench) compiles this module on its own and uses a part of it: what
// one crate leaves unused, items and the re-exports below alike, another uses.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod env;
pub mod logs;
pub mod request;

pub use app::{app, flash_routes, read, routes, write};
pub use env::{env_url, env_var};
pub use logs::{capture_logs, Captured};
pub use request::{send, send_ok, send_request, send_within, Reply};

/// `at` in Unix milliseconds, as stores write it in their rows and keys: for tests that read
/// or write a backend directly.
pub fn unix_ms(at: std::time::SystemTime) -> i64 {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
