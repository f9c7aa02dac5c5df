//! What a test reads back from the gateway: a [`Reply`] (status, headers, body) and the
//! helpers that take an SSE body apart, plus [`chat_body`], the smallest chat request.

use axum::http::{HeaderMap, StatusCode};

use super::HarnessError;

/// One HTTP answer of the gateway, body read to the end.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body (UTF-8).
    pub body: String,
}

impl Reply {
    /// The body as JSON; the error quotes the body.
    pub fn json(&self) -> Result<serde_json::Value, HarnessError> {
        serde_json::from_str(&self.body).map_err(|source| HarnessError::NotJson {
            source,
            body: self.body.clone(),
        })
    }

    /// A header's value, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` payloads of an SSE body, in order (comments dropped).
    pub fn sse_data(&self) -> Vec<String> {
        sse_data(&self.body)
    }
}

/// The `data:` payloads of an SSE body, in order (comments dropped; a multi-line `data:` is
/// joined with newlines).
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .flat_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The concatenated `delta.content` of streamed chat chunks (`[DONE]` and non-JSON skipped).
pub fn streamed_text(data: &[String]) -> String {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// A chat request to the policy (`model: auto`) with one user message.
pub fn chat_body(text: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": "auto",
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_data_joins_multi_line_data_and_drops_comments() {
        let body = ": keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
                    data: one\ndata: two\n\ndata: [DONE]\n\n";
        let data = sse_data(body);
        assert_eq!(data.len(), 3);
        assert_eq!(data[1], "one\ntwo");
        assert_eq!(streamed_text(&data), "a");
    }
}
