//! HTTP-level tests of the session layer through a real axum `Router`.

mod app_kit;
mod apps;
mod auth;
#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod config;
mod cookies;
mod ended;
mod events;
mod expiry;
mod faults;
mod hardening;
mod lifecycle;
mod principal;
mod security;
mod support;
mod transport;
mod update;
