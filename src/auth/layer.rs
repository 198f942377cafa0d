//! [`RequireLogin`]: configuration and the tower [`Layer`].

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::RequireLoginService;

/// Lets only requests whose session is logged in reach the inner service; the others get a
/// `401`, or a `303` to the login page. See the [module docs](crate::auth).
#[derive(Clone, Debug)]
pub struct RequireLogin {
    pub(super) config: Arc<Config>,
}

/// What a [`RequireLogin`] checks and answers.
#[derive(Debug)]
pub(super) struct Config {
    /// Where to send the user (`None`: answer `401`).
    pub(super) login_path: Option<String>,
    /// How recent the login must be, if at all.
    pub(super) within: Option<Duration>,
}

impl RequireLogin {
    /// Answers a request without a logged-in session with `401 Unauthorized`: for APIs.
    pub fn new() -> Self {
        Self::with(Config {
            login_path: None,
            within: None,
        })
    }

    /// Answers a request without a logged-in session with `303 See Other` to `login_path`,
    /// with the original path and query in a `next` parameter (`/login?next=%2Faccount`),
    /// for the login form to return to (through [`safe_next`](super::safe_next)): for pages.
    pub fn redirect_to(login_path: impl Into<String>) -> Self {
        Self::with(Config {
            login_path: Some(login_path.into()),
            within: None,
        })
    }

    /// Also requires the login to be recent: logged in or confirmed
    /// ([`Session::confirm_login`](crate::Session::confirm_login)) within `recent` (a "sudo
    /// mode" for a password change, say). A staler login gets the same answer as no login,
    /// the original target kept; a login whose time is unknown counts as stale.
    #[must_use]
    pub fn within(self, recent: Duration) -> Self {
        Self::with(Config {
            login_path: self.config.login_path.clone(),
            within: Some(recent),
        })
    }

    fn with(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl Default for RequireLogin {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RequireLogin {
    type Service = RequireLoginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireLoginService::new(inner, Arc::clone(&self.config))
    }
}
