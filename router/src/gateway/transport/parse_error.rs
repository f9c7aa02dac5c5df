//! OpenAI-shaped bodies (Anthropic-shaped for requests to `/v1/messages…`) for the answers
//! hyper gives on its own.
//!
//! When the bytes on a connection are not an HTTP/1 request at all — a control character in a
//! header value, a header block beyond hyper's buffer or header-count limits, a request line
//! that is not HTTP — hyper never calls the service: it writes a bare `400`, `414` or `431`
//! (`content-length: 0`, a `date`, nothing else) and closes. hyper offers no hook for that
//! answer, so the connection's socket wrapper recognises exactly that head on its way out and
//! writes the same status with an OpenAI error body instead. The gateway's own answers always
//! carry a `content-type`, so they never match. The socket wrapper also keeps the first bytes
//! of the request being read: when its request line names an Anthropic path, the body takes
//! Anthropic's shape ([`Dialect`]).

use serde_json::json;

/// Which API's error shape an answer takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

impl Dialect {
    /// The dialect of a request from its first bytes (`POST /v1/messages HTTP/1.1…`).
    pub(super) fn of_request_start(start: &[u8]) -> Dialect {
        let target = start
            .split(|b| *b == b' ')
            .nth(1)
            .and_then(|t| std::str::from_utf8(t).ok())
            .map(|t| t.split('?').next().unwrap_or(t));
        match target {
            Some(path) if crate::gateway::messages::errors::is_anthropic_path(path) => {
                Dialect::Anthropic
            }
            _ => Dialect::OpenAi,
        }
    }
}

/// The replacement for `head` when it is one of hyper's automatic parse-error answers.
pub(super) fn replacement(head: &[u8], dialect: Dialect) -> Option<Vec<u8>> {
    // hyper's automatic head is a few dozen bytes; anything longer is not it.
    if head.len() > 256 {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let lower = text.to_ascii_lowercase();
    let bare = lower.ends_with("\r\n\r\n")
        && lower.contains("\r\ncontent-length: 0\r\n")
        && !lower.contains("\r\ncontent-type:");
    if !bare {
        return None;
    }
    let (reason, code, message) = match status {
        400 => (
            "Bad Request",
            "malformed_http",
            "The request is not valid HTTP/1.1: its request line or a header could not be parsed \
             (header values may not hold control characters)",
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            "The request URI is too long",
        ),
        431 => (
            "Request Header Fields Too Large",
            "header_too_large",
            "The request's header block is too large (too many bytes or too many headers)",
        ),
        _ => return None,
    };
    let body = match dialect {
        Dialect::OpenAi => json!({"error": {"message": message, "type": "invalid_request_error",
            "param": null, "code": code}}),
        Dialect::Anthropic => json!({"type": "error",
            "error": {"type": "invalid_request_error", "message": message}}),
    }
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_heads_are_replaced() {
        let hyper_head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 11:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(hyper_head, Dialect::OpenAi).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "header_too_large");
        // The gateway's own answers carry a content type (and a body): left alone.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ours, Dialect::OpenAi).is_none());
        assert!(replacement(
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Dialect::OpenAi
        )
        .is_none());
        assert!(replacement(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            Dialect::OpenAi
        )
        .is_none());
        // A request to /v1/messages gets Anthropic's shape.
        let dialect = Dialect::of_request_start(b"POST /v1/messages?beta=true HTTP/1.1\r\nx-a");
        assert_eq!(dialect, Dialect::Anthropic);
        assert_eq!(
            Dialect::of_request_start(b"POST /v1/chat/completions HTTP/1.1"),
            Dialect::OpenAi
        );
        let out = String::from_utf8(replacement(hyper_head, dialect).unwrap()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
}
