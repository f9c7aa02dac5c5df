//! The remote probe of `triage hw --remote`: time to first token, inter-token gaps and
//! end-to-end latency of an endpoint at low concurrency, so a remote API (or a second gateway)
//! appears in the same report as the local model.
//!
//! Each level sends `requests` streamed requests with `concurrency` of them in flight at a
//! time (closed loop), after `warmup` requests that are not recorded. Latencies go into HDR
//! histograms ([`LatencyHistogram`]); failed requests are counted, never silently dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{BackendError, ChatEvent, ChatRequest};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stats::{LatencyHistogram, Percentiles};
use crate::target::Target;

/// What the probe sends and how often.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Concurrency levels, each probed in turn.
    pub concurrency: Vec<usize>,
    /// Recorded requests per level.
    pub requests: usize,
    /// Unrecorded requests before each level.
    pub warmup: usize,
    /// The user message every request sends.
    pub prompt: String,
    /// Most tokens to generate per request.
    pub max_tokens: u32,
    /// Per-request limit; a request over it counts as an error.
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            concurrency: vec![1, 2],
            requests: 10,
            warmup: 1,
            prompt: "Write three sentences about the sea.".into(),
            max_tokens: 64,
            timeout: Duration::from_secs(120),
        }
    }
}

/// One concurrency level of one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemoteProbeRow {
    /// The target name given on the command line.
    pub target: String,
    /// `openai`, `anthropic`, …
    pub kind: String,
    /// The model the requests named.
    pub model: String,
    /// Requests in flight at a time at this level.
    pub concurrency: usize,
    /// Requests that completed.
    pub requests: u64,
    /// Requests that failed (error status, broken stream, timeout).
    pub errors: u64,
    /// The first error's message, if any (never holds a key: errors are redacted upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Mean streamed tokens per completed request.
    pub tokens_out_mean: f64,
    /// Time to first token, from the request's send time, in ms.
    pub ttft: Option<Percentiles>,
    /// Gaps between consecutive streamed tokens, in ms.
    pub inter_token: Option<Percentiles>,
    /// Send to end of stream, in ms.
    pub end_to_end: Option<Percentiles>,
    /// Mean over requests of (tokens − 1) ÷ (last token − first token).
    pub per_stream_tps: f64,
}

/// Why one probe request failed.
#[derive(Debug, thiserror::Error)]
enum ProbeFailure {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the stream ended without a token")]
    NoToken,
}

/// One request's timings.
struct Timed {
    ttft: Duration,
    gaps: Vec<Duration>,
    end_to_end: Duration,
    tokens: usize,
}

async fn timed_request(
    target: &dyn Target,
    request: ChatRequest,
    timeout: Duration,
) -> Result<Timed, ProbeFailure> {
    let started = Instant::now();
    let work = async {
        let reply = target.send(request).await?;
        let mut events = reply.events;
        let mut tokens: Vec<Instant> = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Err(e) => return Err(e),
                Ok(ChatEvent::Token { choice: 0, at, .. }) => tokens.push(at),
                Ok(_) => {}
            }
        }
        Ok(tokens)
    };
    let tokens = match tokio::time::timeout(timeout, work).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ProbeFailure::Backend(BackendError::Timeout {
                phase: backends::TimeoutPhase::Total,
                after: timeout,
            }))
        }
    };
    let end_to_end = started.elapsed();
    let Some(first) = tokens.first() else {
        return Err(ProbeFailure::NoToken);
    };
    Ok(Timed {
        ttft: first.saturating_duration_since(started),
        gaps: tokens
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .collect(),
        end_to_end,
        tokens: tokens.len(),
    })
}

/// Probe one target at every level of `config.concurrency`.
pub async fn probe(
    target: Arc<dyn Target>,
    model: &str,
    config: &ProbeConfig,
) -> Vec<RemoteProbeRow> {
    let mut rows = Vec::new();
    for &concurrency in &config.concurrency {
        let concurrency = concurrency.max(1);
        let request = || {
            let mut r = ChatRequest::user(model, config.prompt.clone());
            r.max_tokens = Some(config.max_tokens);
            r.temperature = Some(0.0);
            r.stream = Some(true);
            r
        };
        // Warm-up: connections, caches, model load on the far side.
        futures::stream::iter(0..config.warmup)
            .for_each_concurrent(concurrency, |_| {
                let target = target.clone();
                let r = request();
                async move {
                    let _ = timed_request(target.as_ref(), r, config.timeout).await;
                }
            })
            .await;
        let results: Vec<Result<Timed, ProbeFailure>> = futures::stream::iter(0..config.requests)
            .map(|_| {
                let target = target.clone();
                let r = request();
                async move { timed_request(target.as_ref(), r, config.timeout).await }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        rows.push(summarise(target.as_ref(), model, concurrency, &results));
    }
    rows
}

fn summarise(
    target: &dyn Target,
    model: &str,
    concurrency: usize,
    results: &[Result<Timed, ProbeFailure>],
) -> RemoteProbeRow {
    let mut ttft = LatencyHistogram::new();
    let mut gaps = LatencyHistogram::new();
    let mut e2e = LatencyHistogram::new();
    let mut tokens = 0usize;
    let mut rates = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(t) => {
                ttft.record_ns(t.ttft.as_nanos() as u64);
                e2e.record_ns(t.end_to_end.as_nanos() as u64);
                for g in &t.gaps {
                    gaps.record_ns(g.as_nanos() as u64);
                }
                tokens += t.tokens;
                let generating: Duration = t.gaps.iter().sum();
                if !t.gaps.is_empty() && generating > Duration::ZERO {
                    rates.push(t.gaps.len() as f64 / generating.as_secs_f64());
                }
            }
            Err(failure) => {
                errors += 1;
                first_error.get_or_insert_with(|| failure.to_string());
            }
        }
    }
    let completed = results.len() as u64 - errors;
    let info = target.info();
    RemoteProbeRow {
        target: info.name,
        kind: info.kind,
        model: model.to_string(),
        concurrency,
        requests: completed,
        errors,
        first_error,
        tokens_out_mean: if completed > 0 {
            tokens as f64 / completed as f64
        } else {
            0.0
        },
        ttft: ttft.summary(),
        inter_token: gaps.summary(),
        end_to_end: e2e.summary(),
        per_stream_tps: if rates.is_empty() {
            0.0
        } else {
            rates.iter().sum::<f64>() / rates.len() as f64
        },
    }
}

/// The probe's Markdown table.
pub fn markdown_table(rows: &[RemoteProbeRow]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "| endpoint | model | streams | ok | errors | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | E2E p50 ms | per-stream t/s |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let ms = |p: &Option<Percentiles>, f: fn(&Percentiles) -> f64| {
        p.as_ref()
            .map(|p| format!("{:.1}", f(p)))
            .unwrap_or_else(|| "–".into())
    };
    for r in rows {
        let _ = writeln!(
            out,
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.target,
            r.kind,
            r.model,
            r.concurrency,
            r.requests,
            r.errors,
            ms(&r.ttft, |p| p.p50_ms),
            ms(&r.ttft, |p| p.p99_ms),
            ms(&r.inter_token, |p| p.p50_ms),
            ms(&r.inter_token, |p| p.p99_ms),
            ms(&r.end_to_end, |p| p.p50_ms),
            r.per_stream_tps,
        );
    }
    if let Some(e) = rows.iter().find_map(|r| r.first_error.as_ref()) {
        let _ = writeln!(out, "\nfirst error: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::BackendTarget;
    use backends::mock::MockBackend;

    #[tokio::test]
    async fn probe_records_every_request_and_counts_failures() {
        // Test double: a mock upstream that echoes the prompt word by word, 2 ms per token.
        let slow = MockBackend::new("slow_2ms").expect("mock");
        let target: Arc<dyn Target> = Arc::new(BackendTarget::new("mock-llm", "mock", slow));
        let config = ProbeConfig {
            concurrency: vec![1, 2],
            requests: 4,
            warmup: 1,
            ..ProbeConfig::default()
        };
        let rows = probe(target, "m", &config).await;
        assert_eq!(rows.len(), 2);
        for (row, streams) in rows.iter().zip([1, 2]) {
            assert_eq!(row.concurrency, streams);
            assert_eq!(row.requests, 4);
            assert_eq!(row.errors, 0);
            let ttft = row.ttft.expect("ttft recorded");
            assert_eq!(ttft.count, 4);
            let itl = row.inter_token.expect("gaps recorded");
            assert!(itl.count >= 4, "gaps: {}", itl.count);
            assert!(
                itl.min_ms >= 1.0,
                "gap below the mock's 2 ms delay: {itl:?}"
            );
            assert!(row.tokens_out_mean >= 2.0);
            assert!(row.per_stream_tps > 0.0);
        }

        // Test double: a mock upstream that always answers 500.
        let failing = MockBackend::new("error_500").expect("mock");
        let target: Arc<dyn Target> = Arc::new(BackendTarget::new("down", "mock", failing));
        let rows = probe(
            target,
            "m",
            &ProbeConfig {
                concurrency: vec![1],
                requests: 3,
                warmup: 0,
                ..ProbeConfig::default()
            },
        )
        .await;
        assert_eq!(rows[0].requests, 0);
        assert_eq!(rows[0].errors, 3);
        assert!(rows[0].ttft.is_none());
        assert!(rows[0]
            .first_error
            .as_deref()
            .is_some_and(|e| e.contains("500")));
        let table = markdown_table(&rows);
        assert!(table.contains("| down (mock) | m | 1 | 0 | 3 |"), "{table}");
    }
}
