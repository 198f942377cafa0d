//! HTTP-level tests of the session layer through a real axum `Router`.

mod concurrency;
mod cookies;
mod expiry;
mod faults;
mod lifecycle;
mod support;
mod transport;
