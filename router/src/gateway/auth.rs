//! Optional bearer keys. With no keys configured the gateway is open; with keys, every `/v1/*`
//! request needs `Authorization: Bearer <key>`. Keys are parsed and compared (in constant time,
//! against every key) by [`ApiKeys`]; only the tenant name or hashed key label ever reaches
//! logs, the ledger or events.

use axum::http::{header, HeaderMap};

pub use crate::config::ApiKeys;

use super::error::ApiError;

/// The configured keys, if any.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    keys: Option<ApiKeys>,
}

impl Auth {
    pub fn new(keys: Option<ApiKeys>) -> Self {
        Self { keys }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_none()
    }

    /// The tenant of the key the request carries; `Ok(None)` when the gateway is open.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
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
        keys.tenant_for(presented)
            .map(|t| Some(t.to_string()))
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
        let auth = Auth::new(Some(ApiKeys::parse("team-a:sk-aaa, sk-bbb").unwrap()));
        assert_eq!(
            auth.check(&headers("Bearer sk-aaa")).unwrap(),
            Some("team-a".into())
        );
        let label = auth.check(&headers("bearer sk-bbb")).unwrap().unwrap();
        assert!(label.starts_with("key-") && !label.contains("sk-bbb"));
        assert_eq!(auth.check(&headers("Bearer nope")).unwrap_err().status, 401);
        assert_eq!(auth.check(&headers("sk-aaa")).unwrap_err().status, 401);
        assert_eq!(auth.check(&HeaderMap::new()).unwrap_err().status, 401);
        assert!(Auth::default().check(&HeaderMap::new()).unwrap().is_none());
    }
}
