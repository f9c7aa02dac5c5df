//! `triage.yaml` as written: the structs `serde_yaml` deserializes, before any validation.
//!
//! Every struct rejects unknown fields, so a typo is an error rather than a silently ignored key.
//! A backend is a `kind`-tagged enum whose variants take only their own kind's fields: a llama
//! backend with a `base_url`, or an openai one with `slots`, fails here and not in validation.
//!
//! serde reads an internally tagged enum by buffering the whole mapping and then deserializing
//! the variant from the buffer, so an error inside a backend is reported at the backend (path
//! `backends.NAME`) rather than at the field. [`refine_backend_error`] reads that one backend
//! again, this time tracking paths, to name the field and its line, and says which kind an
//! out-of-place field belongs to.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::locate::{Locator, YamlError};

/// `triage.yaml`: the backends, the routes between them, prices and budgets of a triage gateway.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "triage.yaml")]
pub(super) struct RawConfig {
    /// The listener, API keys, ledger and transport limits.
    #[serde(default)]
    pub(super) server: RawServer,
    /// The models requests can go to, by name (`kind: llama`, `openai` or `anthropic`).
    pub(super) backends: BTreeMap<String, RawBackend>,
    /// Prices by backend name: USD per 1M tokens, or the machine's USD per hour for local ones.
    #[serde(default)]
    pub(super) pricing: BTreeMap<String, RawPrice>,
    /// The backend savings are measured against (default: the priciest remote one).
    #[serde(default)]
    pub(super) reference_backend: Option<String>,
    /// The routing rules, in order: the first whose `when` matches decides; the last must
    /// match every request.
    pub(super) routes: Vec<RawRoute>,
    /// Spending limits, global, per key and per tenant.
    #[serde(default)]
    pub(super) budgets: Option<RawBudgets>,
    /// The task classifier (`when.task`).
    #[serde(default)]
    pub(super) classifier: Option<RawClassifier>,
    /// The PII detector (`when.pii`).
    #[serde(default)]
    pub(super) pii: Option<RawPii>,
    /// `redis://host:port/db`: budgets and rate limits shared by replicas.
    #[serde(default)]
    pub(super) store: Option<String>,
    /// `fail_closed` (default) or `fail_open`: what admission does while `store` is unreachable.
    #[serde(default)]
    pub(super) store_failure: Option<String>,
    #[serde(default)]
    pub(super) rate_limits: Option<RawRateLimits>,
    /// Where request spans are exported (OTLP/HTTP).
    #[serde(default)]
    pub(super) telemetry: Option<RawTelemetry>,
}

/// `telemetry:` — where request spans are exported (validated in `validate/mod.rs`).
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub(super) otlp_endpoint: Option<String>,
    pub(super) service_name: Option<String>,
}

/// `rate_limits:` — per API key, requests and tokens per minute.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimits {
    pub(super) per_key: Option<RawRate>,
    pub(super) tenants: Option<BTreeMap<String, RawRate>>,
}

#[derive(Deserialize, Default, Clone, Copy, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    pub(super) requests_per_minute: Option<u64>,
    pub(super) tokens_per_minute: Option<u64>,
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// Address and port, e.g. `127.0.0.1:8080` (the default).
    pub(super) listen: Option<String>,
    /// Environment variable holding the API keys (`key` or `tenant:key`, comma separated);
    /// unset: no authentication (loopback only).
    pub(super) api_keys_env: Option<String>,
    /// `/metrics` asks for an API key too.
    pub(super) metrics_require_key: Option<bool>,
    /// Largest request body, bytes (default 4 MiB).
    pub(super) body_limit_bytes: Option<usize>,
    /// Longest a chat request may take (default 300 s).
    pub(super) request_timeout: Option<RawDuration>,
    /// The SQLite ledger file, relative to this file (default `triage-ledger.sqlite`).
    pub(super) ledger: Option<String>,
    /// Tenants whose keys see every tenant's requests on `/v1/triage/events`.
    pub(super) admin_tenants: Option<Vec<String>>,
    /// Browser origins allowed by CORS (`https://app.example.com`).
    pub(super) cors_allow_origins: Option<Vec<String>>,
    // Transport limits (validated in `validate/transport.rs`).
    pub(super) header_read_timeout: Option<RawDuration>,
    pub(super) body_read_timeout: Option<RawDuration>,
    pub(super) idle_timeout: Option<RawDuration>,
    pub(super) write_timeout: Option<RawDuration>,
    pub(super) shutdown_grace: Option<RawDuration>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_in_flight: Option<usize>,
}

/// One backend, by `kind`.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(super) enum RawBackend {
    Llama(RawLlama),
    Openai(RawRemote),
    Anthropic(RawRemote),
    Embedding(RawEmbedding),
    Classifier(RawClassifierBackend),
}

/// The fields of a `kind: classifier` backend (besides `kind`), as [`RawClassifierBackend`] declares
/// them.
const CLASSIFIER_FIELDS: &[&str] = &[
    "model",
    "heads",
    "threads",
    "max_input_tokens",
    "batch_tokens",
    "max_sequences",
    "queue",
];

/// An encoder classifier: a sentence-embedding GGUF and trained heads (`triage route train
/// --head embedding`) answering `choices` requests without generating text.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassifierBackend {
    /// The sentence-embedding GGUF the heads were trained on, relative to the config file.
    pub(super) model: Option<String>,
    /// Head files by the task they answer (`sentiment: models/heads/sentiment.json`), relative
    /// to the config file.
    pub(super) heads: Option<BTreeMap<String, String>>,
    /// Encoder threads (default 1).
    pub(super) threads: Option<i32>,
    pub(super) max_input_tokens: Option<u32>,
    pub(super) batch_tokens: Option<u32>,
    pub(super) max_sequences: Option<u32>,
    pub(super) queue: Option<usize>,
}

/// The fields of a `kind: embedding` backend (besides `kind`), as [`RawEmbedding`] declares them.
const EMBEDDING_FIELDS: &[&str] = &[
    "model",
    "threads",
    "max_input_tokens",
    "batch_tokens",
    "max_sequences",
    "queue",
];

/// A local sentence-embedding model (a BERT-family encoder in GGUF) for `/v1/embeddings`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmbedding {
    /// GGUF path, relative to the config file.
    pub(super) model: Option<String>,
    pub(super) threads: Option<i32>,
    pub(super) max_input_tokens: Option<u32>,
    pub(super) batch_tokens: Option<u32>,
    pub(super) max_sequences: Option<u32>,
    pub(super) queue: Option<usize>,
}

/// The fields of a `kind: llama` backend (besides `kind`), as [`RawLlama`] declares them.
const LLAMA_FIELDS: &[&str] = &[
    "model",
    "slots",
    "threads",
    "threads_batch",
    "context",
    "batch_size",
    "queue",
    "chat_template",
    "completion_mode",
    "flash_attention",
    "score_lanes",
    "prompt_cache",
];

/// The fields of a remote backend (besides `kind`), as [`RawRemote`] declares them.
const REMOTE_FIELDS: &[&str] = &[
    "model",
    "base_url",
    "api_key_env",
    "headers",
    "timeouts",
    "retry",
    "extensions",
];

/// A local llama.cpp engine.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLlama {
    /// GGUF path, relative to the config file.
    pub(super) model: Option<String>,
    pub(super) slots: Option<usize>,
    pub(super) threads: Option<i32>,
    pub(super) threads_batch: Option<i32>,
    pub(super) context: Option<u32>,
    pub(super) batch_size: Option<u32>,
    pub(super) queue: Option<usize>,
    pub(super) chat_template: Option<String>,
    /// `auto` (default), `on` or `off`; `true`/`false` as well (it was a boolean).
    pub(super) completion_mode: Option<RawSwitch>,
    pub(super) flash_attention: Option<String>,
    pub(super) score_lanes: Option<usize>,
    /// Reuse the KV cells of a prompt prefix shared with an earlier request (default false).
    pub(super) prompt_cache: Option<bool>,
}

/// A setting written as a word (`auto`, `on`, `off`) or as a YAML boolean.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub(super) enum RawSwitch {
    Bool(bool),
    Word(String),
}

/// A remote API (`kind: openai` or `kind: anthropic`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemote {
    /// The upstream model id.
    pub(super) model: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) api_key_env: Option<String>,
    pub(super) headers: Option<BTreeMap<String, String>>,
    pub(super) timeouts: Option<RawTimeouts>,
    pub(super) retry: Option<RawRetry>,
    /// `triage` when the upstream is another `triage serve` (it then receives `choices` as
    /// the extension field); `none` (the default) emulates `choices` with a JSON schema.
    pub(super) extensions: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub(super) connect: Option<RawDuration>,
    pub(super) first_byte: Option<RawDuration>,
    pub(super) idle: Option<RawDuration>,
    pub(super) total: Option<RawDuration>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub(super) max_attempts: Option<u32>,
    pub(super) initial_backoff: Option<RawDuration>,
    pub(super) max_backoff: Option<RawDuration>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    pub(super) input: Option<f64>,
    pub(super) output: Option<f64>,
    pub(super) model: Option<String>,
    pub(super) machine_usd_per_hour: Option<f64>,
}

/// A route. Its action is `to` or `cascade`; serde cannot express "exactly one of two fields"
/// next to shared ones without losing `deny_unknown_fields` (flatten) or readable errors
/// (untagged), so validation checks it, with the position of the offending field.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    /// The route's name (in responses' `x-triage-route` and the ledger).
    pub(super) name: String,
    /// Conditions, all of which must hold; absent: every request matches.
    pub(super) when: Option<RawWhen>,
    /// The backend that answers (exactly one of `to` and `cascade`).
    pub(super) to: Option<String>,
    /// Try a local backend first and escalate when its answer is not confident enough.
    pub(super) cascade: Option<RawCascade>,
    /// Backends tried in order when `to` fails.
    pub(super) fallback: Option<Vec<String>>,
    /// Send to another backend when the local one is overloaded.
    pub(super) spill: Option<RawSpill>,
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWhen {
    /// The request's task (header `x-triage-task`, metadata, or the classifier), one or a list.
    pub(super) task: Option<StringList>,
    /// Whether the request holds personal data (the privacy rule: local backends only).
    pub(super) pii: Option<bool>,
    /// Prompt size bounds, tokens.
    pub(super) prompt_tokens: Option<RawRange>,
    /// A regular expression the request's text matches.
    pub(super) content: Option<String>,
    /// The `model` the client sent, one or a list.
    pub(super) model: Option<StringList>,
    /// The tenant of the API key, one or a list.
    pub(super) tenant: Option<StringList>,
    /// Whether the request carries `tools`.
    pub(super) tools: Option<bool>,
    /// Whether the request streams.
    pub(super) stream: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    pub(super) min: Option<usize>,
    pub(super) max: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCascade {
    pub(super) first: String,
    pub(super) escalate_to: String,
    /// `confidence | p_chosen | margin | mean_logprob | min_logprob`, with `threshold`.
    pub(super) signal: Option<String>,
    pub(super) threshold: Option<f64>,
    /// Legacy spelling of `signal: confidence, threshold: X`.
    pub(super) min_confidence: Option<f64>,
    pub(super) min_token_logprob: Option<f64>,
    pub(super) accept_if_constrained: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpill {
    pub(super) to: String,
    pub(super) queue_depth: Option<usize>,
    pub(super) predicted_ttft_ms: Option<f64>,
}

#[derive(Deserialize, Default, Clone, Copy, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) daily_usd: Option<f64>,
    pub(super) monthly_usd: Option<f64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudgets {
    /// Remote spend allowed per UTC day, USD (all tenants).
    pub(super) daily_usd: Option<f64>,
    /// Remote spend allowed per UTC month, USD (all tenants).
    pub(super) monthly_usd: Option<f64>,
    /// Limits each API key (tenant) gets unless `tenants` names it.
    pub(super) per_key: Option<RawLimits>,
    /// Limits by tenant name.
    pub(super) tenants: Option<BTreeMap<String, RawLimits>>,
    /// The local backend requests go to once a budget is spent (else they are refused).
    pub(super) on_exhausted: Option<String>,
    /// Output tokens reserved for a request without `max_tokens`.
    pub(super) default_max_tokens: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassifier {
    /// `ngram` (default: hashed n-grams, `model` from `triage route train`) or `embedding` (a
    /// task head over `encoder`'s sentence vectors, from `triage route train --head embedding
    /// --task-classifier`).
    pub(super) kind: Option<String>,
    pub(super) model: Option<String>,
    /// With `kind: embedding`: the sentence-encoder GGUF the head was trained on.
    pub(super) encoder: Option<String>,
    pub(super) threshold: Option<f32>,
    #[serde(default)]
    pub(super) rules: Vec<RawTaskRule>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaskRule {
    pub(super) name: Option<String>,
    pub(super) task: String,
    #[serde(default)]
    pub(super) keywords: Vec<String>,
    pub(super) regex: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPii {
    pub(super) detect: Option<Vec<String>>,
    /// `local` (default) or `refuse`: what the privacy rule does with images, audio, files.
    pub(super) non_text: Option<String>,
    #[serde(default)]
    pub(super) patterns: Vec<RawPattern>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPattern {
    pub(super) name: String,
    pub(super) regex: String,
}

/// One string or a list of strings.
pub(super) struct StringList(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: seconds as a number, or a string such as `500ms`, `30s`, `2m`.
#[derive(Clone, Copy)]
pub(super) struct RawDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds, or a string like \"500ms\", \"30s\", \"2m\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                u64::try_from(v)
                    .map(|v| RawDuration(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Duration::try_from_secs_f64(v)
                    .map(RawDuration)
                    .map_err(|e| E::custom(format!("bad duration {v}: {e}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                humantime::parse_duration(v)
                    .map(RawDuration)
                    .map_err(|e| E::custom(format!("bad duration {v:?}: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An error reported at a backend as a whole (path `backends.NAME`), made precise: the backend's
/// mapping is deserialized again as its kind's variant with paths tracked, so the error names
/// the field inside it and that field's position. A field of another kind says which kind it
/// belongs to. Any other error is returned as it was.
pub(super) fn refine_backend_error(text: &str, locator: &Locator, error: YamlError) -> YamlError {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return error;
    };
    let Some(backends) = doc.get("backends").and_then(serde_yaml::Value::as_mapping) else {
        return error;
    };
    // The backend the error is in (the locator may already have appended an unknown field's
    // name to the path); names may hold dots, so the longest match wins.
    let within = |name: &serde_yaml::Value| {
        let prefix = format!("backends.{}", name.as_str()?);
        let rest = error.path.strip_prefix(&prefix)?;
        (rest.is_empty() || rest.starts_with('.')).then_some(prefix.len())
    };
    let Some((prefix_len, serde_yaml::Value::Mapping(fields))) = backends
        .iter()
        .filter_map(|(name, value)| within(name).map(|len| (len, value)))
        .max_by_key(|(len, _)| *len)
    else {
        return error;
    };
    let backend_path = error.path[..prefix_len].to_string();
    let Some(kind) = fields.get("kind").and_then(serde_yaml::Value::as_str) else {
        return error;
    };
    let mut body = fields.clone();
    body.remove("kind");
    let body = serde_yaml::Value::Mapping(body);
    let (result, other_kind, other_fields) = match kind {
        "llama" => (
            serde_path_to_error::deserialize::<_, RawLlama>(body).map(drop),
            "openai or anthropic",
            REMOTE_FIELDS,
        ),
        "openai" | "anthropic" => (
            serde_path_to_error::deserialize::<_, RawRemote>(body).map(drop),
            "llama",
            LLAMA_FIELDS,
        ),
        "embedding" => (
            serde_path_to_error::deserialize::<_, RawEmbedding>(body).map(drop),
            "llama",
            LLAMA_FIELDS,
        ),
        "classifier" => (
            serde_path_to_error::deserialize::<_, RawClassifierBackend>(body).map(drop),
            "llama",
            LLAMA_FIELDS,
        ),
        _ => return error,
    };
    let Err(inner) = result else {
        return error;
    };
    let inner_path = inner.path().to_string();
    let path = match inner_path.as_str() {
        "" | "." => backend_path,
        p if p.starts_with('[') => format!("{backend_path}{p}"),
        p => format!("{backend_path}.{p}"),
    };
    let mut refined = YamlError::locate(path, &inner.into_inner().to_string(), None, locator);
    if let Some(field) = super::locate::unknown_field(&refined.message) {
        let belongs_to = if other_fields.contains(&field) {
            Some(other_kind)
        } else if kind != "embedding" && EMBEDDING_FIELDS.contains(&field) {
            Some("embedding")
        } else if kind != "classifier" && CLASSIFIER_FIELDS.contains(&field) {
            Some("classifier")
        } else {
            None
        };
        if let Some(other_kind) = belongs_to {
            refined.message = format!("`{field}` applies only to kind {other_kind}");
            // As validation errors are: at the value.
            let at = locator.nearest(&refined.path);
            refined.line = at.map(|p| p.line);
            refined.column = at.map(|p| p.column);
        }
    }
    refined
}

impl JsonSchema for StringList {
    fn schema_name() -> Cow<'static, str> {
        "StringList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "One string or a list of strings.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

impl JsonSchema for RawDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: seconds as a number, or a string such as \"500ms\", \"30s\", \"2m\".",
            "anyOf": [
                { "type": "number", "minimum": 0 },
                { "type": "string" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names serde lists for `{kind: KIND, zzz: 1}`: exactly the variant's fields.
    fn serde_fields(kind: &str) -> Vec<String> {
        let text = format!("kind: {kind}\nzzz: 1\n");
        let Err(e) = serde_yaml::from_str::<RawBackend>(&text) else {
            panic!("zzz accepted");
        };
        let msg = e.to_string();
        let list = msg
            .split_once("expected one of ")
            .map(|(_, l)| l)
            .unwrap_or_else(|| panic!("{msg}"));
        list.split(", ")
            .map(|f| f.split('`').nth(1).unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn field_lists_match_the_variants() {
        assert_eq!(serde_fields("llama"), LLAMA_FIELDS);
        assert_eq!(serde_fields("openai"), REMOTE_FIELDS);
        assert_eq!(serde_fields("anthropic"), REMOTE_FIELDS);
        assert_eq!(serde_fields("embedding"), EMBEDDING_FIELDS);
    }
}
