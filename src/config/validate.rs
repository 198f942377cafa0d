//! Checking the layer's configuration before it serves a request.

use super::options::Config;
use crate::expiry::Expiry;
use cookie::SameSite;

/// A [`SessionLayer`](crate::SessionLayer) setting that would make the cookie unsafe or
/// unusable.
///
/// The layer checks its configuration when it is applied to a router (at start-up) and panics
/// with a message that starts `Invalid session configuration:` followed by this error; call
/// [`SessionLayer::validate`](crate::SessionLayer::validate) to get it as a `Result` instead
/// (for example in a test, or to report it your own way).
///
/// ```
/// use sessionware::{ConfigError, MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::default())
///     .with_cookie_name("__Host-id")
///     .with_domain("example.com");
/// assert!(matches!(layer.validate(), Err(ConfigError::HostPrefix(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or has a character RFC 6265 does not allow in a name (controls,
    /// spaces, separators such as `;`, `=`, `,`, quotes).
    #[error("cookie name {0:?} is empty or has a character not allowed in a cookie name")]
    CookieName(String),
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`; browsers drop it
    /// otherwise.
    #[error("a `__Host-` cookie requires Secure, Path=/ and no Domain: {0}")]
    HostPrefix(&'static str),
    /// A `__Secure-` cookie must be `Secure`; browsers drop it otherwise.
    #[error("a `__Secure-` cookie requires Secure (`with_secure(true)`)")]
    SecurePrefix,
    /// Browsers reject `SameSite=None` without `Secure`.
    #[error("SameSite=None requires Secure (`with_secure(true)`)")]
    SameSiteNone,
    /// The path does not start with `/`, or has a `;` or a control character.
    #[error("cookie path {0:?} must start with `/` and have no `;` or control characters")]
    Path(String),
    /// The domain is empty, or has a `;`, a space or a control character.
    #[error("cookie domain {0:?} is empty or has a `;`, a space or a control character")]
    Domain(String),
    /// A timeout of zero would end every session at once.
    #[error("the {0} must be longer than zero")]
    ZeroTimeout(&'static str),
    /// The maximum session size is zero.
    #[error("the maximum session size must be larger than zero")]
    ZeroMaxSize,
}

/// RFC 6265 `token`: visible ASCII except separators.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !br#"()<>@,;:\"/[]?={}"#.contains(&b))
}

fn is_attribute_value(value: &str) -> bool {
    value.bytes().all(|b| !b.is_ascii_control() && b != b';')
}

/// Whether `name` starts with a cookie prefix. Browsers match the prefixes case-insensitively
/// (RFC 6265bis), so `__host-id` gets the same rules from them as `__Host-id`.
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    let name = &config.cookie_name;
    if !is_token(name) {
        return Err(ConfigError::CookieName(name.clone()));
    }
    if !config.path.starts_with('/') || !is_attribute_value(&config.path) {
        return Err(ConfigError::Path(config.path.clone()));
    }
    if let Some(domain) = &config.domain {
        if domain.is_empty() || domain.contains(' ') || !is_attribute_value(domain) {
            return Err(ConfigError::Domain(domain.clone()));
        }
    }
    if has_prefix(name, "__Host-") {
        if !config.secure {
            return Err(ConfigError::HostPrefix("it is not Secure"));
        }
        if config.path != "/" {
            return Err(ConfigError::HostPrefix("its path is not `/`"));
        }
        if config.domain.is_some() {
            return Err(ConfigError::HostPrefix("it has a Domain"));
        }
    }
    if has_prefix(name, "__Secure-") && !config.secure {
        return Err(ConfigError::SecurePrefix);
    }
    if config.same_site == SameSite::None && !config.secure {
        return Err(ConfigError::SameSiteNone);
    }
    if config.deadlines.absolute.is_zero() {
        return Err(ConfigError::ZeroTimeout("absolute timeout"));
    }
    if config.deadlines.max_absolute.is_zero() {
        return Err(ConfigError::ZeroTimeout("maximum absolute timeout"));
    }
    if config.deadlines.session_end_idle.is_zero() {
        return Err(ConfigError::ZeroTimeout("session-end idle timeout"));
    }
    if matches!(config.expiry, Expiry::OnInactivity(d) if d.is_zero()) {
        return Err(ConfigError::ZeroTimeout("inactivity timeout"));
    }
    if config.max_size == Some(0) {
        return Err(ConfigError::ZeroMaxSize);
    }
    Ok(())
}
