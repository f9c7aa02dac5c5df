//! A request summary as an OTLP/JSON span (the OTLP/HTTP JSON encoding of
//! `ExportTraceServiceRequest`: hex trace and span ids, 64-bit integers as strings, attribute
//! values as `{"stringValue": …}` / `{"intValue": "…"}` / `{"doubleValue": …}` /
//! `{"boolValue": …}`).
//!
//! Attributes follow the OpenTelemetry GenAI semantic conventions where one exists —
//! `gen_ai.operation.name` (`chat`), `gen_ai.system`, `gen_ai.request.model` (what the client
//! sent: `auto`, a route, a backend), `gen_ai.response.model` (the answering backend's model),
//! `gen_ai.response.id`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//! `gen_ai.server.time_to_first_token` (seconds, measured by the gateway) — plus
//! `http.response.status_code`, `error.type` on failures, and triage's decision:
//! `triage.route`, `triage.backend`, `triage.escalated`, `triage.escalation_failed`,
//! `triage.cost_usd`, `triage.saved_usd`, `triage.task`, `triage.task_source`, `triage.tried`,
//! `triage.stream`. The span is a server span named `chat {gen_ai.request.model}`.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::BackendInfo;
use crate::events::RequestSummary;

/// OTLP `SPAN_KIND_SERVER`.
const SPAN_KIND_SERVER: u8 = 2;
/// OTLP `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u8 = 2;

/// A span's trace id (16 bytes) and span id (8 bytes), hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanIds {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
}

impl SpanIds {
    /// Fresh random ids (std's randomly keyed hasher over a counter and the clock: unique per
    /// span, not secret — ids are correlation handles, not credentials).
    pub fn random() -> SpanIds {
        let a = random_u64();
        let b = random_u64();
        let c = random_u64();
        SpanIds {
            trace_id: format!("{a:016x}{b:016x}"),
            span_id: format!("{:016x}", c.max(1)),
        }
    }
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::collections::hash_map::RandomState::new().hash_one((n, nanos))
}

/// The `ExportTraceServiceRequest` body for `spans`, under resource `service.name`.
pub fn export_request(service_name: &str, spans: Vec<Value>) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [string("service.name", service_name)] },
            "scopeSpans": [{
                "scope": { "name": "triage", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

/// One request's span.
pub fn span(s: &RequestSummary, backends: &BTreeMap<String, BackendInfo>, ids: &SpanIds) -> Value {
    let start_ns = u128::from(s.unix_ms) * 1_000_000;
    let end_ns = start_ns + (s.e2e_ms.max(0.0) * 1e6) as u128;
    let answered = s.backend.as_deref().and_then(|b| backends.get(b));
    let mut attrs = vec![
        string("gen_ai.operation.name", "chat"),
        string("gen_ai.request.model", &s.model),
        string("gen_ai.response.id", &s.id),
        int("http.response.status_code", i64::from(s.status)),
        boolean("triage.escalated", s.escalated),
        double("triage.cost_usd", s.cost_usd),
        double("triage.saved_usd", s.saved_usd),
        boolean("triage.stream", s.stream),
    ];
    if let Some(info) = answered {
        attrs.push(string("gen_ai.system", &info.system));
        attrs.push(string("gen_ai.response.model", &info.model));
    }
    if s.backend.is_some() {
        attrs.push(int("gen_ai.usage.input_tokens", i64::from(s.prompt_tokens)));
        attrs.push(int(
            "gen_ai.usage.output_tokens",
            i64::from(s.completion_tokens),
        ));
    }
    if let Some(ttft) = s.ttft_ms {
        attrs.push(double("gen_ai.server.time_to_first_token", ttft / 1e3));
    }
    let optional = [
        ("triage.route", &s.route),
        ("triage.backend", &s.backend),
        ("triage.task", &s.task),
        ("triage.task_source", &s.task_source),
        ("triage.escalation_failed", &s.escalation_failed),
        ("error.type", &s.error),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            attrs.push(string(key, v));
        }
    }
    if !s.tried.is_empty() {
        attrs.push(string("triage.tried", &s.tried.join(",")));
    }
    let mut span = json!({
        "traceId": ids.trace_id,
        "spanId": ids.span_id,
        "name": format!("chat {}", s.model),
        "kind": SPAN_KIND_SERVER,
        "startTimeUnixNano": start_ns.to_string(),
        "endTimeUnixNano": end_ns.to_string(),
        "attributes": attrs,
    });
    if !s.is_success() {
        span["status"] = json!({
            "code": STATUS_CODE_ERROR,
            "message": s.error.clone().unwrap_or_else(|| format!("HTTP {}", s.status)),
        });
    }
    span
}

fn string(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn int(key: &str, value: i64) -> Value {
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}

fn double(key: &str, value: f64) -> Value {
    json!({ "key": key, "value": { "doubleValue": value } })
}

fn boolean(key: &str, value: bool) -> Value {
    json!({ "key": key, "value": { "boolValue": value } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| &a["value"])
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn a_summary_becomes_a_server_span_with_genai_and_triage_attributes() {
        let summary = RequestSummary {
            id: "chatcmpl-1".into(),
            unix_ms: 1_700_000_000_000,
            model: "auto".into(),
            route: Some("cascade".into()),
            backend: Some("llm".into()),
            tried: vec!["slm".into(), "llm".into()],
            escalated: true,
            task: Some("qa".into()),
            status: 200,
            prompt_tokens: 12,
            completion_tokens: 7,
            cost_usd: 0.25,
            ttft_ms: Some(250.0),
            e2e_ms: 1500.0,
            ..Default::default()
        };
        let backends = BTreeMap::from([(
            "llm".to_string(),
            BackendInfo {
                system: "openai".into(),
                model: "gpt-4o-mini".into(),
            },
        )]);
        let ids = SpanIds::random();
        let span = span(&summary, &backends, &ids);
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], "1700000001500000000");
        assert_eq!(attr(&span, "gen_ai.system")["stringValue"], "openai");
        assert_eq!(attr(&span, "gen_ai.request.model")["stringValue"], "auto");
        assert_eq!(
            attr(&span, "gen_ai.response.model")["stringValue"],
            "gpt-4o-mini"
        );
        assert_eq!(attr(&span, "gen_ai.usage.input_tokens")["intValue"], "12");
        assert_eq!(attr(&span, "gen_ai.usage.output_tokens")["intValue"], "7");
        assert_eq!(
            attr(&span, "gen_ai.server.time_to_first_token")["doubleValue"],
            0.25
        );
        assert_eq!(attr(&span, "triage.escalated")["boolValue"], true);
        assert_eq!(attr(&span, "triage.cost_usd")["doubleValue"], 0.25);
        assert_eq!(attr(&span, "triage.tried")["stringValue"], "slm,llm");
        assert!(span.get("status").is_none());
        assert_ne!(SpanIds::random(), ids);
    }

    #[test]
    fn a_failed_request_has_an_error_status() {
        let summary = RequestSummary {
            model: "auto".into(),
            status: 502,
            error: Some("upstream_error".into()),
            ..Default::default()
        };
        let span = span(&summary, &BTreeMap::new(), &SpanIds::random());
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(attr(&span, "error.type")["stringValue"], "upstream_error");
        assert!(attr(&span, "gen_ai.usage.input_tokens").is_null());
    }
}
