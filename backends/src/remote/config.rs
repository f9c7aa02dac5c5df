//! What a remote backend is configured with: where to send ([`RemoteConfig`]), how long each
//! phase may take ([`Timeouts`]), when to try again ([`RetryPolicy`]) and which triage
//! extensions the upstream understands ([`Extensions`]). Kept apart from the HTTP code so the
//! router's config loader and the harness can read these plain types without the client.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How long each phase of a remote call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending the request to the response headers (includes connecting).
    pub first_byte: Duration,
    /// The longest gap between two chunks of the response body.
    pub idle: Duration,
    /// The whole call, every attempt and back-off included, until the last byte.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(600),
        }
    }
}

/// When and how often a failed call is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// The back-off cap of the first retry; it doubles for each further retry.
    pub base_delay: Duration,
    /// The largest back-off; an upstream asking (`Retry-After`) for a longer wait than this is
    /// not waited for: the error goes to the caller at once, so the router can spill instead.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The largest back-off before retry number `retry` (0 = the first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// "Full jitter" back-off: uniform in `[0, backoff_cap(retry)]`, so clients that failed
    /// together do not retry together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Where a remote backend sends requests and how.
#[derive(Clone, PartialEq)]
pub struct RemoteConfig {
    /// The API root, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com/v1`.
    pub base_url: String,
    /// The upstream model id; it replaces whatever `model` the client sent.
    pub model: String,
    /// The name of the environment variable holding the API key (`None`: no auth header,
    /// e.g. a local llama-server).
    pub api_key_env: Option<String>,
    /// Extra headers sent with every request (e.g. `OpenAI-Organization`).
    pub headers: BTreeMap<String, String>,
    /// How long each phase of a call may take.
    pub timeouts: Timeouts,
    /// How often and after what back-off a failed attempt is retried.
    pub retry: RetryPolicy,
    /// Which triage request extensions the upstream understands; decides how `choices`
    /// travels (see [`Extensions`]).
    pub extensions: Extensions,
}

impl RemoteConfig {
    /// A configuration with default timeouts and retries, no key, no extra headers and no
    /// extensions (a plain upstream).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            headers: BTreeMap::new(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            extensions: Extensions::None,
        }
    }
}

/// The triage request extensions an upstream understands. A scenario item must be the same
/// request on every target, so a `choices` request reaches each kind of upstream in the form it
/// can honour (see [`crate::choice_schema`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Extensions {
    /// A plain API (OpenAI, vLLM, llama-server, Anthropic): `choices` is emulated with a strict
    /// JSON schema whose `answer` is an enum of the choices, and the answer is unwrapped.
    #[default]
    None,
    /// Another `triage serve`: `choices` travels as the top-level extension field its gateway
    /// reads, so its local engine scores the choices itself (OpenAI protocol only).
    Triage,
}

impl Extensions {
    /// The name used in configs and target specs (`none`, `triage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Extensions::None => "none",
            Extensions::Triage => "triage",
        }
    }
}

impl std::str::FromStr for Extensions {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "none" => Ok(Extensions::None),
            "triage" => Ok(Extensions::Triage),
            other => Err(format!(
                "unknown extensions {other:?} (none, or triage for another `triage serve`)"
            )),
        }
    }
}

/// Header values may carry credentials (a proxy's `Authorization`), so only names are shown.
impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("extensions", &self.extensions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(policy.backoff_cap(0), Duration::from_millis(100));
        assert_eq!(policy.backoff_cap(1), Duration::from_millis(200));
        assert_eq!(policy.backoff_cap(3), Duration::from_millis(800));
        assert_eq!(policy.backoff_cap(4), Duration::from_millis(1000));
        assert_eq!(policy.backoff_cap(40), Duration::from_millis(1000));
        let samples: Vec<Duration> = (0..200).map(|_| policy.backoff(2)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        // Jitter: not every sample is the same.
        assert!(samples.iter().any(|d| *d != samples[0]));
    }
}
