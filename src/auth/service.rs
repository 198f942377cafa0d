//! [`RequireLoginService`]: the check itself.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum_core::response::{IntoResponse, Response};
use http::{header, HeaderValue, Request, StatusCode};
use tower_service::Service;

use super::layer::Config;
use super::ResponseFuture;
use crate::error::Error;
use crate::session::{Session, SessionRejection};

/// The service [`RequireLogin`](super::RequireLogin) wraps around the inner one. See the
/// [module docs](crate::auth).
#[derive(Clone, Debug)]
pub struct RequireLoginService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RequireLoginService<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }
}

impl<S, B> Service<Request<B>> for RequireLoginService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        // Taken out before the check, which awaits: the request (its body) need not be `Sync`.
        let session = request.extensions().get::<Session>().cloned();
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |target| target.as_str().to_owned());
        ResponseFuture::new(async move {
            match check(session, &target, &config).await {
                Ok(()) => inner.call(request).await,
                Err(refused) => Ok(refused),
            }
        })
    }
}

/// Whether the request for `target` may pass: `Err` with the response for it otherwise.
async fn check(session: Option<Session>, target: &str, config: &Config) -> Result<(), Response> {
    let Some(session) = session else {
        return Err(SessionRejection.into_response());
    };
    // One load at most (none without a cookie), shared with the handler; nothing is written.
    let logged_in = match config.within {
        None => session.principal().await.map(|p| p.is_some()),
        Some(recent) => session.authenticated_at().await.map(|at| {
            at.and_then(|at| SystemTime::now().duration_since(at).ok())
                .is_some_and(|age| age <= recent)
        }),
    };
    match logged_in {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(target, config)),
        Err(error) => Err(Error::into_response(error)),
    }
}

/// The answer to a request without a (recent enough) login.
fn refuse(target: &str, config: &Config) -> Response {
    let Some(login_path) = &config.login_path else {
        let body = match config.within {
            None => "Unauthorized: this resource needs a logged-in session. Log in first.",
            Some(_) => {
                "Unauthorized: this resource needs a recent login. Confirm your login (enter \
                 your password again) first."
            }
        };
        return (StatusCode::UNAUTHORIZED, body).into_response();
    };
    let separator = if login_path.contains('?') { '&' } else { '?' };
    let next: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let location = format!("{login_path}{separator}next={next}");
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        // Only a login path with characters a header cannot carry gets here: a configuration
        // mistake, named in the body.
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "RequireLogin::redirect_to was given a path that cannot be a Location header",
        )
            .into_response(),
    }
}
