//! `store:` and `store_failure:` — the shared store's address and what admission does while it
//! cannot be reached.

use std::fmt;

use super::RateLimits;

/// Budgets and rate limits: where they are kept and how admission behaves without them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedConfig {
    /// `store: redis://…`; `None`: everything stays in this process.
    pub store: Option<StoreUrl>,
    /// `store_failure:`.
    pub on_failure: StoreFailure,
    /// `rate_limits:`.
    pub rate_limits: RateLimits,
}

/// What admission does while the shared store is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreFailure {
    /// Spend nothing that cannot be counted: a request goes to a local backend when its route
    /// has one (its decision, a fallback, or `budgets.on_exhausted`), else 503.
    #[default]
    FailClosed,
    /// Admit as if no budget or rate limit applied; log and count every such admission.
    FailOpen,
}

/// A `redis://` (or `rediss://`) URL. It may hold a password, so it never prints whole:
/// `Display` and `Debug` show `redis://***@host:port/db`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// Check the scheme; the rest is the redis crate's to parse when connecting.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("redis://")
            .or_else(|| url.strip_prefix("rediss://"));
        match rest {
            Some(r) if !r.is_empty() => Ok(Self(url.to_string())),
            _ => Err(format!(
                "{} is not a Redis URL such as redis://127.0.0.1:6379/0",
                Self(url.to_string())
            )),
        }
    }

    /// The URL as written, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => write!(f, "{scheme}://***@{host}"),
                None => write!(f, "{}", self.0),
            },
            None => f.write_str("(not a URL)"),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url =
            StoreUrl::parse("redis://:hunter2@10.0.0.5:6379/1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.to_string(), "redis://***@10.0.0.5:6379/1");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "redis://:hunter2@10.0.0.5:6379/1");
        let bad = StoreUrl::parse("http://u:hunter2@x").unwrap_err();
        assert!(
            bad.contains("not a Redis URL") && !bad.contains("hunter2"),
            "{bad}"
        );
    }
}
