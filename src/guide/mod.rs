//! The guide: how to use sessionware, chapter by chapter, each with examples that compile and
//! run as tests.
//!
//! The API reference (the rest of these docs) says what each item does; the guide says which
//! items to reach for, and in what order. Read the chapters in order the first time.
//!
//! 1. [Getting started](getting_started): the layer, the [`Session`](crate::Session)
//!    extractor, reading and writing values, the cookie defaults, expiry, signed and private
//!    cookies.
//! 2. [Logins and devices](logins): `log_in`, a user's devices, signing out elsewhere or
//!    everywhere, a cap on sessions per user, logout, "keep me signed in".
//! 3. [Same-key updates and saving from WebSockets](concurrency): what concurrent requests
//!    do to one session, `update`, and a session used after the response.
//! 4. [Flash messages and CSRF](flash_and_csrf): messages for the next page, and forms that
//!    only your pages can submit.
//! 5. [Stores and a production checklist](production): which store, keys and their
//!    rotation, purge tasks, PostgreSQL autovacuum, Redis memory and cluster, size caps.
//! 6. [Testing your app](testing): the test kit (feature `test-kit`), requests that start
//!    logged in.
//! 7. [Migrating from tower-sessions (and axum-login)](migrating): the API side by side, and
//!    what behaves differently.
//!
//! For contributors: [how a request flows through the code](contributing), one line per
//! source file.

#[doc = include_str!("getting_started.md")]
pub mod getting_started {}

#[doc = include_str!("logins.md")]
pub mod logins {}

#[doc = include_str!("concurrency.md")]
pub mod concurrency {}

#[doc = include_str!("flash_and_csrf.md")]
pub mod flash_and_csrf {}

#[doc = include_str!("production.md")]
pub mod production {}

// The chapter's examples use the test kit: without the feature they could not compile, so
// the chapter says where to find it instead (docs.rs builds with every feature).
#[cfg_attr(feature = "test-kit", doc = include_str!("testing.md"))]
#[cfg_attr(
    not(feature = "test-kit"),
    doc = "Testing your app with the test kit: this chapter needs the `test-kit` feature \
           (build the docs with `--features test-kit`, or read it on docs.rs)."
)]
pub mod testing {}

#[doc = include_str!("migrating.md")]
pub mod migrating {}

#[doc = include_str!("contributing.md")]
pub mod contributing {}
