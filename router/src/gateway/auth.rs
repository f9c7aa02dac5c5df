//! Optional bearer keys. With no keys configured the gateway is open; with keys, every `/v1/*`
//! request needs `Authorization: Bearer <key>`. Keys are compared in constant time (`subtle`),
//! and only their names ever reach logs, the ledger or events.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// One accepted key: a name for the ledger and the secret itself (never printed).
#[derive(Clone)]
pub struct ApiKey {
    pub name: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ApiKey {
    pub fn new(name: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secret: secret.into().into_bytes(),
        }
    }

    /// Parse the value of the keys variable: comma-separated entries, each `name:secret` or a
    /// bare secret (named `key1`, `key2`, … by position). Empty entries are skipped.
    pub fn parse_list(value: &str) -> Vec<ApiKey> {
        value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
            .map(|(i, entry)| match entry.split_once(':') {
                Some((name, secret)) if !name.is_empty() && !secret.is_empty() => {
                    ApiKey::new(name.trim(), secret.trim())
                }
                _ => ApiKey::new(format!("key{}", i + 1), entry),
            })
            .collect()
    }
}

/// The configured keys.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    keys: Vec<ApiKey>,
}

impl Auth {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self { keys }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key the request carries; `Ok(None)` when the gateway is open.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "Missing API key: send `Authorization: Bearer <key>`",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .ok_or_else(|| {
                ApiError::unauthorized("Malformed Authorization header: expected `Bearer <key>`")
            })?;
        // Compare against every key, without stopping at the first match.
        let mut matched = None;
        for key in &self.keys {
            if bool::from(key.secret.as_slice().ct_eq(presented.as_bytes())) {
                matched = Some(key.name.clone());
            }
        }
        matched
            .map(Some)
            .ok_or_else(|| ApiError::unauthorized("Incorrect API key provided"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn keys_are_checked_and_named() {
        let auth = Auth::new(ApiKey::parse_list("team-a:sk-aaa, sk-bbb"));
        assert_eq!(
            auth.check(&headers("Bearer sk-aaa")).unwrap(),
            Some("team-a".into())
        );
        assert_eq!(
            auth.check(&headers("bearer sk-bbb")).unwrap(),
            Some("key2".into())
        );
        assert_eq!(auth.check(&headers("Bearer nope")).unwrap_err().status, 401);
        assert_eq!(auth.check(&HeaderMap::new()).unwrap_err().status, 401);
        assert!(Auth::default().check(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = ApiKey::new("a", "sk-secret");
        assert!(!format!("{k:?}").contains("sk-secret"));
    }
}
