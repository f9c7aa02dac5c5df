//! Cost: the pricing table shipped with triage (USD per 1M input/output tokens for common
//! OpenAI, Anthropic, Google, Mistral, Groq and Together models, generated from LiteLLM's MIT
//! price list into `router/data/pricing.json` by `examples/gen_pricing.rs`), per-backend
//! prices resolved from it or overridden in config, and per-request cost and savings.
//!
//! Remote cost is tokens × price. Local cost is the machine's $/hour × the engine seconds the
//! request was attributed (its share of batched decode steps). "Saved" is what the reference
//! LLM would have cost for the same tokens minus what the request actually cost, so a request
//! the reference answered saves 0 and an escalated cascade can save a negative amount.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The table as checked in (see `router/data/SOURCE.md`).
const SHIPPED: &str = include_str!("../data/pricing.json");

/// USD per 1M tokens for one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// LiteLLM's provider name (`openai`, `anthropic`, `gemini`, …).
    pub provider: String,
    /// USD per 1M input (prompt) tokens.
    pub input: f64,
    /// USD per 1M output (completion) tokens.
    pub output: f64,
}

/// The shipped price table (`router/data/pricing.json`): model id → price, with its provenance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// The prices' unit (`USD per 1M tokens`).
    pub unit: String,
    /// Which LiteLLM file and version the prices were generated from.
    pub source: String,
    /// The source's license and copyright.
    pub license: String,
    /// SHA-256 of the source file, to check a regeneration against.
    pub source_sha256: String,
    /// Prices by model id (LiteLLM's key, some with a `provider/` prefix).
    pub models: BTreeMap<String, ModelPrice>,
}

/// Why the price table is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// The table compiled into the binary does not parse (a build defect, not a config error).
    #[error("the shipped pricing table is not valid JSON: {0}")]
    BadTable(String),
}

impl PriceTable {
    /// The table shipped inside the binary (parsed once).
    pub fn shipped() -> Result<&'static PriceTable, PricingError> {
        static TABLE: OnceLock<Result<PriceTable, String>> = OnceLock::new();
        TABLE
            .get_or_init(|| serde_json::from_str(SHIPPED).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| PricingError::BadTable(e.clone()))
    }

    /// Find a model by its id as a backend config names it: exact, then with the provider
    /// prefix LiteLLM uses (`gemini/`, `mistral/`, `groq/`, `together_ai/`), then without one.
    pub fn lookup(&self, model: &str, provider_hint: Option<&str>) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        let prefixes: &[&str] = match provider_hint {
            Some(hint) => &[hint][..],
            None => &["gemini", "mistral", "groq", "together_ai"][..],
        };
        for prefix in prefixes {
            if let Some(p) = self.models.get(&format!("{prefix}/{model}")) {
                return Some(p);
            }
        }
        model
            .split_once('/')
            .and_then(|(_, rest)| self.models.get(rest))
    }
}

/// Prices to turn a request into dollars: per million input/output tokens (remote APIs) or
/// machine dollars per hour times the seconds the request kept the machine busy (local models).
///
/// Written as `{input_per_mtok, output_per_mtok}` (a missing or zero price is left out) or
/// `{usd_per_hour}`, as the harness's suite files and run metadata hold it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(into = "PriceFields", try_from = "PriceFields")]
#[schemars(
    rename = "Price",
    description = "Prices to turn a request into dollars: per million input/output tokens (remote APIs) or\nmachine dollars per hour times the request's end-to-end seconds (local models), not both."
)]
pub enum BackendPrice {
    /// A remote API: USD per 1M tokens.
    PerToken {
        /// USD per 1M input (prompt) tokens.
        input: f64,
        /// USD per 1M output (completion) tokens.
        output: f64,
    },
    /// A local engine: the machine's cost per hour, charged by engine-busy seconds.
    Machine {
        /// What the machine costs per hour, USD.
        usd_per_hour: f64,
    },
}

/// The written form of a [`BackendPrice`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PriceFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usd_per_hour: Option<f64>,
}

impl From<BackendPrice> for PriceFields {
    fn from(price: BackendPrice) -> Self {
        let given = |v: f64| (v != 0.0).then_some(v);
        match price {
            BackendPrice::PerToken { input, output } => PriceFields {
                input_per_mtok: given(input),
                output_per_mtok: given(output),
                usd_per_hour: None,
            },
            BackendPrice::Machine { usd_per_hour } => PriceFields {
                usd_per_hour: Some(usd_per_hour),
                ..PriceFields::default()
            },
        }
    }
}

impl TryFrom<PriceFields> for BackendPrice {
    type Error = &'static str;

    fn try_from(f: PriceFields) -> Result<Self, Self::Error> {
        match (f.input_per_mtok, f.output_per_mtok, f.usd_per_hour) {
            (None, None, Some(usd_per_hour)) => Ok(BackendPrice::Machine { usd_per_hour }),
            (_, _, Some(_)) => Err("a price is per token (`input_per_mtok`, `output_per_mtok`) or per hour (`usd_per_hour`), not both"),
            (input, output, None) => Ok(BackendPrice::PerToken {
                input: input.unwrap_or(0.0),
                output: output.unwrap_or(0.0),
            }),
        }
    }
}

impl BackendPrice {
    /// USD for one call: tokens × per-token price, or busy seconds × the machine's hourly price.
    pub fn cost(&self, tokens_in: u64, tokens_out: u64, engine_busy_secs: f64) -> f64 {
        match self {
            BackendPrice::PerToken { input, output } => {
                (tokens_in as f64 * input + tokens_out as f64 * output) / 1e6
            }
            BackendPrice::Machine { usd_per_hour } => usd_per_hour * engine_busy_secs / 3600.0,
        }
    }

    /// What these tokens would cost at this price if it is per token (machine prices need
    /// seconds, which a counterfactual does not have).
    fn token_cost(&self, tokens_in: u64, tokens_out: u64) -> Option<f64> {
        match self {
            BackendPrice::PerToken { .. } => Some(self.cost(tokens_in, tokens_out, 0.0)),
            BackendPrice::Machine { .. } => None,
        }
    }
}

/// What one backend's part of a request used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Prompt tokens of the call.
    pub tokens_in: u64,
    /// Completion tokens of the call.
    pub tokens_out: u64,
    /// Seconds the local engine spent on the call (its share of batched steps); 0 for remote.
    pub engine_busy_secs: f64,
}

/// Cost of one request and what it saved against the reference LLM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CostBreakdown {
    /// What the request cost, USD, every call it made included.
    pub cost_usd: f64,
    /// What the reference backend would have charged for the request's tokens.
    pub reference_usd: f64,
    /// `reference_usd - cost_usd` (0 when no reference backend is configured).
    pub saved_usd: f64,
}

/// Prices per backend plus the reference backend that "saved" is measured against.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CostModel {
    /// Price of every configured backend, by name.
    pub prices: BTreeMap<String, BackendPrice>,
    /// The remote backend savings are measured against (`reference_backend`, or the only remote).
    pub reference: Option<String>,
}

impl CostModel {
    /// Cost of one backend call (0 for a backend without a price: config validation makes
    /// sure every configured backend has one).
    pub fn cost(&self, backend: &str, usage: &Usage) -> f64 {
        self.prices
            .get(backend)
            .map(|p| p.cost(usage.tokens_in, usage.tokens_out, usage.engine_busy_secs))
            .unwrap_or(0.0)
    }

    /// Cost of a whole request that may have tried several backends (a cascade, fallbacks).
    /// The reference cost counts the tokens of the call that produced the answer (the last).
    pub fn breakdown(&self, calls: &[(&str, Usage)]) -> CostBreakdown {
        let cost_usd: f64 = calls.iter().map(|(b, u)| self.cost(b, u)).sum();
        let reference_usd = match (calls.last(), &self.reference) {
            (Some((_, u)), Some(r)) => self
                .prices
                .get(r)
                .and_then(|p| p.token_cost(u.tokens_in, u.tokens_out))
                .unwrap_or(0.0),
            _ => 0.0,
        };
        CostBreakdown {
            cost_usd,
            reference_usd,
            // Without a reference backend there is nothing to have saved against.
            saved_usd: if self.reference.is_some() {
                reference_usd - cost_usd
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_has_each_provider_and_known_prices() {
        let t = PriceTable::shipped().unwrap();
        for provider in [
            "openai",
            "anthropic",
            "gemini",
            "mistral",
            "groq",
            "together_ai",
        ] {
            assert!(
                t.models.values().any(|m| m.provider == provider),
                "no {provider} models"
            );
        }
        let mini = t.lookup("gpt-4o-mini", None).unwrap();
        assert_eq!((mini.input, mini.output), (0.15, 0.6));
        assert!(t.lookup("mistral-small-latest", None).is_some());
        assert!(t.lookup("no-such-model", None).is_none());
    }

    #[test]
    fn backend_price_is_written_per_token_or_per_hour() {
        let remote = BackendPrice::PerToken {
            input: 0.15,
            output: 0.6,
        };
        let local = BackendPrice::Machine { usd_per_hour: 0.05 };
        let free = BackendPrice::PerToken {
            input: 0.0,
            output: 0.0,
        };
        for (price, json) in [
            (remote, r#"{"input_per_mtok":0.15,"output_per_mtok":0.6}"#),
            (local, r#"{"usd_per_hour":0.05}"#),
            (free, "{}"),
        ] {
            assert_eq!(serde_json::to_string(&price).unwrap(), json);
            assert_eq!(serde_json::from_str::<BackendPrice>(json).unwrap(), price);
        }
        let output_only: BackendPrice = serde_json::from_str(r#"{"output_per_mtok":2}"#).unwrap();
        assert_eq!(output_only.cost(1_000_000, 1_000_000, 0.0), 2.0);
        let both = r#"{"input_per_mtok":1,"usd_per_hour":1}"#;
        assert!(serde_json::from_str::<BackendPrice>(both).is_err());
        assert!(serde_json::from_str::<BackendPrice>(r#"{"per_hour":1}"#).is_err());
    }

    #[test]
    fn cost_and_saved() {
        let mut prices = BTreeMap::new();
        prices.insert(
            "llm".to_string(),
            BackendPrice::PerToken {
                input: 0.15,
                output: 0.60,
            },
        );
        prices.insert(
            "slm".to_string(),
            BackendPrice::Machine { usd_per_hour: 0.36 },
        );
        let m = CostModel {
            prices,
            reference: Some("llm".into()),
        };
        let u = Usage {
            tokens_in: 1_000_000,
            tokens_out: 500_000,
            engine_busy_secs: 10.0,
        };
        let local = m.breakdown(&[("slm", u.clone())]);
        assert!((local.cost_usd - 0.001).abs() < 1e-12);
        assert!((local.reference_usd - 0.45).abs() < 1e-12);
        assert!((local.saved_usd - 0.449).abs() < 1e-12);
        let remote = m.breakdown(&[("llm", u.clone())]);
        assert!((remote.cost_usd - 0.45).abs() < 1e-12);
        assert!(remote.saved_usd.abs() < 1e-12);
        let escalated = m.breakdown(&[("slm", u.clone()), ("llm", u.clone())]);
        assert!(escalated.saved_usd < 0.0);
        let no_reference = CostModel {
            reference: None,
            ..m
        };
        assert_eq!(no_reference.breakdown(&[("slm", u)]).saved_usd, 0.0);
    }
}
