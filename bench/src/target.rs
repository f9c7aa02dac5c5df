//! Targets: what the harness sends requests to.
//!
//! A [`Target`] answers a [`ChatRequest`] with a stream of timestamped [`backends::ChatEvent`]s
//! plus whatever routing information came with it. [`BackendTarget`] wraps any
//! [`backends::Backend`] (the local engine, a remote API, [`crate::replay::ReplayBackend`], a
//! test double); a gateway reached over HTTP reports its decision in response headers
//! (`x-triage-backend`, `x-triage-route`, `x-triage-escalated`, `x-triage-cost-usd`, named in
//! [`router::headers`]), parsed by [`Routing::from_headers`]. A streamed answer's cost is known
//! only at its end: the gateway sends it in the usage chunk's `triage` object, which
//! [`Routing::settle`] folds in, so the recorded cost is the settled one. A target's price is
//! the router's [`BackendPrice`]. The trait is object-safe so one run can hold targets of
//! different kinds; [`crate::router_target::RouterTarget`] is the gateway built in-process.

use std::future::Future;
use std::pin::Pin;

use backends::{Backend, BackendError, ChatRequest, EventStream};
use router::pricing::BackendPrice;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a routed request went and why, as a gateway reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Routing {
    /// The gateway backend that produced the answer (a backend name from its `triage.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The name of the route the request matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Whether a cascade escalated the request from its first backend to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated: Option<bool>,
    /// Cost the gateway charged for this request, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Routing {
    /// Read triage's routing headers (names case-insensitive); unknown headers are ignored.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Routing {
        let mut r = Routing::default();
        for (name, value) in headers {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                router::headers::BACKEND => r.backend = Some(value.to_string()),
                router::headers::ROUTE => r.route = Some(value.to_string()),
                router::headers::ESCALATED => {
                    r.escalated = match value.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" => Some(true),
                        "false" | "0" | "no" => Some(false),
                        _ => None,
                    }
                }
                router::headers::COST => {
                    r.cost_usd = value.parse().ok().filter(|v: &f64| v.is_finite())
                }
                _ => {}
            }
        }
        r
    }

    /// Fold in a gateway's end-of-stream `triage` object (`backend`, `route`, `escalated`,
    /// `cost_usd`; see [`backends::openai::TRIAGE_USAGE_KEY`]): what it says is final and
    /// replaces what the headers said before the answer was settled.
    pub fn settle(&mut self, triage: &serde_json::Value) {
        let text = |k: &str| triage.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if let Some(b) = text("backend") {
            self.backend = Some(b);
        }
        if let Some(r) = text("route") {
            self.route = Some(r);
        }
        if let Some(e) = triage.get("escalated").and_then(|v| v.as_bool()) {
            self.escalated = Some(e);
        }
        if let Some(c) = triage
            .get("cost_usd")
            .and_then(|v| v.as_f64())
            .filter(|c| c.is_finite())
        {
            self.cost_usd = Some(c);
        }
    }

    /// Whether the gateway reported nothing (a plain backend's reply); such routing is not written.
    pub fn is_empty(&self) -> bool {
        *self == Routing::default()
    }
}

/// What a target answered with.
pub struct TargetReply {
    /// The answer's stream of timestamped events.
    pub events: EventStream,
    /// What a gateway reported about the request (headers, then the settled usage chunk).
    pub routing: Routing,
}

/// What the run metadata says about a target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// Target name (`NAME` of `--target NAME=SPEC`): the run's column in results and comparisons.
    pub name: String,
    /// `llama`, `openai`, `replay`, `mock`, …
    pub kind: String,
    /// The spec it was built from (never holds secrets: keys come from environment variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Local model files, hashed into the run metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_files: Vec<std::path::PathBuf>,
    /// Price used to compute `cost_usd` of its requests; `None` leaves them unpriced unless a
    /// gateway reports its own cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<BackendPrice>,
}

/// What [`Target::send`] returns: the reply once the response has started.
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TargetReply, BackendError>> + Send + 'a>>;

/// What [`Target::close`] returns.
pub type CloseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Something the harness sends requests to.
pub trait Target: Send + Sync {
    /// The target's name, as in [`TargetInfo::name`].
    fn name(&self) -> &str;
    /// What the run metadata records about the target.
    fn info(&self) -> TargetInfo;
    /// Send one request; the stream's events carry the instants they were born at.
    fn send(&self, request: ChatRequest) -> SendFuture<'_>;
    /// Release what the target holds (an in-process gateway's models, its ledger writer) once
    /// the run no longer needs it; later sends fail. Most targets hold nothing to release.
    fn close(&self) -> CloseFuture<'_> {
        Box::pin(async {})
    }
}

/// Any [`Backend`] as a target.
pub struct BackendTarget<B> {
    /// The backend requests are sent to.
    pub backend: B,
    /// Name, kind and price reported for this target.
    pub info: TargetInfo,
}

impl<B: Backend> BackendTarget<B> {
    /// A target named `name` of kind `kind` (e.g. `llama`, `replay`), unpriced.
    pub fn new(name: impl Into<String>, kind: impl Into<String>, backend: B) -> Self {
        Self {
            backend,
            info: TargetInfo {
                name: name.into(),
                kind: kind.into(),
                ..TargetInfo::default()
            },
        }
    }

    /// Set the price its requests are billed at (`None`: unpriced).
    pub fn with_price(mut self, price: Option<BackendPrice>) -> Self {
        self.info.price = price;
        self
    }
}

impl<B: Backend + 'static> Target for BackendTarget<B> {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn info(&self) -> TargetInfo {
        self.info.clone()
    }

    fn send(&self, request: ChatRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let events = self.backend.chat_stream(request).await?;
            Ok(TargetReply {
                events,
                routing: Routing::default(),
            })
        })
    }
}

/// An OpenAI-compatible endpoint (OpenAI itself, or a running `triage serve`) as a target:
/// like [`BackendTarget`] over [`backends::openai::OpenAiBackend`], and it also reads the
/// gateway's routing headers from each response.
pub struct OpenAiTarget {
    /// The OpenAI-compatible client requests go through.
    pub backend: backends::openai::OpenAiBackend,
    /// Name, kind, spec and price reported for this target.
    pub info: TargetInfo,
    /// Drop the request's `metadata` (the scenario and task the harness tags requests with for
    /// a triage gateway). OpenAI's own API refuses `metadata` unless `store` is on.
    pub strip_metadata: bool,
}

impl Target for OpenAiTarget {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn info(&self) -> TargetInfo {
        self.info.clone()
    }

    fn send(&self, mut request: ChatRequest) -> SendFuture<'_> {
        Box::pin(async move {
            if self.strip_metadata {
                request.metadata = None;
            }
            let (events, headers) = self.backend.chat_stream_with_headers(request).await?;
            Ok(TargetReply {
                events,
                routing: Routing::from_headers(
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_headers_parse() {
        use router::headers;
        let upper = headers::BACKEND.to_ascii_uppercase();
        let r = Routing::from_headers([
            (upper.as_str(), "slm"),
            (headers::ROUTE, "cascade"),
            (headers::ESCALATED, "true"),
            (headers::COST, "0.000123"),
            ("content-type", "text/event-stream"),
        ]);
        assert_eq!(r.backend.as_deref(), Some("slm"));
        assert_eq!(r.route.as_deref(), Some("cascade"));
        assert_eq!(r.escalated, Some(true));
        assert_eq!(r.cost_usd, Some(0.000123));
        assert!(Routing::from_headers([(headers::COST, "NaN")]).is_empty());
    }

    #[test]
    fn the_settled_triage_object_replaces_the_headers() {
        let mut r = Routing::from_headers([(router::headers::ROUTE, "qa")]);
        r.settle(&serde_json::json!({
            "backend": "llm", "route": "qa", "escalated": true, "cost_usd": 0.00042, "saved_usd": 0.0
        }));
        assert_eq!(r.backend.as_deref(), Some("llm"));
        assert_eq!(r.escalated, Some(true));
        assert_eq!(r.cost_usd, Some(0.00042));
        let mut untouched = r.clone();
        untouched.settle(&serde_json::json!({"cost_usd": "free"}));
        assert_eq!(untouched, r, "a malformed field changes nothing");
    }
}
