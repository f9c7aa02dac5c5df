//! What an upstream's failure means: the typed error for a status, the status an in-stream error
//! `type` stands for, which statuses are worth retrying and how long the upstream asked us to
//! wait. Shared by the retry loop and by both protocols' stream decoders.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::BackendError;

/// Statuses worth another attempt: request timeout, rate limit, transient server errors and
/// Anthropic's 529 "overloaded".
pub const RETRYABLE_STATUSES: [u16; 7] = [408, 429, 500, 502, 503, 504, 529];

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

/// The longest wait an upstream's `Retry-After` is taken at: a day. Longer (`1e30`, a date in
/// the year 9999) is read as a day, so the number is always one a clock can add.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait an upstream asked for: `retry-after-ms` (milliseconds, OpenAI), else
/// `Retry-After` as seconds or as an HTTP date (relative to `now`), at most
/// [`MAX_RETRY_AFTER`]. A negative, NaN or unreadable value is no wait asked for (`None`).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|ms| seconds(ms / 1000.0))
    {
        return Some(ms);
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Upstream seconds as a wait: `None` when negative or NaN, at most [`MAX_RETRY_AFTER`] (an
/// infinite or huge value too), never a panic.
fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_RETRY_AFTER)
            .min(MAX_RETRY_AFTER),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

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
    fn retry_after_never_panics_and_is_clamped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for header in ["retry-after", "retry-after-ms"] {
            for huge in ["1e30", "inf", "Infinity", "18446744073709551616", "1e308"] {
                assert_eq!(
                    retry_after(&headers(&[(header, huge)]), now),
                    Some(MAX_RETRY_AFTER),
                    "{header}: {huge}"
                );
            }
            for none in ["NaN", "-5", "-inf", "-1e30", "0x10", ""] {
                assert_eq!(
                    retry_after(&headers(&[(header, none)]), now),
                    None,
                    "{header}: {none}"
                );
            }
        }
        // `-0` is no wait at all; a tiny value rounds down.
        assert_eq!(
            retry_after(&headers(&[("retry-after", "-0")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1e-30")]), now),
            Some(Duration::ZERO)
        );
        // A date far in the future is clamped too.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]),
                now
            ),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Fri, 31 Dec 99999 23:59:59 GMT")]),
                now
            ),
            None
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
