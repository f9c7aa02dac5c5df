//! Shared HTTP machinery for the remote backends ([`crate::openai`], [`crate::anthropic`]).
//!
//! It owns what both upstream protocols have in common, so each protocol module only
//! translates bodies and events:
//!
//! - configuration ([`RemoteConfig`], [`Timeouts`], [`RetryPolicy`]) and the API key
//!   ([`ApiKey`]), read once from the environment and redacted in every `Debug`/`Display`;
//! - sending one request with retries: exponential back-off with full jitter on connection
//!   failures and on 408/429/500/502/503/504/529, honouring `retry-after-ms` and `Retry-After`
//!   (seconds or HTTP date) and `x-should-retry`; a request whose response headers arrived with
//!   a success status is never retried, so a stream handed to the caller is never replayed;
//! - the four timeout phases (connect, first byte, idle gap between chunks, total deadline),
//!   each reported as [`BackendError::Timeout`] with its phase;
//! - turning a response body into [`ChatEvent`]s through the `sse-stream` decoder and a
//!   protocol-specific [`SseDecoder`]; a stream that ends before its terminal event is a
//!   [`BackendError::Protocol`] error, never a silent truncation.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use sse_stream::{Sse, SseByteStream};
use tokio::time::Instant as TokioInstant;

use crate::{BackendError, ChatEvent, EventStream, Result, TimeoutPhase};

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
#[derive(Clone)]
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
    pub timeouts: Timeouts,
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

    fn expose(&self) -> &str {
        &self.0
    }

    /// Replace every occurrence of the key in `text` (an upstream error body may echo it).
    fn redact(&self, text: &str) -> String {
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

/// Statuses worth another attempt: request timeout, rate limit, transient server errors and
/// Anthropic's 529 "overloaded".
pub const RETRYABLE_STATUSES: [u16; 7] = [408, 429, 500, 502, 503, 504, 529];

/// At most this much of an upstream error body is kept in an error.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The HTTP side of one remote backend: a pooled client, the key, the fixed headers.
pub(crate) struct RemoteClient {
    http: reqwest::Client,
    config: RemoteConfig,
    key: Option<ApiKey>,
    headers: HeaderMap,
}

impl fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteClient")
            .field("config", &self.config)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A response whose headers arrived with a success status.
pub(crate) struct Accepted {
    response: reqwest::Response,
    pub(crate) started: Instant,
    pub(crate) first_byte: Instant,
    deadline: TokioInstant,
    total: Duration,
    idle: Duration,
    key: Option<ApiKey>,
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

    /// POST a JSON body to `path`, retrying as [`RetryPolicy`] says, until response headers
    /// with a success status arrive.
    pub(crate) async fn post_json(&self, path: &str, body: Bytes) -> Result<Accepted> {
        let url = self.url(path);
        let timeouts = self.config.timeouts;
        let policy = self.config.retry;
        let started = Instant::now();
        let deadline = TokioInstant::from_std(started) + timeouts.total;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let request = self
                .http
                .post(&url)
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

impl Accepted {
    /// The response headers as (lower-case name, value) pairs; values that are not valid
    /// UTF-8 are skipped. A gateway in front reports its routing decision in them (triage's
    /// `x-triage-*`), which the benchmark harness records.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        self.response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_string(), v.to_string()))
            })
            .collect()
    }

    /// The whole body, with the idle and total timeouts enforced.
    pub(crate) async fn body(self) -> Result<Bytes> {
        let mut stream = Box::pin(self.into_byte_stream());
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }

    /// A non-streaming answer: the whole body parsed by `parse`, with the request's timings (the
    /// first token is known only when the whole body has arrived).
    pub(crate) async fn into_response(
        self,
        parse: fn(&[u8]) -> Result<crate::ChatResponse>,
    ) -> Result<crate::ChatResponse> {
        let (started, first_byte) = (self.started, self.first_byte);
        let body = self.body().await?;
        let finished = std::time::Instant::now();
        let mut response = parse(&body)?;
        response.timings.started = Some(started);
        response.timings.first_byte = Some(first_byte);
        response.timings.first_token = Some(finished);
        response.timings.finished = Some(finished);
        Ok(response)
    }

    /// The body as chat events: `FirstByte` first, then whatever `decoder` makes of each SSE
    /// event, ending after the decoder's terminal event.
    pub(crate) fn into_events<D: SseDecoder>(self, decoder: D) -> EventStream {
        let first_byte = ChatEvent::FirstByte {
            at: self.first_byte,
        };
        let events = decode_sse(self.into_byte_stream(), decoder);
        Box::pin(futures::stream::once(async move { Ok(first_byte) }).chain(events))
    }

    /// The body's chunks; a gap longer than `idle` or passing the total deadline ends it with
    /// a timeout, a broken connection with a connection error.
    fn into_byte_stream(self) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        timed_chunks(
            self.response.bytes_stream(),
            self.idle,
            self.deadline,
            self.total,
            self.key,
        )
    }
}

/// Wrap a body's chunk stream with the idle-gap and total-deadline timers.
fn timed_chunks<S>(
    chunks: S,
    idle: Duration,
    deadline: TokioInstant,
    total: Duration,
    key: Option<ApiKey>,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
{
    let chunks = Box::pin(chunks);
    futures::stream::unfold(Some(chunks), move |state| {
        let key = key.clone();
        async move {
            let mut chunks = state?;
            let idle_limit = TokioInstant::now() + idle;
            let (limit, phase, after) = if deadline <= idle_limit {
                (deadline, TimeoutPhase::Total, total)
            } else {
                (idle_limit, TimeoutPhase::Idle, idle)
            };
            match tokio::time::timeout_at(limit, chunks.next()).await {
                Err(_) => Some((Err(BackendError::Timeout { phase, after }), None)),
                Ok(None) => None,
                Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
                Ok(Some(Err(e))) => {
                    let message = chain(&e);
                    let message = match &key {
                        Some(key) => key.redact(&message),
                        None => message,
                    };
                    Some((
                        Err(BackendError::Connection(format!(
                            "connection broke while reading the response: {message}"
                        ))),
                        None,
                    ))
                }
            }
        }
    })
}

/// Read at most `cap` bytes of a body (idle and total timeouts enforced).
async fn read_capped(
    response: reqwest::Response,
    deadline: TokioInstant,
    timeouts: Timeouts,
    cap: usize,
) -> Result<Vec<u8>> {
    let mut stream = Box::pin(timed_chunks(
        response.bytes_stream(),
        timeouts.idle,
        deadline,
        timeouts.total,
        None,
    ));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Ok(out)
}

/// A protocol's reading of SSE events.
pub trait SseDecoder: Send + 'static {
    /// Turn one SSE event into chat events (appended to `out`). `Ok(true)` means this was the
    /// protocol's terminal event: the stream ends after it.
    fn decode(&mut self, event: Sse, at: Instant, out: &mut Vec<ChatEvent>) -> Result<bool>;
    /// The error message for a body that ended before the terminal event.
    fn truncated(&self) -> String;
}

/// Decode a body's chunks into chat events with `decoder`. Public so that tests and replays
/// can feed recorded bytes cut at any position.
pub fn decode_sse<S, D>(chunks: S, decoder: D) -> impl Stream<Item = Result<ChatEvent>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
    D: SseDecoder,
{
    struct State<D> {
        sse: Pin<Box<dyn Stream<Item = std::result::Result<Sse, sse_stream::Error>> + Send>>,
        decoder: D,
        pending: VecDeque<ChatEvent>,
        finished: bool,
    }
    let state = State {
        sse: Box::pin(SseByteStream::new(Box::pin(chunks))),
        decoder,
        pending: VecDeque::new(),
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.finished {
                return None;
            }
            match st.sse.next().await {
                None => {
                    st.finished = true;
                    let message = st.decoder.truncated();
                    return Some((Err(BackendError::Protocol(message)), st));
                }
                Some(Err(e)) => {
                    st.finished = true;
                    return Some((Err(sse_error(e)), st));
                }
                Some(Ok(sse)) => {
                    let mut out = Vec::new();
                    match st.decoder.decode(sse, Instant::now(), &mut out) {
                        Ok(terminal) => {
                            st.pending.extend(out);
                            st.finished = terminal;
                        }
                        Err(e) => {
                            st.finished = true;
                            return Some((Err(e), st));
                        }
                    }
                }
            }
        }
    })
}

fn sse_error(e: sse_stream::Error) -> BackendError {
    match e {
        sse_stream::Error::Body(inner) => match inner.downcast::<BackendError>() {
            Ok(backend) => *backend,
            Err(other) => BackendError::Connection(other.to_string()),
        },
        sse_stream::Error::Utf8Parse(e) => {
            BackendError::Protocol(format!("invalid UTF-8 in an SSE field: {e}"))
        }
        other => BackendError::Protocol(format!("invalid SSE stream: {other}")),
    }
}

/// The typed error for a non-success status: 429 and 529 are rate limits (with the wait the
/// upstream asked for), everything else an upstream status with its body.
pub(crate) fn status_error(
    status: u16,
    retry_after: Option<Duration>,
    body: String,
) -> BackendError {
    if status == 429 || status == 529 {
        BackendError::RateLimited {
            status,
            retry_after,
            body,
        }
    } else {
        BackendError::UpstreamStatus { status, body }
    }
}

/// The HTTP status an upstream error `type` (sent inside a stream, where the HTTP status is
/// already 200) stands for, as OpenAI and Anthropic document them.
pub(crate) fn status_for_error_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" | "context_length_exceeded" => 400,
        "authentication_error" | "invalid_api_key" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" | "rate_limit_exceeded" | "insufficient_quota" | "tokens" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The wait an upstream asked for: `retry-after-ms` (milliseconds, OpenAI), else
/// `Retry-After` as seconds or as an HTTP date (relative to `now`).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Header names whose values are credentials.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || name.contains("api-key")
        || name.contains("token")
        || name.contains("secret")
}

/// An error and its sources, `: `-separated (reqwest's own `Display` stops at the top).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// An `f32` as the JSON number a person would write (`0.7`, not `0.699999988079071`).
pub(crate) fn f32_json(x: f32) -> serde_json::Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// At most `max` characters of `text`, for error messages quoting upstream data.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn retry_after_reads_ms_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        // retry-after-ms is more precise and wins.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "3"), ("retry-after-ms", "1500")]),
                now
            ),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(7))
        );
        // A date in the past means "now".
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

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

    #[test]
    fn status_errors_are_typed() {
        assert!(matches!(
            status_error(429, Some(Duration::from_secs(1)), "x".into()),
            BackendError::RateLimited { status: 429, .. }
        ));
        assert!(matches!(
            status_error(529, None, "x".into()),
            BackendError::RateLimited { status: 529, .. }
        ));
        assert!(matches!(
            status_error(401, None, "x".into()),
            BackendError::UpstreamStatus { status: 401, .. }
        ));
        assert_eq!(status_for_error_type("overloaded_error"), 529);
        assert_eq!(status_for_error_type("something_new"), 500);
    }
}
