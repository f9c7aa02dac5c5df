//! OpenAI-shaped errors: every failure the gateway answers with is `{"error": {"message", "type",
//! "param", "code"}}` with the matching HTTP status, so OpenAI SDKs raise their own exception
//! types (`BadRequestError`, `AuthenticationError`, `NotFoundError`, `RateLimitError`, …).
//! The response also carries the [`ApiError`] as an extension: on the Anthropic paths
//! (`/v1/messages…`) an outer layer re-renders it in Anthropic's shape
//! (`super::messages::errors`), whichever layer produced it.
//!
//! A 429 for load — a full local admission queue ([`BackendError::Overloaded`]) or an upstream
//! rate limit — carries `Retry-After` in whole seconds: the upstream's own wait when it gave one,
//! clamped to [`MAX_RETRY_AFTER_SECS`], else one second (a local queue drains within seconds).
//! A spent budget is a 429 too, but waiting a second would not help, so it names no wait.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backends::BackendError;
use serde::Serialize;

/// One error answer: status plus the four OpenAI fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// OpenAI `message`: what went wrong, for people.
    pub message: String,
    /// OpenAI `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`, …
    pub kind: &'static str,
    /// OpenAI `param`: the request field at fault, when one is.
    pub param: Option<String>,
    /// OpenAI `code`: a machine-readable code (`invalid_api_key`, `model_not_found`, a
    /// [`BackendError::code`], …).
    pub code: Option<String>,
    /// The wait a 429 asks for, sent as `Retry-After` (none when unset).
    pub retry_after: Option<Duration>,
}

/// The longest `Retry-After` the gateway sends, whatever an upstream asked for (one hour).
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorObject<'a>,
}

/// The inner object of an OpenAI error body (also sent as an SSE `data:` line mid-stream).
#[derive(Serialize)]
pub struct ErrorObject<'a> {
    /// See [`ApiError::message`].
    pub message: &'a str,
    /// See [`ApiError::kind`] (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// See [`ApiError::param`] (`null` when unset).
    pub param: Option<&'a str>,
    /// See [`ApiError::code`] (`null` when unset).
    pub code: Option<&'a str>,
}

impl ApiError {
    /// An error with this status, OpenAI `type` and message, without `param` or `code`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// Set the OpenAI `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Set the OpenAI `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Set the wait a 429 asks for (`Retry-After`).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The `Retry-After` value of a 429 that names a wait, in whole seconds (rounded up,
    /// between 1 and [`MAX_RETRY_AFTER_SECS`]); `None` otherwise.
    pub fn retry_after_secs(&self) -> Option<u64> {
        if self.status != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        let wait = self.retry_after?;
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Some(secs.clamp(1, MAX_RETRY_AFTER_SECS))
    }

    /// 400: the body is not a valid chat request; `param` names the offending field when known.
    pub fn bad_request(message: impl Into<String>, param: Option<String>) -> Self {
        Self {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
        .with_code("invalid_request")
    }

    /// 401: no key, or a key that is not one of the configured ones.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
            .with_code("invalid_api_key")
    }

    /// 404 `model_not_found`: the `model` is neither a route nor a backend name.
    pub fn model_not_found(model: &str, known: &[String]) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model `{model}` does not exist: use `auto`, a route or a backend name ({})",
                known.join(", ")
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 404 for paths the gateway does not serve.
    pub fn path_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown request URL: {method} {path}"),
        )
        .with_code("unknown_url")
    }

    /// 405 for a path served with another method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("Method {method} is not allowed on {path}"),
        )
        .with_code("method_not_allowed")
    }

    /// 413: the body is larger than the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    }

    /// 415: a request body that is not declared `application/json` (`found`: the
    /// `Content-Type` sent, if any). A browser may post `text/plain` to a local gateway without
    /// a CORS preflight; refusing every other type keeps such pages out.
    pub fn unsupported_media_type(found: Option<&str>) -> Self {
        let found = match found {
            // Debug formatting escapes control characters; a long value is cut.
            Some(v) => format!(
                "`Content-Type: {:?}`",
                v.chars().take(100).collect::<String>()
            ),
            None => "no `Content-Type`".to_string(),
        };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            format!("Request bodies must be JSON sent with `Content-Type: application/json`; got {found}"),
        )
        .with_code("unsupported_media_type")
    }

    /// 429 because the policy refused (budget exhausted) or every backend was overloaded.
    pub fn too_many_requests(message: impl Into<String>, code: &str) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message).with_code(code)
    }

    /// 504: the per-request deadline passed.
    pub fn deadline(after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            format!(
                "The request did not finish within the gateway deadline of {:.3}s",
                after.as_secs_f64()
            ),
        )
        .with_code("timeout")
    }

    /// 503: a backend was named that is still loading, or the gateway is shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message).with_code("unavailable")
    }

    /// The status and shape a backend error maps to; upstream 5xx become 502, timeouts 504.
    pub fn from_backend(backend: &str, err: &BackendError) -> Self {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let api = Self::new(
            status,
            err.openai_type(),
            format!("backend `{backend}`: {err}"),
        )
        .with_code(err.code());
        match err {
            BackendError::RateLimited { retry_after, .. } => {
                api.with_retry_after(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            BackendError::Overloaded { .. } => api.with_retry_after(Duration::from_secs(1)),
            _ => api,
        }
    }

    /// The `{"message","type","param","code"}` object.
    pub fn object(&self) -> ErrorObject<'_> {
        ErrorObject {
            message: &self.message,
            kind: self.kind,
            param: self.param.as_deref(),
            code: self.code.as_deref(),
        }
    }

    /// The full JSON body `{"error": {...}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Body {
            error: self.object(),
        })
        .unwrap_or_else(|_| {
            r#"{"error":{"message":"error","type":"api_error","param":null,"code":null}}"#
                .to_string()
        })
    }

    /// The code recorded in the ledger and events (`code`, else the type).
    pub fn ledger_code(&self) -> String {
        self.code.clone().unwrap_or_else(|| self.kind.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut out = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.to_json(),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs() {
            out.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        // The error itself rides along, so a path that speaks another API's dialect
        // (`/v1/messages`) can answer the same error in its own shape.
        out.extensions_mut().insert(self);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ApiError::model_not_found("gpt-9", &["auto".into(), "slm".into()]);
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn backend_errors_map_to_gateway_statuses() {
        let e = ApiError::from_backend(
            "llm",
            &BackendError::UpstreamStatus {
                status: 500,
                body: "boom".into(),
            },
        );
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        let e = ApiError::from_backend(
            "llm",
            &BackendError::Timeout {
                phase: backends::TimeoutPhase::FirstByte,
                after: std::time::Duration::from_secs(1),
            },
        );
        assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
        let e = ApiError::from_backend("slm", &BackendError::Overloaded { capacity: 4 });
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.kind, "rate_limit_error");
    }

    #[test]
    fn load_429s_say_when_to_retry_within_bounds() {
        let retry = |e: &ApiError| {
            let response = e.clone().into_response();
            assert_eq!(response.status(), e.status);
            response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let overloaded = ApiError::from_backend("slm", &BackendError::Overloaded { capacity: 2 });
        assert_eq!(retry(&overloaded).as_deref(), Some("1"));
        let limited = |wait: Option<Duration>| {
            ApiError::from_backend(
                "llm",
                &BackendError::RateLimited {
                    status: 429,
                    retry_after: wait,
                    body: String::new(),
                },
            )
        };
        assert_eq!(
            retry(&limited(Some(Duration::from_millis(2500)))).as_deref(),
            Some("3")
        );
        assert_eq!(
            retry(&limited(Some(Duration::from_secs(u64::MAX)))).as_deref(),
            Some("3600")
        );
        assert_eq!(retry(&limited(Some(Duration::ZERO))).as_deref(), Some("1"));
        assert_eq!(retry(&limited(None)).as_deref(), Some("1"));
        let budget = ApiError::too_many_requests("budget exhausted", "budget_exhausted");
        assert_eq!(
            retry(&budget),
            None,
            "a spent budget does not come back in a second"
        );
        assert_eq!(retry(&ApiError::unavailable("loading")), None);
    }
}
