//! [`SessionService`]: the middleware itself.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;

use super::ResponseFuture;
use crate::config::Settings;
use crate::error::BoxError;
use crate::id::transport::Incoming;
use crate::session::Session;

/// The middleware [`SessionLayer`](crate::SessionLayer) adds. See the
/// [module docs](crate::layer).
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Only the raw header values are kept here; parsing, verification and the store load
        // wait until a handler actually uses the session.
        let incoming = Incoming::capture(req.headers(), &self.settings);
        let session = Session::new(Arc::clone(&self.settings), incoming);
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session)
    }
}
