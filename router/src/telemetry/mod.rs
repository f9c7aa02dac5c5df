//! OpenTelemetry traces: one span per chat request, exported over OTLP/HTTP (JSON) to the
//! collector `telemetry.otlp_endpoint` names, so triage's routing shows up next to the
//! application's own traces.
//!
//! The exporter is off the request path: it subscribes to the gateway's [`EventBus`] (every
//! request ends in exactly one [`RequestSummary`] there), turns summaries into spans
//! ([`otlp::span`]: GenAI semantic-convention attributes plus `triage.*` decision attributes) and
//! POSTs them in batches — every [`EXPORT_INTERVAL`] or [`MAX_BATCH`] spans, whichever comes
//! first — from its own task. A collector that is down or slow never delays a request: its
//! batch is dropped with a warning; summaries the exporter fell too far behind on are skipped
//! and counted. On shutdown ([`OtlpExporter::finish`]) the last batch is sent.
//!
//! Hand-written OTLP/JSON over the `reqwest` client the tree already builds, rather than the
//! `opentelemetry` + `opentelemetry-otlp` crates: the span is fixed (no instrumentation
//! library is needed to make it), OTLP/JSON is a stable wire format, and the crates would add
//! a protobuf/SDK stack to a build that already takes many minutes on the 2-core target
//! machine (ARCHITECTURE.md).

pub mod otlp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BackendSpec, Config, RemoteProvider};
use crate::events::{EventBus, RequestSummary};

/// How often a partial batch is sent.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The most spans one POST carries.
pub const MAX_BATCH: usize = 512;
/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("OTLP exporter: cannot build the HTTP client: {0}")]
    Client(String),
    /// There is no tokio runtime to run the exporter on.
    #[error("OTLP exporter: no tokio runtime to run on")]
    NoRuntime,
}

/// What a span says about a backend: its provider (`gen_ai.system`) and the model it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// `openai`, `anthropic`, or `llama.cpp` for a local model.
    pub system: String,
    /// The upstream model id, or the local model's file stem.
    pub model: String,
}

/// Provider and model of every backend of `config`, by name.
pub fn backend_info(config: &Config) -> BTreeMap<String, BackendInfo> {
    config
        .backends
        .iter()
        .map(|(name, spec)| {
            let info = match spec {
                BackendSpec::Remote(r) => BackendInfo {
                    system: match r.provider {
                        RemoteProvider::OpenAi => "openai",
                        RemoteProvider::Anthropic => "anthropic",
                    }
                    .into(),
                    model: r.config.model.clone(),
                },
                BackendSpec::Classifier(c) => BackendInfo {
                    system: "llama.cpp".into(),
                    model: c
                        .encoder
                        .model_path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| name.clone()),
                },
                BackendSpec::Embedding(e) => BackendInfo {
                    system: "llama.cpp".into(),
                    model: e
                        .model_path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| name.clone()),
                },
                BackendSpec::Local(l) => BackendInfo {
                    system: "llama.cpp".into(),
                    model: l
                        .model_path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| name.clone()),
                },
            };
            (name.clone(), info)
        })
        .collect()
}

/// The running exporter task.
#[derive(Debug)]
pub struct OtlpExporter {
    task: JoinHandle<()>,
    stop: CancellationToken,
}

/// What the exporter task holds.
struct Export {
    client: reqwest::Client,
    url: String,
    service_name: String,
    backends: BTreeMap<String, BackendInfo>,
}

impl OtlpExporter {
    /// Export the summaries published on `events` to `endpoint` (a collector base URL such as
    /// `http://127.0.0.1:4318`, or its full `/v1/traces` URL) until [`OtlpExporter::finish`].
    pub fn spawn(
        endpoint: &str,
        service_name: &str,
        backends: BTreeMap<String, BackendInfo>,
        events: &EventBus,
    ) -> Result<OtlpExporter, TelemetryError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Client(e.to_string()))?;
        let export = Export {
            client,
            url: traces_url(endpoint),
            service_name: service_name.to_string(),
            backends,
        };
        let stop = CancellationToken::new();
        let task = runtime.spawn(run(export, events.subscribe(), stop.clone()));
        Ok(OtlpExporter { task, stop })
    }

    /// Send what is still queued and stop, waiting at most `within`.
    pub async fn finish(self, within: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(within, self.task).await.is_err() {
            tracing::warn!("OTLP exporter: the last batch was not sent within {within:?}");
        }
    }
}

/// The collector's traces URL: `…/v1/traces` as given, else appended to the base URL.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

async fn run(
    export: Export,
    mut rx: tokio::sync::broadcast::Receiver<Arc<RequestSummary>>,
    stop: CancellationToken,
) {
    let mut batch: Vec<Arc<RequestSummary>> = Vec::new();
    let mut tick = tokio::time::interval(EXPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(summary) => {
                    batch.push(summary);
                    if batch.len() >= MAX_BATCH {
                        export.send(std::mem::take(&mut batch)).await;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "OTLP exporter fell behind: spans of {skipped} requests not exported");
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    export.send(std::mem::take(&mut batch)).await;
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    // What arrived before the stop: sent in one last round of batches.
    while let Ok(summary) = rx.try_recv() {
        batch.push(summary);
    }
    for chunk in batch.chunks(MAX_BATCH) {
        export.send(chunk.to_vec()).await;
    }
}

impl Export {
    async fn send(&self, batch: Vec<Arc<RequestSummary>>) {
        let spans: Vec<serde_json::Value> = batch
            .iter()
            .map(|s| otlp::span(s, &self.backends, &otlp::SpanIds::random()))
            .collect();
        let body = otlp::export_request(&self.service_name, spans);
        let sent = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(
                url = %self.url,
                status = r.status().as_u16(),
                spans = batch.len(),
                "OTLP collector refused a batch of spans; dropped"
            ),
            Err(e) => tracing::warn!(
                url = %self.url,
                error = %e,
                spans = batch.len(),
                "OTLP collector unreachable; batch of spans dropped"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
