//! The soak's clients: requests sent at a fixed rate (open loop: the schedule never waits for
//! answers), half of them streamed, each answer classified as a complete answer, a well-formed
//! OpenAI error (an HTTP error body or an SSE error event), or broken (no response, a truncated
//! body, a body of the wrong shape) — broken is what the soak exists to catch.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// What one request got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A complete answer: a completion with content, or a stream with a finish reason and one
    /// `[DONE]`.
    Answer,
    /// An HTTP error status with an OpenAI error body.
    Error(u16),
    /// A 200 stream that ended with an OpenAI error event (a failure after the first token).
    StreamError,
    /// Anything else; the text says what.
    Broken(String),
}

/// One request's result.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) outcome: Outcome,
    pub(crate) streamed: bool,
    /// `x-triage-request-id`, when the response had one.
    pub(crate) request_id: Option<String>,
}

/// Send `total` requests to `url` at `rate` per second; return every reply, in no order.
pub(crate) async fn drive(
    client: &reqwest::Client,
    url: &str,
    rate: f64,
    total: u64,
) -> Vec<Reply> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    // Open loop: ticks missed while the machine was busy are sent at once, keeping the rate.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut running = JoinSet::new();
    let mut replies = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for n in 0..total {
        tick.tick().await;
        let client = client.clone();
        let url = format!("{url}/v1/chat/completions");
        running.spawn(async move { send(&client, &url, n, n % 2 == 1).await });
        // Collect finished requests as we go so the set stays small.
        while let Some(done) = running.try_join_next() {
            replies.push(joined(done));
        }
    }
    while let Some(done) = running.join_next().await {
        replies.push(joined(done));
    }
    replies
}

fn joined(done: Result<Reply, tokio::task::JoinError>) -> Reply {
    done.unwrap_or_else(|e| Reply {
        outcome: Outcome::Broken(format!("client task failed: {e}")),
        streamed: false,
        request_id: None,
    })
}

/// The body of request `n`.
pub(crate) fn request_body(n: u64, stream: bool) -> Value {
    json!({
        "model": "auto",
        "stream": stream,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": format!("Soak request {n}: say something short.")}],
    })
}

async fn send(client: &reqwest::Client, url: &str, n: u64, stream: bool) -> Reply {
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header(router::headers::TASK, "soak")
        .body(request_body(n, stream).to_string())
        .send()
        .await;
    let reply = |outcome, request_id| Reply {
        outcome,
        streamed: stream,
        request_id,
    };
    let response = match sent {
        Ok(r) => r,
        Err(e) => return reply(Outcome::Broken(format!("no response: {e}")), None),
    };
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get(router::headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match response.text().await {
        Ok(b) => b,
        Err(e) => {
            return reply(
                Outcome::Broken(format!("status {status}, body cut: {e}")),
                request_id,
            )
        }
    };
    reply(classify(status, stream, &body), request_id)
}

/// Sort a response into an [`Outcome`].
pub(crate) fn classify(status: u16, stream: bool, body: &str) -> Outcome {
    if status >= 400 {
        return match serde_json::from_str::<Value>(body) {
            Ok(v) if is_error_object(&v) => Outcome::Error(status),
            _ => Outcome::Broken(format!(
                "status {status} without an OpenAI error body: {}",
                excerpt(body)
            )),
        };
    }
    if status != 200 {
        return Outcome::Broken(format!("unexpected status {status}"));
    }
    if stream {
        return classify_stream(body);
    }
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["choices"][0]["message"]["content"].is_string() => Outcome::Answer,
        _ => Outcome::Broken(format!("200 without a completion: {}", excerpt(body))),
    }
}

fn is_error_object(v: &Value) -> bool {
    v["error"]["message"].is_string() && v["error"]["type"].is_string()
}

/// A stream is complete when it has a finish reason and ends with its only `[DONE]`; it failed
/// well when its last event is its only error object and no `[DONE]` came.
fn classify_stream(body: &str) -> Outcome {
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    let dones = data.iter().filter(|d| **d == "[DONE]").count();
    let mut finishes = 0;
    let mut errors = 0;
    let mut last_is_error = false;
    for d in data.iter().filter(|d| **d != "[DONE]") {
        let Ok(v) = serde_json::from_str::<Value>(d) else {
            return Outcome::Broken(format!("an SSE event that is not JSON: {}", excerpt(d)));
        };
        last_is_error = v.get("error").is_some();
        if last_is_error {
            if !is_error_object(&v) {
                return Outcome::Broken(format!("a malformed SSE error event: {}", excerpt(d)));
            }
            errors += 1;
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            if !c["finish_reason"].is_null() {
                finishes += 1;
            }
        }
    }
    match (dones, errors) {
        (1, 0) if data.last() == Some(&"[DONE]") && finishes == 1 => Outcome::Answer,
        (0, 1) if last_is_error => Outcome::StreamError,
        _ => Outcome::Broken(format!(
            "a stream with {dones} [DONE], {errors} error events and {finishes} finish reasons: {}",
            excerpt(body)
        )),
    }
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(
            classify(200, false, r#"{"choices":[{"message":{"content":"hi"}}]}"#),
            Outcome::Answer
        );
        assert_eq!(
            classify(502, false, r#"{"error":{"message":"m","type":"t"}}"#),
            Outcome::Error(502)
        );
        assert!(matches!(classify(502, false, "oops"), Outcome::Broken(_)));
        let ok = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n\
                  data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n: comment\n\ndata: [DONE]\n\n";
        assert_eq!(classify(200, true, ok), Outcome::Answer);
        let failed =
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n\
                      data: {\"error\":{\"message\":\"cut\",\"type\":\"upstream_error\"}}\n\n";
        assert_eq!(classify(200, true, failed), Outcome::StreamError);
        let truncated =
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n";
        assert!(matches!(classify(200, true, truncated), Outcome::Broken(_)));
        let twice = format!("{ok}data: [DONE]\n\n");
        assert!(matches!(classify(200, true, &twice), Outcome::Broken(_)));
    }
}
