//! Anthropic-shaped errors on the Anthropic paths (`/v1/messages`, `/v1/messages/…`):
//! `{"type": "error", "error": {"type", "message"}, "request_id"}` with the same HTTP status,
//! so the `anthropic` SDKs raise their own exception types (`BadRequestError`,
//! `AuthenticationError`, `NotFoundError`, `RateLimitError`, …).
//!
//! Every error the gateway answers carries its [`ApiError`] as a response extension (see
//! `error.rs`); [`anthropic_errors`] is the outermost layer of the app and re-renders those on
//! the Anthropic paths, whichever layer produced them — an auth refusal, the transport's
//! header-size, body-timeout and in-flight limits, a panic's 500, an unknown sub-path. One
//! error type and one place that speaks each dialect, rather than a second copy of every error
//! constructor.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::gateway::error::ApiError;
use crate::headers::REQUEST_ID;

/// Whether `path` is one of the Anthropic API's.
pub(crate) fn is_anthropic_path(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// Anthropic's error `type` for an error answered with `status`.
pub(crate) fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The `{"type":"error","error":{…}}` object of `err` (also an SSE `error` event's data).
pub(crate) fn body(err: &ApiError, request_id: Option<&str>) -> serde_json::Value {
    let mut v = json!({
        "type": "error",
        "error": {"type": error_type(err.status), "message": err.message},
    });
    if let Some(id) = request_id {
        v["request_id"] = json!(id);
    }
    v
}

/// Re-render the gateway's errors in Anthropic's shape on the Anthropic paths.
pub(crate) async fn anthropic_errors(request: Request, next: Next) -> Response {
    if !is_anthropic_path(request.uri().path()) {
        return next.run(request).await;
    }
    let mut response = next.run(request).await;
    let Some(err) = response.extensions_mut().remove::<ApiError>() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let id = parts
        .headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = body(&err, id.as_deref()).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = id.and_then(|i| HeaderValue::from_str(&i).ok()) {
        // Anthropic's own header name, which its SDKs attach to errors.
        parts.headers.insert("request-id", id);
    }
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_anthropic_error_types() {
        assert_eq!(error_type(StatusCode::BAD_REQUEST), "invalid_request_error");
        assert_eq!(error_type(StatusCode::UNAUTHORIZED), "authentication_error");
        assert_eq!(error_type(StatusCode::NOT_FOUND), "not_found_error");
        assert_eq!(
            error_type(StatusCode::TOO_MANY_REQUESTS),
            "rate_limit_error"
        );
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "api_error");
        assert_eq!(error_type(StatusCode::GATEWAY_TIMEOUT), "timeout_error");
        let v = body(&ApiError::unauthorized("no key"), Some("msg_1"));
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "no key"},
                "request_id": "msg_1"})
        );
        assert!(is_anthropic_path("/v1/messages/count_tokens"));
        assert!(!is_anthropic_path("/v1/messagesx"));
    }
}
