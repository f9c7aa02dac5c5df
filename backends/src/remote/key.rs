//! The API key and how it travels: read once from the environment, sent as the protocol's auth
//! header, and never printed. Isolated so that the one place holding the secret's value is
//! small enough to audit.

use std::fmt;

use crate::{BackendError, Result};

/// An API key. Its value is only reachable inside this crate (to build the auth header);
/// `Debug` and `Display` print `[redacted]`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Read the key from the environment variable `var`, once.
    pub fn from_env(var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Ok(Self(value.trim().to_string())),
            Ok(_) => Err(BackendError::Config(format!(
                "environment variable {var} (the API key) is empty"
            ))),
            Err(std::env::VarError::NotPresent) => Err(BackendError::Config(format!(
                "environment variable {var} (the API key) is not set"
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(BackendError::Config(format!(
                "environment variable {var} (the API key) is not valid UTF-8"
            ))),
        }
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// Replace every occurrence of the key in `text` (an upstream error body may echo it).
    pub(super) fn redact(&self, text: &str) -> String {
        text.replace(self.expose(), "[redacted]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How a protocol sends its key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI and compatibles).
    Bearer,
    /// The key as the whole value of this header (Anthropic's `x-api-key`).
    Header(&'static str),
}

/// Header names whose values are credentials.
pub(super) fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || name.contains("api-key")
        || name.contains("token")
        || name.contains("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_is_redacted_in_debug_and_display() {
        let key = ApiKey("sk-test-very-secret".into());
        assert!(!format!("{key:?}").contains("very-secret"));
        assert!(!format!("{key}").contains("very-secret"));
        assert_eq!(
            key.redact("bad key sk-test-very-secret!"),
            "bad key [redacted]!"
        );
    }
}
