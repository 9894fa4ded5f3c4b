//! The configuration error of Rill's server binaries: each mistake names
//! the flag and the environment variable that set it.

use thiserror::Error;

/// A configuration mistake, phrased for the person who made it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{flag} ({env}): {reason}")]
    Invalid {
        flag: &'static str,
        env: &'static str,
        reason: String,
    },
}

/// A [`ConfigError::Invalid`] for `flag` (set by `env`).
pub fn invalid(flag: &'static str, env: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        env,
        reason: reason.into(),
    }
}
