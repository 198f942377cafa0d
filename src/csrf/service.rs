//! [`CsrfService`]: the check itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use super::CsrfLayer;
use crate::session::Session;

/// The middleware [`CsrfLayer`] applies. See the [module docs](crate::csrf).
#[derive(Clone, Debug)]
pub struct CsrfService<S> {
    inner: S,
    config: Arc<CsrfLayer>,
}

impl<S> CsrfService<S> {
    pub(super) fn new(inner: S, config: CsrfLayer) -> Self {
        Self {
            inner,
            config: Arc::new(config),
        }
    }
}

/// Boxed: the check may read the body before calling the inner service, and the layer guards
/// form posts, not the hot path of every route.
type BoxFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> Service<Request<Body>> for CsrfService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_safe(request.method()) {
            return Box::pin(self.inner.call(request));
        }
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            match check(request, &config).await {
                Ok(request) => inner.call(request).await,
                Err(refused) => Ok(refused),
            }
        })
    }
}

/// Methods that must not change state, so need no token.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request, with its body intact, if it carries a token of its session; else the response
/// that refuses it.
async fn check(request: Request<Body>, config: &CsrfLayer) -> Result<Request<Body>, Response> {
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CsrfLayer found no session: apply SessionLayer outside it, as in \
             `.layer(CsrfLayer::new()).layer(SessionLayer::new(store))`",
        ));
    };
    if session.id_in_header() && !config.check_header_clients {
        // Not a browser's ambient credential: see `CsrfLayer::check_header_clients`.
        return Ok(request);
    }
    let header = request
        .headers()
        .get(&config.header)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (request, token) = match header {
        Some(token) => (request, Some(token)),
        None if is_form(&request) => read_form_field(request, config).await?,
        None => (request, None),
    };
    let Some(token) = token else {
        return Err(refuse_token(
            request,
            config,
            &format!(
                "Forbidden: this request carries no CSRF token. Put the token of \
                 `Session::csrf_token` in the `{}` form field or the `{}` header.",
                config.field, config.header
            ),
        ));
    };
    match session.verify_csrf(&token).await {
        Ok(true) => Ok(request),
        Ok(false) => Err(refuse_token(
            request,
            config,
            "Forbidden: the CSRF token does not belong to this session (the page may be from \
             before a log-in, or from another site). Reload the page and try again.",
        )),
        Err(error) => Err(error.into_response()),
    }
}

fn is_form(request: &Request<Body>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(';').next().is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// Reads the form body (up to the limit) for the token field, and puts the body back.
async fn read_form_field(
    request: Request<Body>,
    config: &CsrfLayer,
) -> Result<(Request<Body>, Option<String>), Response> {
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, config.max_form).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "Payload Too Large: a form over {} bytes is not read for its CSRF token; \
                     send the token in the `{}` header",
                    config.max_form, config.header
                ),
            ));
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Bad Request: the form body could not be read",
            ))
        }
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(name, _)| *name == config.field)
        .map(|(_, value)| value.into_owned());
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// A missing or wrong token: the app's response if it set one, else `403` with `message`.
fn refuse_token(request: Request<Body>, config: &CsrfLayer, message: &str) -> Response {
    match &config.refusal {
        Some(refusal) => refusal(&request.into_parts().0),
        None => refuse(StatusCode::FORBIDDEN, message),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}
