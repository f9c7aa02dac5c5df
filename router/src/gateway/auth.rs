//! Optional bearer keys. With no keys configured the gateway is open; with keys, every `/v1/*`
//! request needs `Authorization: Bearer <key>` (OpenAI's SDKs) or `x-api-key: <key>`
//! (Anthropic's; `Authorization` wins when both are sent). Keys are read from the environment variable
//! `triage.yaml` names (`server.api_keys_env`), parsed and compared (in constant time, against
//! every key) by [`ApiKeys`]; only the tenant name or hashed key label ever reaches logs, the
//! ledger or events.

use std::fmt;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::config::is_name_char;

/// Why the API keys could not be read. Never holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// An entry of the comma-separated list (1-based) has no key after its `tenant:`.
    #[error("entry {0} has an empty key")]
    EmptyKey(usize),
    /// The list holds no key at all.
    #[error("no keys")]
    NoKeys,
    /// `server.api_keys_env` names a variable that is not set.
    #[error("environment variable {0} (server.api_keys_env) is not set")]
    Unset(String),
    /// The variable is set but malformed.
    #[error("environment variable {var}: {source}")]
    InVariable {
        /// The variable's name.
        var: String,
        /// What is wrong with its value.
        source: Box<KeysError>,
    },
}

/// API keys read from the environment. Debug output never shows a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    entries: Vec<(String, String)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field(
                "tenants",
                &self.entries.iter().map(|(_, t)| t).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ApiKeys {
    /// Parse `key` or `tenant:key` entries separated by commas. A key without a tenant gets
    /// the tenant `key-<12 hex of its SHA-256>`, so ledgers never hold the key itself.
    pub fn parse(spec: &str) -> Result<ApiKeys, KeysError> {
        let mut entries = Vec::new();
        for (i, raw) in spec.split(',').enumerate() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (tenant, key) = match raw.split_once(':') {
                Some((t, k)) if !t.is_empty() && t.chars().all(is_name_char) => {
                    (t.to_string(), k.trim().to_string())
                }
                _ => (hashed_key_label(raw), raw.to_string()),
            };
            if key.is_empty() {
                return Err(KeysError::EmptyKey(i + 1));
            }
            entries.push((key, tenant));
        }
        if entries.is_empty() {
            return Err(KeysError::NoKeys);
        }
        Ok(ApiKeys { entries })
    }

    /// Read and parse the variable; the error never contains the value.
    pub fn from_env(var: &str) -> Result<ApiKeys, KeysError> {
        let value = std::env::var(var).map_err(|_| KeysError::Unset(var.to_string()))?;
        ApiKeys::parse(&value).map_err(|e| KeysError::InVariable {
            var: var.to_string(),
            source: Box::new(e),
        })
    }

    /// The tenant of a presented key, comparing against every key in constant time per byte.
    pub fn tenant_for(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (key, tenant) in &self.entries {
            if constant_time_eq(key.as_bytes(), presented.as_bytes()) {
                found = Some(tenant.as_str());
            }
        }
        found
    }

    /// Every tenant name (or hashed key label), one per key.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, t)| t.as_str())
    }
}

/// `key-` and the first 12 hex digits of the key's SHA-256: a stable, non-reversible label.
pub fn hashed_key_label(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
/// Hand-written (8 lines) rather than a crate: the gateway compares a handful of keys.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The header Anthropic's SDKs carry the key in (accepted wherever `Authorization` is).
pub const X_API_KEY: &str = "x-api-key";

/// The configured keys, if any, and the tenants whose keys see every tenant's requests.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    keys: Option<ApiKeys>,
    admins: Vec<String>,
}

/// Who may see a finished request's summary on `/v1/triage/events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// An open gateway (no keys) or an admin tenant's key: every request.
    All,
    /// A tenant's key: only the requests made with that tenant's keys.
    Tenant(String),
}

impl Viewer {
    /// Whether a request made by `tenant` (the summary's `key`) is visible.
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        match self {
            Viewer::All => true,
            Viewer::Tenant(t) => tenant == Some(t.as_str()),
        }
    }
}

impl Auth {
    /// Authentication with `keys`; `None` lets every request in.
    pub fn new(keys: Option<ApiKeys>) -> Self {
        Self {
            keys,
            admins: Vec::new(),
        }
    }

    /// The same, with `admins` as the tenants that see every tenant's requests.
    pub fn with_admins(mut self, admins: Vec<String>) -> Self {
        self.admins = admins;
        self
    }

    /// What the caller's key may see of other requests (after [`Auth::check`] let it in).
    pub fn viewer(&self, tenant: Option<&str>) -> Viewer {
        match tenant {
            Some(t) if !self.admins.iter().any(|a| a == t) => Viewer::Tenant(t.to_string()),
            _ => Viewer::All,
        }
    }

    /// Whether no keys are configured (every request is let in).
    pub fn is_open(&self) -> bool {
        self.keys.is_none()
    }

    /// The tenant of the key the request carries; `Ok(None)` when the gateway is open.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            // Anthropic's SDKs send the key as `x-api-key`.
            let Some(value) = headers.get(X_API_KEY) else {
                return Err(ApiError::unauthorized(
                    "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
                ));
            };
            let presented = value.to_str().map(str::trim).unwrap_or_default();
            return keys
                .tenant_for(presented)
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| ApiError::unauthorized("Incorrect API key provided"));
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
        let mut anthropic = HeaderMap::new();
        anthropic.insert(X_API_KEY, "sk-aaa".parse().unwrap());
        assert_eq!(auth.check(&anthropic).unwrap(), Some("team-a".into()));
        anthropic.insert(X_API_KEY, "sk-nope".parse().unwrap());
        assert_eq!(auth.check(&anthropic).unwrap_err().status, 401);
        assert!(Auth::default().check(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn tenants_see_their_own_requests_and_admins_see_all() {
        let auth = Auth::new(Some(ApiKeys::parse("a:sk-a,ops:sk-ops").unwrap()))
            .with_admins(vec!["ops".into()]);
        let a = auth.viewer(Some("a"));
        assert!(a.sees(Some("a")));
        assert!(!a.sees(Some("ops")) && !a.sees(None));
        assert_eq!(auth.viewer(Some("ops")), Viewer::All);
        assert_eq!(Auth::default().viewer(None), Viewer::All);
    }

    #[test]
    fn api_keys_parse_and_never_show_keys() {
        let keys = ApiKeys::parse("alice:sk-alice-1, sk-anon-2 ,bob:sk:with:colons").unwrap();
        assert_eq!(keys.tenant_for("sk-alice-1"), Some("alice"));
        assert_eq!(keys.tenant_for("sk:with:colons"), Some("bob"));
        let anon = keys.tenant_for("sk-anon-2").unwrap();
        assert!(anon.starts_with("key-") && anon.len() == 16, "{anon}");
        assert!(!anon.contains("anon"));
        assert_eq!(keys.tenant_for("sk-alice-"), None);
        assert_eq!(keys.tenant_for(""), None);
        let debug = format!("{keys:?}");
        assert!(!debug.contains("sk-"), "{debug}");
        assert!(ApiKeys::parse(" , ").is_err());
        assert!(ApiKeys::parse("alice:").is_err());
    }
}
