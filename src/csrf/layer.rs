//! [`CsrfLayer`]: configuration and the tower [`Layer`].

use std::fmt;
use std::sync::Arc;

use axum_core::response::Response;
use http::request::Parts;
use http::HeaderName;
use tower_layer::Layer;

use super::CsrfService;

/// The default form field that carries the token.
pub(super) const DEFAULT_FIELD: &str = "csrf_token";
/// The default header that carries the token.
pub(super) const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// The default largest form body read for the token.
pub(super) const DEFAULT_MAX_FORM: usize = 64 * 1024;

/// Refuses `POST`, `PUT`, `PATCH` and `DELETE` requests without a CSRF token of their session.
/// See the [module docs](crate::csrf).
#[derive(Clone)]
pub struct CsrfLayer {
    pub(super) field: String,
    pub(super) header: HeaderName,
    pub(super) max_form: usize,
    pub(super) check_header_clients: bool,
    pub(super) refusal: Option<Refusal>,
}

/// The app's response to a request refused for a missing or wrong token.
pub(super) type Refusal = Arc<dyn Fn(&Parts) -> Response + Send + Sync>;

impl fmt::Debug for CsrfLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfLayer")
            .field("field", &self.field)
            .field("header", &self.header)
            .field("max_form", &self.max_form)
            .field("check_header_clients", &self.check_header_clients)
            .field("refusal", &self.refusal.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self {
            field: DEFAULT_FIELD.to_owned(),
            header: DEFAULT_HEADER,
            max_form: DEFAULT_MAX_FORM,
            check_header_clients: false,
            refusal: None,
        }
    }
}

impl CsrfLayer {
    /// The token in the `csrf_token` form field or the `X-CSRF-Token` header; form bodies up to
    /// 64 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the token from the form field `name` (default `csrf_token`).
    #[must_use]
    pub fn with_field(mut self, name: impl Into<String>) -> Self {
        self.field = name.into();
        self
    }

    /// Reads the token from the header `name` (default `X-CSRF-Token`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Reads form bodies up to `bytes` for the token (default 64 KiB); a larger form without the
    /// header is refused with `413 Payload Too Large`.
    #[must_use]
    pub fn with_max_form_size(mut self, bytes: usize) -> Self {
        self.max_form = bytes;
        self
    }

    /// Also checks requests whose session id came in the id header
    /// ([`SessionLayer::with_header`](crate::SessionLayer::with_header)). By default they pass
    /// unchecked: a browser never adds that header by itself, so a forged cross-site request
    /// cannot carry the user's session that way (the attacker would have to know the id).
    #[must_use]
    pub fn check_header_clients(mut self, check: bool) -> Self {
        self.check_header_clients = check;
        self
    }

    /// Answers a request refused for a missing or wrong token with `refusal`'s response
    /// instead of the default `403` (a redirect to the login page for a tab left open past a
    /// log-out, say). It gets the request's head. Other refusals (no session layer, a form
    /// too large to read) keep their own status.
    ///
    /// ```
    /// use axum::response::{IntoResponse, Redirect};
    /// use sessionware::CsrfLayer;
    ///
    /// let csrf = CsrfLayer::new().with_refusal(|_request| Redirect::to("/login").into_response());
    /// # let _ = csrf;
    /// ```
    #[must_use]
    pub fn with_refusal(
        mut self,
        refusal: impl Fn(&Parts) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.refusal = Some(Arc::new(refusal));
        self
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService::new(inner, self.clone())
    }
}
