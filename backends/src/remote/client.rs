//! Sending one request: [`RemoteClient`] holds the pooled HTTP client and fixed headers, and
//! [`RemoteClient::post_json`] runs the attempt loop (first-byte and total timeouts, back-off
//! with jitter, `Retry-After`, `x-should-retry`) until response headers with a success status
//! arrive. What happens to the body afterwards lives in `body.rs`.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use tokio::time::Instant as TokioInstant;

use super::body::{read_capped, Accepted};
use super::errors::{chain, retry_after, status_error, RETRYABLE_STATUSES};
use super::key::{looks_secret, ApiKey, AuthStyle};
use super::{RemoteConfig, Timeouts};
use crate::{BackendError, Result, TimeoutPhase};

/// At most this much of an upstream error body is kept in an error.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The HTTP side of one remote backend: a pooled client, the key, the fixed headers.
pub(crate) struct RemoteClient {
    http: reqwest::Client,
    config: RemoteConfig,
    key: Option<ApiKey>,
    headers: HeaderMap,
    /// `base_url` + path, parsed once per path ([`RemoteClient::parsed_url`]).
    urls: std::sync::RwLock<Vec<(String, reqwest::Url)>>,
}

impl fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteClient")
            .field("config", &self.config)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    /// Validate the configuration, read the key and build the HTTP client. `fixed_headers`
    /// are the protocol's own (e.g. `anthropic-version`); configured headers may override them.
    pub(crate) fn new(
        config: RemoteConfig,
        auth: AuthStyle,
        fixed_headers: &[(&'static str, &'static str)],
    ) -> Result<Self> {
        let base = config.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BackendError::Config(format!(
                "base_url {base:?} must start with http:// or https://"
            )));
        }
        reqwest::Url::parse(base)
            .map_err(|e| BackendError::Config(format!("base_url {base:?} is not a URL: {e}")))?;
        if config.model.trim().is_empty() {
            return Err(BackendError::Config(format!(
                "remote backend at {base} has no model configured"
            )));
        }
        if config.retry.max_attempts == 0 {
            return Err(BackendError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        let key = match &config.api_key_env {
            Some(var) => Some(ApiKey::from_env(var)?),
            None => None,
        };

        let mut headers = HeaderMap::new();
        for (name, value) in fixed_headers {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        for (name, value) in &config.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                BackendError::Config(format!("header name {name:?} is not a valid HTTP header"))
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                BackendError::Config(format!(
                    "the value of header {name} is not a valid header value"
                ))
            })?;
            if looks_secret(header.as_str()) {
                value.set_sensitive(true);
            }
            headers.insert(header, value);
        }
        if let Some(key) = &key {
            let (name, value) = match auth {
                AuthStyle::Bearer => (
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", key.expose()),
                ),
                AuthStyle::Header(name) => {
                    (HeaderName::from_static(name), key.expose().to_string())
                }
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                BackendError::Config(format!(
                    "the API key in {} contains characters not allowed in an HTTP header",
                    config.api_key_env.as_deref().unwrap_or("?")
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }

        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .tcp_nodelay(true)
            .user_agent(concat!("triage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                BackendError::Config(format!("cannot build HTTP client: {}", chain(&e)))
            })?;
        Ok(Self {
            http,
            config,
            key,
            headers,
            urls: std::sync::RwLock::new(Vec::new()),
        })
    }

    pub(crate) fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// `base_url` joined with `path` (which starts with `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.config.base_url.trim().trim_end_matches('/'),
            path
        )
    }

    /// `base_url` joined with `path`, parsed once per path and kept: parsing a URL (IDNA
    /// included) on every request was a visible share of the gateway's time per request.
    fn parsed_url(&self, path: &str) -> Result<reqwest::Url> {
        let cached = self
            .urls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, url)| url.clone());
        if let Some(url) = cached {
            return Ok(url);
        }
        let text = self.url(path);
        let url = reqwest::Url::parse(&text).map_err(|e| {
            BackendError::Config(format!("base_url + {path} is not a URL ({text}): {e}"))
        })?;
        self.urls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((path.to_string(), url.clone()));
        Ok(url)
    }

    /// POST a JSON body to `path`, retrying as [`RetryPolicy`] says, until response headers
    /// with a success status arrive.
    pub(crate) async fn post_json(&self, path: &str, body: Bytes) -> Result<Accepted> {
        let url = self.parsed_url(path)?;
        let timeouts = self.config.timeouts;
        let policy = self.config.retry;
        let started = Instant::now();
        let deadline = TokioInstant::from_std(started) + timeouts.total;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let request = self
                .http
                .post(url.clone())
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            let first_byte_limit = TokioInstant::now() + timeouts.first_byte;
            let (limit, phase, after) = if deadline < first_byte_limit {
                (deadline, TimeoutPhase::Total, timeouts.total)
            } else {
                (
                    first_byte_limit,
                    TimeoutPhase::FirstByte,
                    timeouts.first_byte,
                )
            };
            tracing::debug!(url = %url, attempt, "sending request upstream");
            let failure = match tokio::time::timeout_at(limit, request.send()).await {
                // The request reached the upstream, which may be working (and billing) on it:
                // not retried; the router's fallback is the better answer to a hang.
                Err(_) => {
                    tracing::debug!(url = %url, attempt, %phase, "upstream timed out");
                    return Err(BackendError::Timeout { phase, after });
                }
                Ok(Err(e)) => self.transport_failure(&e, timeouts),
                Ok(Ok(response)) => {
                    let first_byte = Instant::now();
                    let status = response.status();
                    if status.is_success() {
                        tracing::debug!(url = %url, attempt, status = status.as_u16(), "upstream accepted");
                        return Ok(Accepted {
                            response,
                            started,
                            first_byte,
                            deadline,
                            total: timeouts.total,
                            idle: timeouts.idle,
                            key: self.key.clone(),
                        });
                    }
                    self.status_failure(response, status, deadline, timeouts)
                        .await
                }
            };
            tracing::debug!(
                url = %url,
                attempt,
                error = %failure.error,
                retryable = failure.retryable,
                "upstream attempt failed"
            );
            if !failure.retryable || attempt >= policy.max_attempts {
                return Err(failure.error);
            }
            let delay = match failure.retry_after {
                Some(wait) if wait > policy.max_delay => return Err(failure.error),
                Some(wait) => wait,
                None => policy.backoff(attempt - 1),
            };
            if TokioInstant::now() + delay >= deadline {
                return Err(failure.error);
            }
            tracing::debug!(url = %url, attempt, delay_ms = delay.as_millis() as u64, "retrying after back-off");
            tokio::time::sleep(delay).await;
        }
    }

    fn transport_failure(&self, e: &reqwest::Error, timeouts: Timeouts) -> Failure {
        let message = self.redact(&chain(e));
        if e.is_connect() {
            // Nothing reached the upstream: always safe to try again.
            let error = if e.is_timeout() {
                BackendError::Timeout {
                    phase: TimeoutPhase::Connect,
                    after: timeouts.connect,
                }
            } else {
                BackendError::Connection(message)
            };
            Failure {
                error,
                retryable: true,
                retry_after: None,
            }
        } else {
            Failure {
                error: BackendError::Connection(message),
                retryable: false,
                retry_after: None,
            }
        }
    }

    async fn status_failure(
        &self,
        response: reqwest::Response,
        status: StatusCode,
        deadline: TokioInstant,
        timeouts: Timeouts,
    ) -> Failure {
        let headers = response.headers();
        let retry_after = retry_after(headers, SystemTime::now());
        let should_retry = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().eq_ignore_ascii_case("true"));
        let retryable = should_retry.unwrap_or(RETRYABLE_STATUSES.contains(&status.as_u16()));
        let body = match read_capped(response, deadline, timeouts, MAX_ERROR_BODY).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(error body unreadable: {e})"),
        };
        Failure {
            error: status_error(status.as_u16(), retry_after, self.redact(&body)),
            retryable,
            retry_after,
        }
    }

    fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.redact(text),
            None => text.to_string(),
        }
    }
}

struct Failure {
    error: BackendError,
    retryable: bool,
    retry_after: Option<Duration>,
}
