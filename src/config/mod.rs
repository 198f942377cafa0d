//! The layer's configuration, which the layer and every session build on: what the builder
//! methods edit ([`Config`](options::Config)), the checks it must pass before serving
//! ([`validate`]), and the settings an applied layer works with ([`Settings`]).

mod options;
mod settings;
mod validate;

pub(crate) use options::{Config, Protection};
pub(crate) use settings::Settings;
pub(crate) use validate::validate;
pub use validate::ConfigError;
