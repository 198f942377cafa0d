//! [`CsrfLayer`]: configuration and the tower [`Layer`].

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
#[derive(Clone, Debug)]
pub struct CsrfLayer {
    pub(super) field: String,
    pub(super) header: HeaderName,
    pub(super) max_form: usize,
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self {
            field: DEFAULT_FIELD.to_owned(),
            header: DEFAULT_HEADER,
            max_form: DEFAULT_MAX_FORM,
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
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService::new(inner, self.clone())
    }
}
