//! Configuration is checked when the layer is applied, with a clear message.

use std::time::Duration;

use sessionware::{ConfigError, Expiry, MemoryStore, SameSite, SessionLayer};

fn layer() -> SessionLayer {
    SessionLayer::new(MemoryStore::default())
}

#[test]
fn invalid_configurations_are_named() {
    type Expected = fn(&ConfigError) -> bool;
    let cases: Vec<(SessionLayer, Expected)> = vec![
        (layer().with_cookie_name(""), |e| {
            matches!(e, ConfigError::CookieName(_))
        }),
        (layer().with_cookie_name("a b"), |e| {
            matches!(e, ConfigError::CookieName(_))
        }),
        (layer().with_cookie_name("id;x"), |e| {
            matches!(e, ConfigError::CookieName(_))
        }),
        (layer().with_cookie_name("id=1"), |e| {
            matches!(e, ConfigError::CookieName(_))
        }),
        (layer().with_cookie_name("ünï"), |e| {
            matches!(e, ConfigError::CookieName(_))
        }),
        (
            layer().with_cookie_name("__Host-id").with_secure(false),
            |e| matches!(e, ConfigError::HostPrefix(_)),
        ),
        (
            layer().with_cookie_name("__Host-id").with_path("/app"),
            |e| matches!(e, ConfigError::HostPrefix(_)),
        ),
        (
            layer()
                .with_cookie_name("__Host-id")
                .with_domain("example.com"),
            |e| matches!(e, ConfigError::HostPrefix(_)),
        ),
        (
            layer().with_cookie_name("__Secure-id").with_secure(false),
            |e| *e == ConfigError::SecurePrefix,
        ),
        (
            layer().with_same_site(SameSite::None).with_secure(false),
            |e| *e == ConfigError::SameSiteNone,
        ),
        (layer().with_path("app"), |e| {
            matches!(e, ConfigError::Path(_))
        }),
        (layer().with_path("/a;b"), |e| {
            matches!(e, ConfigError::Path(_))
        }),
        (layer().with_domain(""), |e| {
            matches!(e, ConfigError::Domain(_))
        }),
        (layer().with_domain("a.com; x"), |e| {
            matches!(e, ConfigError::Domain(_))
        }),
        (layer().with_absolute_timeout(Duration::ZERO), |e| {
            matches!(e, ConfigError::ZeroTimeout(_))
        }),
        (
            layer().with_expiry(Expiry::OnInactivity(Duration::ZERO)),
            |e| matches!(e, ConfigError::ZeroTimeout(_)),
        ),
        (layer().with_max_session_size(0), |e| {
            *e == ConfigError::ZeroMaxSize
        }),
    ];
    for (i, (layer, expected)) in cases.into_iter().enumerate() {
        let error = layer
            .validate()
            .expect_err(&format!("case {i} passed validation"));
        assert!(expected(&error), "case {i}: unexpected {error:?}");
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn valid_configurations_pass() {
    for layer in [
        layer(),
        layer().with_cookie_name("__Host-id"),
        layer()
            .with_cookie_name("__Secure-id")
            .with_domain("example.com")
            .with_path("/app"),
        layer().with_same_site(SameSite::None),
        layer().with_secure(false).with_same_site(SameSite::Strict),
        layer().with_max_session_size(usize::MAX),
    ] {
        assert_eq!(layer.validate(), Ok(()));
    }
}

#[test]
#[should_panic(expected = "Invalid session configuration: a `__Host-` cookie requires Secure")]
fn applying_an_invalid_layer_panics_at_start_up() {
    let _router: axum::Router =
        crate::support::app(layer().with_cookie_name("__Host-id").with_secure(false));
}
