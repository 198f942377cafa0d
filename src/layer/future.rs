//! [`ResponseFuture`]: runs the handler, then saves the session.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum_core::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::config::Settings;
use crate::error::internal_server_error;
use crate::error::BoxError;
use crate::id::transport::{encode, set_cookie};
use crate::session::{CookieAction, Outcome, Plan, Session};

type Saving = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

pin_project! {
    /// Response future of [`SessionService`](super::SessionService).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Handler {
            #[pin]
            future: F,
            session: Option<Session>,
        },
        Saving {
            future: Saving,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, session: Session) -> Self {
        Self {
            state: State::Handler {
                future,
                session: Some(session),
            },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Handler { future, session } => {
                    let mut response = ready!(future.poll(cx))?.map(Body::new);
                    let Some(session) = session.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    // A handler that failed (5xx) saves no data: its changes may be half done.
                    // Its `destroy` still happens, so a logout can never fail open.
                    let outcome = Outcome::of(response.status());
                    let plan = session.plan_now(outcome);
                    session.finish(outcome);
                    // The fast path: a handler that never touched the session, or only read it
                    // inside the touch window, costs no store call and no cookie. A response
                    // built from the session still varies with the cookie that named it.
                    if plan == Some(Plan::Nothing) && !session.owes_cookie() {
                        if session.was_loaded() {
                            vary_on_id(response.headers_mut(), session.settings());
                        }
                        return Poll::Ready(Ok(response));
                    }
                    let saving = Box::pin(save(session, plan, outcome, response));
                    self.as_mut()
                        .project()
                        .state
                        .set(State::Saving { future: saving });
                }
                StateProj::Saving { future } => return future.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

/// Saves the session and writes the cookie, or replaces the response if the store failed.
async fn save(
    session: Session,
    plan: Option<Plan>,
    outcome: Outcome,
    mut response: Response<Body>,
) -> Response<Body> {
    let settings = session.settings();
    let action = match session.commit(plan.as_ref(), outcome).await {
        Ok(action) => action,
        Err(error) => {
            tracing::error!(%error, "saving the session failed; the response is replaced");
            let mut replacement = match &settings.error_handler {
                Some(handler) => handler(&error),
                None => internal_server_error(),
            };
            // Built from the session like the response it replaces: a shared cache must not
            // serve it for another user's cookie either.
            vary_on_id(replacement.headers_mut(), settings);
            return replacement;
        }
    };
    let (cookie, header_value) = match action {
        CookieAction::Keep => {
            vary_on_id(response.headers_mut(), settings);
            return response;
        }
        CookieAction::Set { id, max_age } => {
            let value = encode(settings, &id);
            // Only an app that sends the id in a header too needs it as a header value.
            let header_value = match settings.header {
                Some(_) => HeaderValue::from_str(&value).ok(),
                None => None,
            };
            (set_cookie(settings, &value, max_age), header_value)
        }
        CookieAction::Remove => (
            settings.removal_cookie.clone(),
            Some(HeaderValue::from_static("")),
        ),
    };
    let headers = response.headers_mut();
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    if let (Some(name), Some(value)) = (&settings.header, header_value) {
        headers.insert(name.clone(), value);
    }
    keep_out_of_shared_caches(headers, settings);
    response
}

/// A response that sets or clears a session id must never be stored by a shared cache and
/// replayed to another user (OWASP). `Cache-Control: no-store` unless the handler's own policy
/// already keeps it out of shared caches (`private` or `no-store`); a policy that would let a
/// shared cache store it (`public`, `max-age`, `s-maxage`, `no-cache`, ...) is replaced, with a
/// warning, because a cached `Set-Cookie` hands one user's session to the next.
fn keep_out_of_shared_caches(headers: &mut HeaderMap, settings: &Settings) {
    // One lookup through the entry, where reading and then inserting would hash the name twice.
    match headers.entry(header::CACHE_CONTROL) {
        header::Entry::Vacant(vacant) => {
            vacant.insert(HeaderValue::from_static("no-store"));
        }
        header::Entry::Occupied(mut policy) => {
            if !policy.iter().any(is_private) {
                tracing::warn!(
                    cache_control = ?policy.get(),
                    "a response that sets or clears the session cookie had a Cache-Control \
                     policy that lets shared caches store it; replaced with `no-store`"
                );
                policy.insert(HeaderValue::from_static("no-store"));
            }
        }
    }
    vary_on_id(headers, settings);
}

/// Whether a `Cache-Control` value keeps the response out of shared caches.
fn is_private(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',').any(|directive| {
            let directive = directive.trim();
            directive.eq_ignore_ascii_case("private") || directive.eq_ignore_ascii_case("no-store")
        })
    })
}

/// `Vary` on what carries the id: the cookie, and the id header if configured. Every response
/// whose handler loaded the session gets it, so a shared cache never serves one user's page to
/// another.
fn vary_on_id(headers: &mut HeaderMap, settings: &Settings) {
    vary_on(headers, &header::COOKIE);
    if let Some(name) = &settings.header {
        vary_on(headers, name);
    }
}

/// Adds `name` to `Vary` unless it (or `*`) is already listed.
fn vary_on(headers: &mut HeaderMap, name: &HeaderName) {
    // A header name is always a valid header value; for `cookie` this allocates nothing.
    let value = || HeaderValue::from(name.clone());
    match headers.entry(header::VARY) {
        header::Entry::Vacant(vacant) => {
            vacant.insert(value());
        }
        header::Entry::Occupied(mut listed) => {
            if !listed.iter().any(|item| lists(item, name)) {
                listed.append(value());
            }
        }
    }
}

/// Whether a `Vary` value lists `name` (or `*`).
fn lists(value: &HeaderValue, name: &HeaderName) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',').any(|item| {
            let item = item.trim();
            item == "*" || item.eq_ignore_ascii_case(name.as_str())
        })
    })
}
