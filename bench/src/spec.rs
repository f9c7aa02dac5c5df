//! Target specs: how `--target NAME=SPEC` on the command line (or `spec:` in a suite) becomes
//! a [`Target`].
//!
//! | spec | target |
//! |---|---|
//! | `openai:BASE_URL#MODEL[;key_env=VAR][;metadata=off][;triage=on]` | an OpenAI-compatible API (OpenAI, vLLM, llama-server, a running `triage serve` — whose `x-triage-*` routing headers are recorded; requests carry `metadata.task`/`scenario` for the router, dropped for api.openai.com or with `metadata=off`). `triage=on` marks another `triage serve`: a scenario's `choices` reach it as triage's extension field; without it `choices` are emulated with a strict JSON schema (`backends::choice_schema`), so every target answers the same question |
//! | `anthropic:BASE_URL#MODEL[;key_env=VAR]` | the Anthropic Messages API |
//! | `llama:PATH[;slots=N;threads=N;ctx=N;fa=auto\|on\|off;completion=auto\|on\|off]` | the in-process llama.cpp engine on a GGUF file (bench feature `llama`); `completion` renders base-model text instead of chat turns (auto: when the GGUF has no chat template) |
//! | `classifier:HEADS[;model=GGUF;threads=N]` | an encoder classifier in process (1 thread by default) (bench feature `llama`): heads written by `triage route train --head embedding` (files or directories of them, comma-separated) over the embedding model (default `models/` + the file name the heads record); answers `choices` items with the same `p_chosen`/`margin` signals as a scored SLM answer ([`backends::classifier`]) |
//! | `replay:FILE.jsonl` | recorded answers (`{"prompt", "response", "logprobs"?}` lines) |
//! | `router:CONFIG[;model=NAME]` | the triage gateway of a `triage.yaml`, built in-process (no server; in-memory ledger; `model` defaults to `auto`): the same decision, escalation and settled cost as over HTTP ([`crate::router_target`]; local models need bench feature `llama`) |
//!
//! API keys are only ever named by their environment variable; the spec stored in the run
//! metadata never holds a key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{BenchError, Result};
use crate::replay::ReplayBackend;
use crate::target::{BackendTarget, OpenAiTarget, Target, TargetInfo};
use router::pricing::BackendPrice;

/// A parsed `NAME=SPEC`.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSpec {
    /// Target name (`NAME`): the run's column in results and comparisons, and what `--price NAME=…`
    /// and `--judge NAME` refer to.
    pub name: String,
    /// What kind of target, with its main argument (the part before the first `;`).
    pub kind: SpecKind,
    /// `key=value` options after `;`.
    pub options: BTreeMap<String, String>,
    /// The spec text as given (safe to record: keys are named, not included).
    pub text: String,
}

/// The kind of a target spec (the text before the first `:`) and its main argument.
#[derive(Clone, Debug, PartialEq)]
pub enum SpecKind {
    /// `openai:BASE_URL#MODEL`: an OpenAI-compatible chat completions API.
    OpenAi {
        /// API base URL, e.g. `http://127.0.0.1:8080/v1`.
        base_url: String,
        /// Model name sent in each request (`auto` lets a triage gateway route).
        model: String,
    },
    /// `anthropic:BASE_URL#MODEL`: the Anthropic Messages API.
    Anthropic {
        /// API base URL, e.g. `https://api.anthropic.com`.
        base_url: String,
        /// Model name sent in each request.
        model: String,
    },
    /// `llama:PATH`: the in-process llama.cpp engine (bench feature `llama`).
    Llama {
        /// The GGUF model file, relative to the working directory or the suite file.
        path: PathBuf,
    },
    /// `classifier:HEADS`: an encoder classifier (bench feature `llama`).
    Classifier {
        /// Head files, or directories of them.
        heads: Vec<PathBuf>,
    },
    /// `replay:FILE`: answers recorded in a JSONL file.
    Replay {
        /// The JSONL file of `{"prompt", "response"}` lines.
        path: PathBuf,
    },
    /// `router:CONFIG`: the triage gateway of a `triage.yaml`, built in-process.
    Router {
        /// The `triage.yaml` file.
        config: PathBuf,
    },
}

impl TargetSpec {
    /// Parse `NAME=SPEC`.
    pub fn parse_assignment(text: &str) -> Result<TargetSpec> {
        let (name, spec) = text.split_once('=').ok_or_else(|| BenchError::Target {
            name: text.to_string(),
            message: "expected NAME=SPEC, e.g. slm=llama:models/model.gguf".into(),
        })?;
        TargetSpec::parse(name.trim(), spec.trim())
    }

    /// Parse a spec for target `name`.
    pub fn parse(name: &str, spec: &str) -> Result<TargetSpec> {
        let bad = |message: String| BenchError::Target {
            name: name.to_string(),
            message,
        };
        if name.is_empty() {
            return Err(bad("empty target name".into()));
        }
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            bad(format!(
                "`{spec}`: expected KIND:..., KIND one of openai, anthropic, llama, classifier, replay, router"
            ))
        })?;
        let mut parts = rest.split(';');
        let main = parts.next().unwrap_or("").trim();
        let mut options = BTreeMap::new();
        for opt in parts {
            let opt = opt.trim();
            if opt.is_empty() {
                continue;
            }
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| bad(format!("option `{opt}`: expected key=value")))?;
            options.insert(k.trim().to_string(), v.trim().to_string());
        }
        let url_model = |what: &str| -> Result<(String, String)> {
            let (url, model) = main.split_once('#').ok_or_else(|| {
                bad(format!("`{spec}`: expected {what}:BASE_URL#MODEL (e.g. {what}:http://127.0.0.1:8080/v1#auto)"))
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(format!(
                    "base URL `{url}` must start with http:// or https://"
                )));
            }
            if model.is_empty() {
                return Err(bad("empty model after #".into()));
            }
            Ok((url.to_string(), model.to_string()))
        };
        let kind = match kind {
            "openai" => {
                let (base_url, model) = url_model("openai")?;
                SpecKind::OpenAi { base_url, model }
            }
            "anthropic" => {
                let (base_url, model) = url_model("anthropic")?;
                SpecKind::Anthropic { base_url, model }
            }
            "llama" => {
                if main.is_empty() {
                    return Err(bad("llama: needs a GGUF model path".into()));
                }
                SpecKind::Llama {
                    path: PathBuf::from(main),
                }
            }
            "classifier" => {
                let heads: Vec<PathBuf> = main
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(PathBuf::from)
                    .collect();
                if heads.is_empty() {
                    return Err(bad(
                        "classifier: needs head files (triage route train --head embedding)".into(),
                    ));
                }
                SpecKind::Classifier { heads }
            }
            "replay" => {
                if main.is_empty() {
                    return Err(bad("replay: needs a JSONL file of recorded answers".into()));
                }
                SpecKind::Replay {
                    path: PathBuf::from(main),
                }
            }
            "router" => {
                if main.is_empty() {
                    return Err(bad("router: needs a triage.yaml config path".into()));
                }
                SpecKind::Router {
                    config: PathBuf::from(main),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown kind `{other}` (openai, anthropic, llama, classifier, replay, router)"
                )))
            }
        };
        let allowed: &[&str] = match kind {
            SpecKind::OpenAi { .. } => &["key_env", "metadata", "triage"],
            SpecKind::Anthropic { .. } => &["key_env"],
            SpecKind::Llama { .. } => &[
                "slots",
                "threads",
                "ctx",
                "fa",
                "completion",
                "lanes",
                "cache",
            ],
            SpecKind::Classifier { .. } => &["model", "threads"],
            SpecKind::Replay { .. } => &[],
            SpecKind::Router { .. } => &["model"],
        };
        if let Some(unknown) = options.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown option `{unknown}` (allowed: {})",
                allowed.join(", ")
            )));
        }
        let spec = TargetSpec {
            name: name.to_string(),
            kind,
            options,
            text: spec.to_string(),
        };
        spec.extensions()?;
        Ok(spec)
    }

    fn option<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.options.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| BenchError::Target {
                name: self.name.clone(),
                message: format!("option `{key}={v}` is not a number"),
            }),
        }
    }

    /// `triage=on|off`: whether the upstream is another `triage serve` (default off).
    fn extensions(&self) -> Result<backends::remote::Extensions> {
        use backends::remote::Extensions;
        match self.options.get("triage").map(String::as_str) {
            None | Some("off") => Ok(Extensions::None),
            Some("on") => Ok(Extensions::Triage),
            Some(v) => Err(BenchError::Target {
                name: self.name.clone(),
                message: format!("option `triage={v}`: expected on or off"),
            }),
        }
    }

    /// Build the target. Relative paths resolve against `base_dir`. Loading a local model
    /// blocks, so it runs on a blocking thread.
    pub async fn build(
        &self,
        base_dir: &Path,
        price: Option<BackendPrice>,
    ) -> Result<Arc<dyn Target>> {
        let info = |kind: &str, model_files: Vec<PathBuf>| TargetInfo {
            name: self.name.clone(),
            kind: kind.to_string(),
            spec: Some(self.text.clone()),
            model_files,
            price,
        };
        let err = |e: backends::BackendError| BenchError::Target {
            name: self.name.clone(),
            message: e.to_string(),
        };
        match &self.kind {
            SpecKind::OpenAi { base_url, model } => {
                let mut config =
                    backends::remote::RemoteConfig::new(base_url.clone(), model.clone());
                config.api_key_env = self.options.get("key_env").cloned();
                config.extensions = self.extensions()?;
                let backend = backends::openai::OpenAiBackend::new(config).map_err(err)?;
                // The harness tags requests with `metadata.task` for a triage gateway; OpenAI's
                // own API refuses `metadata` without `store`, so it is dropped there (or with
                // `;metadata=off`).
                let strip_metadata = base_url.contains("://api.openai.com")
                    || self.options.get("metadata").is_some_and(|v| v == "off");
                Ok(Arc::new(OpenAiTarget {
                    backend,
                    info: info("openai", Vec::new()),
                    strip_metadata,
                }))
            }
            SpecKind::Anthropic { base_url, model } => {
                let mut config =
                    backends::remote::RemoteConfig::new(base_url.clone(), model.clone());
                config.api_key_env = self.options.get("key_env").cloned();
                let backend = backends::anthropic::AnthropicBackend::new(config).map_err(err)?;
                Ok(Arc::new(BackendTarget {
                    backend: backends::AnyBackend::Anthropic(backend),
                    info: info("anthropic", Vec::new()),
                }))
            }
            SpecKind::Replay { path } => {
                let backend = ReplayBackend::from_jsonl(&base_dir.join(path))?;
                Ok(Arc::new(BackendTarget {
                    backend,
                    info: info("replay", Vec::new()),
                }))
            }
            SpecKind::Router { config } => {
                let model = self
                    .options
                    .get("model")
                    .map_or(crate::router_target::DEFAULT_MODEL, String::as_str);
                let target = crate::router_target::RouterTarget::load(
                    &self.name,
                    &base_dir.join(config),
                    model,
                    Some(self.text.clone()),
                    price,
                )
                .await?;
                Ok(Arc::new(target))
            }
            SpecKind::Classifier { heads } => {
                let heads: Vec<PathBuf> = heads.iter().map(|h| base_dir.join(h)).collect();
                // One thread: on a shared machine two threads' barriers cost ~10x (BENCHMARKS.md).
                let threads: i32 = self.option("threads", 1)?;
                let model = self.options.get("model").map(|m| base_dir.join(m));
                let (backend, files) = load_classifier(&self.name, &heads, model, threads).await?;
                Ok(Arc::new(BackendTarget {
                    backend,
                    info: info("classifier", files),
                }))
            }
            SpecKind::Llama { path } => {
                let path = base_dir.join(path);
                let slots: usize = self.option("slots", 1)?;
                let threads: i32 = self.option("threads", 2)?;
                let ctx: u32 = self.option("ctx", 2048)?;
                let lanes: usize = self.option("lanes", 0)?;
                let prompt_cache = match self.options.get("cache").map(String::as_str) {
                    Some("on") => true,
                    None | Some("off") => false,
                    Some(other) => {
                        return Err(BenchError::Target {
                            name: self.name.clone(),
                            message: format!("cache must be on or off (got `{other}`)"),
                        })
                    }
                };
                let flash_attention: backends::FlashAttention = match self.options.get("fa") {
                    None => backends::FlashAttention::default(),
                    Some(v) => v.parse().map_err(|message| BenchError::Target {
                        name: self.name.clone(),
                        message,
                    })?,
                };
                let completion_mode: backends::CompletionMode = match self.options.get("completion")
                {
                    None => backends::CompletionMode::default(),
                    Some(v) => v.parse().map_err(|message| BenchError::Target {
                        name: self.name.clone(),
                        message,
                    })?,
                };
                let backend = load_llama(
                    &self.name,
                    path.clone(),
                    LlamaOptions {
                        slots,
                        threads,
                        ctx,
                        flash_attention,
                        completion_mode,
                        lanes,
                        prompt_cache,
                    },
                )
                .await?;
                Ok(Arc::new(BackendTarget {
                    backend,
                    info: info("llama", vec![path]),
                }))
            }
        }
    }
}

/// The `llama:` spec's options.
#[cfg_attr(not(feature = "llama"), allow(dead_code))]
struct LlamaOptions {
    slots: usize,
    threads: i32,
    ctx: u32,
    flash_attention: backends::FlashAttention,
    completion_mode: backends::CompletionMode,
    /// Scoring lanes (`lanes=N`; see `LlamaEngineConfig::score_lanes`).
    lanes: usize,
    /// The engine's prompt cache (`cache=on|off`; see `LlamaEngineConfig::prompt_cache`).
    prompt_cache: bool,
}

#[cfg(feature = "llama")]
async fn load_llama(
    name: &str,
    model_path: PathBuf,
    options: LlamaOptions,
) -> Result<backends::AnyBackend> {
    let mut config = backends::llama::LlamaEngineConfig::new(model_path);
    config.slots = options.slots;
    config.context_per_slot = options.ctx;
    config.threads = options.threads;
    config.threads_batch = options.threads;
    config.flash_attention = options.flash_attention;
    config.completion_mode = options.completion_mode;
    config.score_lanes = options.lanes;
    config.prompt_cache = options.prompt_cache;
    let engine = tokio::task::spawn_blocking(move || backends::llama::LlamaEngine::load(config))
        .await
        .map_err(|e| BenchError::Target {
            name: name.to_string(),
            message: format!("model loading thread failed: {e}"),
        })?
        .map_err(|e| BenchError::Target {
            name: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(backends::AnyBackend::Llama(engine))
}

#[cfg(not(feature = "llama"))]
async fn load_llama(
    name: &str,
    model_path: PathBuf,
    _options: LlamaOptions,
) -> Result<backends::AnyBackend> {
    Err(BenchError::Target {
        name: name.to_string(),
        message: format!(
            "cannot load {}: this build has no local engine (build with the `llama` feature)",
            model_path.display()
        ),
    })
}

/// Load the heads and their encoder (`model`, else `models/` + the file name the first head
/// records); the model files to hash into the run metadata (encoder first, then the heads).
#[cfg(feature = "llama")]
async fn load_classifier(
    name: &str,
    heads: &[PathBuf],
    model: Option<PathBuf>,
    threads: i32,
) -> Result<(backends::AnyBackend, Vec<PathBuf>)> {
    let bad = |message: String| BenchError::Target {
        name: name.to_string(),
        message,
    };
    let files = crate::head_train::head_files(heads)?;
    let mut loaded = Vec::with_capacity(files.len());
    for file in &files {
        loaded.push(backends::head::Head::load(file).map_err(|e| bad(e.to_string()))?);
    }
    let model = match (model, loaded.first()) {
        (Some(m), _) => m,
        (None, Some(h)) => PathBuf::from("models").join(&h.encoder.file),
        (None, None) => return Err(bad("no head files found".into())),
    };
    let mut config = backends::EmbeddingEngineConfig::new(model.clone());
    config.threads = threads;
    let backend = tokio::task::spawn_blocking(move || {
        let engine = backends::embed::EmbeddingEngine::load(config)?;
        backends::classifier::ClassifierBackend::new(engine, loaded)
    })
    .await
    .map_err(|e| bad(format!("encoder loading thread failed: {e}")))?
    .map_err(|e| bad(e.to_string()))?;
    let mut model_files = vec![model];
    model_files.extend(files);
    Ok((backends::AnyBackend::Classifier(backend), model_files))
}

#[cfg(not(feature = "llama"))]
async fn load_classifier(
    name: &str,
    _heads: &[PathBuf],
    _model: Option<PathBuf>,
    _threads: i32,
) -> Result<(backends::AnyBackend, Vec<PathBuf>)> {
    Err(BenchError::Target {
        name: name.to_string(),
        message: "this build has no local engine (build with the `llama` feature)".into(),
    })
}

/// Parse `NAME=IN,OUT` (USD per million input/output tokens) or `NAME=hour:USD` (machine
/// dollars per hour, for local models).
pub fn parse_price(text: &str) -> Result<(String, BackendPrice)> {
    let bad = |m: &str| BenchError::Target {
        name: text.to_string(),
        message: m.to_string(),
    };
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=IN,OUT (USD per 1M tokens) or NAME=hour:USD"))?;
    let price = if let Some(h) = value.strip_prefix("hour:") {
        BackendPrice::Machine {
            usd_per_hour: h
                .trim()
                .parse()
                .map_err(|_| bad("hour:USD must be a number"))?,
        }
    } else {
        let (i, o) = value
            .split_once(',')
            .ok_or_else(|| bad("expected IN,OUT (USD per 1M input and output tokens)"))?;
        BackendPrice::PerToken {
            input: i.trim().parse().map_err(|_| bad("IN must be a number"))?,
            output: o.trim().parse().map_err(|_| bad("OUT must be a number"))?,
        }
    };
    Ok((name.trim().to_string(), price))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_rejects_bad_specs() {
        let s =
            TargetSpec::parse_assignment("router=openai:http://127.0.0.1:8080/v1#auto").unwrap();
        assert_eq!(
            s.kind,
            SpecKind::OpenAi {
                base_url: "http://127.0.0.1:8080/v1".into(),
                model: "auto".into()
            }
        );
        let s = TargetSpec::parse_assignment(
            "llm=openai:https://api.openai.com/v1#gpt-4o-mini;key_env=OPENAI_API_KEY",
        )
        .unwrap();
        assert_eq!(s.options["key_env"], "OPENAI_API_KEY");
        let s =
            TargetSpec::parse_assignment("slm=llama:models/a.gguf;slots=2;threads=2;completion=on")
                .unwrap();
        assert_eq!(s.options["completion"], "on");
        assert_eq!(
            s.kind,
            SpecKind::Llama {
                path: "models/a.gguf".into()
            }
        );
        let s = TargetSpec::parse_assignment("llm=openai:http://127.0.0.1:8081/v1#gemma;triage=on")
            .unwrap();
        assert_eq!(
            s.extensions().unwrap(),
            backends::remote::Extensions::Triage
        );
        let s = TargetSpec::parse_assignment("llm=openai:http://127.0.0.1:8081/v1#gemma").unwrap();
        assert_eq!(s.extensions().unwrap(), backends::remote::Extensions::None);
        assert!(TargetSpec::parse_assignment("llm=openai:http://h/v1#m;triage=yes").is_err());
        assert!(
            TargetSpec::parse_assignment("llm=anthropic:https://h/v1#m;triage=on").is_err(),
            "the extension is an OpenAI-protocol option"
        );
        let s = TargetSpec::parse_assignment("router=router:triage.yaml;model=fast").unwrap();
        assert_eq!(
            s.kind,
            SpecKind::Router {
                config: "triage.yaml".into()
            }
        );
        assert_eq!(s.options["model"], "fast");
        assert!(TargetSpec::parse_assignment("r=router:").is_err());
        assert!(TargetSpec::parse_assignment("r=router:t.yaml;slots=2").is_err());
        let s = TargetSpec::parse_assignment(
            "enc=classifier:heads/sentiment.json,heads/intent.json;model=m.gguf",
        )
        .unwrap();
        assert_eq!(
            s.kind,
            SpecKind::Classifier {
                heads: vec!["heads/sentiment.json".into(), "heads/intent.json".into()]
            }
        );
        assert!(TargetSpec::parse_assignment("enc=classifier:").is_err());
        assert!(TargetSpec::parse_assignment("enc=classifier:h.json;slots=2").is_err());
        assert!(TargetSpec::parse_assignment("slm").is_err());
        assert!(TargetSpec::parse_assignment("x=ftp:foo").is_err());
        assert!(TargetSpec::parse_assignment("x=openai:127.0.0.1#m").is_err());
        assert!(TargetSpec::parse_assignment("x=openai:http://h/v1").is_err());
        let e = TargetSpec::parse_assignment("x=llama:a.gguf;color=red")
            .unwrap_err()
            .to_string();
        assert!(e.contains("color"), "{e}");
    }

    #[test]
    fn parses_prices() {
        let (n, p) = parse_price("llm=0.15,0.60").unwrap();
        assert_eq!(n, "llm");
        assert_eq!(
            p,
            BackendPrice::PerToken {
                input: 0.15,
                output: 0.60
            }
        );
        let (_, p) = parse_price("slm=hour:0.05").unwrap();
        assert_eq!(p, BackendPrice::Machine { usd_per_hour: 0.05 });
        assert!(parse_price("slm=cheap").is_err());
    }
}
