//! The `backends` section: names, then each backend into the configuration its engine or client
//! loads with (`backends::LlamaEngineConfig`, `backends::remote::RemoteConfig`), defaults
//! applied. Fields of the wrong kind never get here: the raw backend enum rejects them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use backends::remote::{Extensions, RemoteConfig, RetryPolicy, Timeouts};
use backends::{EmbeddingEngineConfig, LlamaEngineConfig};

use super::{check_name, resolve, Ctx};
use crate::config::raw::{
    RawBackend, RawClassifierBackend, RawDuration, RawEmbedding, RawLlama, RawRemote, RawSwitch,
};
use crate::config::{BackendSpec, ClassifierSpec, ConfigError, RemoteBackendSpec, RemoteProvider};

pub(super) fn validate_backends(
    raw: &BTreeMap<String, RawBackend>,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<BTreeMap<String, BackendSpec>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.err("backends", "at least one backend is required"));
    }
    let mut backends = BTreeMap::new();
    for (name, b) in raw {
        let path = format!("backends.{name}");
        check_name(name, &path, ctx)?;
        if name == "auto" {
            return Err(ctx.err(
                &path,
                "\"auto\" is reserved for routing; name the backend something else",
            ));
        }
        let spec = match b {
            RawBackend::Llama(l) => BackendSpec::Local(validate_llama(l, &path, ctx, dir)?),
            RawBackend::Openai(r) => validate_remote(r, RemoteProvider::OpenAi, &path, ctx)?,
            RawBackend::Anthropic(r) => validate_remote(r, RemoteProvider::Anthropic, &path, ctx)?,
            RawBackend::Embedding(e) => {
                BackendSpec::Embedding(validate_embedding(e, &path, ctx, dir)?)
            }
            RawBackend::Classifier(c) => {
                BackendSpec::Classifier(validate_classifier(c, &path, ctx, dir)?)
            }
        };
        backends.insert(name.clone(), spec);
    }
    Ok(backends)
}

/// The backend's `model`, which must be given and not blank.
fn model(
    model: &Option<String>,
    path: &str,
    ctx: &Ctx<'_>,
    missing: &str,
) -> Result<String, ConfigError> {
    match model {
        Some(m) if !m.trim().is_empty() => Ok(m.clone()),
        _ => Err(ctx.err(&format!("{path}.model"), missing)),
    }
}

fn validate_llama(
    b: &RawLlama,
    path: &str,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<LlamaEngineConfig, ConfigError> {
    let model = model(
        &b.model,
        path,
        ctx,
        "a llama backend needs `model: PATH/TO/MODEL.gguf`",
    )?;
    let positive = |v: Option<i64>, field: &str, default: i64| -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n),
            Some(n) => Err(ctx.err(
                &format!("{path}.{field}"),
                format!("must be >= 1 (got {n})"),
            )),
        }
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let threads = positive(b.threads.map(i64::from), "threads", cores)?;
    let context = positive(b.context.map(i64::from), "context", 4096)?;
    if context < 64 {
        return Err(ctx.err(
            &format!("{path}.context"),
            "a context below 64 tokens cannot hold a chat prompt",
        ));
    }
    let flash_attention = match &b.flash_attention {
        None => backends::FlashAttention::default(),
        Some(v) => v
            .parse()
            .map_err(|e: String| ctx.err(&format!("{path}.flash_attention"), e))?,
    };
    let completion_mode = match &b.completion_mode {
        None => backends::CompletionMode::default(),
        Some(RawSwitch::Bool(on)) => backends::CompletionMode::from(*on),
        Some(RawSwitch::Word(w)) => w
            .parse()
            .map_err(|e: String| ctx.err(&format!("{path}.completion_mode"), e))?,
    };
    Ok(LlamaEngineConfig {
        model_path: resolve(dir, &model),
        slots: positive(b.slots.map(|v| v as i64), "slots", 4)? as usize,
        context_per_slot: context as u32,
        threads: threads as i32,
        threads_batch: positive(b.threads_batch.map(i64::from), "threads_batch", threads)? as i32,
        batch_size: positive(b.batch_size.map(i64::from), "batch_size", 512)? as u32,
        queue_capacity: positive(b.queue.map(|v| v as i64), "queue", 64)? as usize,
        chat_template: b.chat_template.clone(),
        completion_mode,
        flash_attention,
        score_lanes: b.score_lanes.unwrap_or(0),
        prompt_cache: b.prompt_cache.unwrap_or(false),
    })
}

/// A `kind: embedding` backend; limits the model itself bounds (its trained positions) are
/// checked when it loads.
fn validate_embedding(
    b: &RawEmbedding,
    path: &str,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<EmbeddingEngineConfig, ConfigError> {
    let model = model(
        &b.model,
        path,
        ctx,
        "an embedding backend needs `model: PATH/TO/MODEL.gguf` (e.g. models/all-MiniLM-L6-v2.gguf)",
    )?;
    let mut config = EmbeddingEngineConfig::new(resolve(dir, &model));
    let positive = |v: Option<i64>, field: &str, default: i64| -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n),
            Some(n) => Err(ctx.err(
                &format!("{path}.{field}"),
                format!("must be >= 1 (got {n})"),
            )),
        }
    };
    config.threads = positive(b.threads.map(i64::from), "threads", config.threads.into())? as i32;
    config.max_input_tokens = positive(
        b.max_input_tokens.map(i64::from),
        "max_input_tokens",
        config.max_input_tokens.into(),
    )? as u32;
    config.batch_tokens = positive(
        b.batch_tokens.map(i64::from),
        "batch_tokens",
        config.batch_tokens.into(),
    )? as u32;
    config.max_sequences = positive(
        b.max_sequences.map(i64::from),
        "max_sequences",
        config.max_sequences.into(),
    )? as u32;
    config.queue_capacity = positive(
        b.queue.map(|v| v as i64),
        "queue",
        config.queue_capacity as i64,
    )? as usize;
    if config.batch_tokens < config.max_input_tokens {
        return Err(ctx.err(
            &format!("{path}.batch_tokens"),
            format!(
                "must be at least max_input_tokens ({}): a pass must hold the longest input",
                config.max_input_tokens
            ),
        ));
    }
    Ok(config)
}

/// A `kind: classifier` backend: its encoder as an embedding backend's, and at least one head
/// (the head files themselves are read, and checked against the encoder, when it loads).
fn validate_classifier(
    b: &RawClassifierBackend,
    path: &str,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<ClassifierSpec, ConfigError> {
    let encoder = RawEmbedding {
        model: b.model.clone(),
        // One thread unless told: on a shared machine two threads' barriers cost ~10x.
        threads: b.threads.or(Some(1)),
        max_input_tokens: b.max_input_tokens,
        batch_tokens: b.batch_tokens,
        max_sequences: b.max_sequences,
        queue: b.queue,
    };
    let encoder = validate_embedding(&encoder, path, ctx, dir)?;
    let heads: BTreeMap<String, std::path::PathBuf> = b
        .heads
        .iter()
        .flatten()
        .map(|(task, file)| (task.clone(), resolve(dir, file)))
        .collect();
    if heads.is_empty() {
        return Err(ctx.err(
            &format!("{path}.heads"),
            "a classifier needs `heads: {TASK: FILE.json}` (triage route train --head embedding)",
        ));
    }
    Ok(ClassifierSpec { encoder, heads })
}

fn validate_remote(
    b: &RawRemote,
    provider: RemoteProvider,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<BackendSpec, ConfigError> {
    let model = model(
        &b.model,
        path,
        ctx,
        "a remote backend needs `model: UPSTREAM_MODEL_ID`",
    )?;
    let default_url = match provider {
        RemoteProvider::Anthropic => "https://api.anthropic.com/v1",
        RemoteProvider::OpenAi => "https://api.openai.com/v1",
    };
    let base_url = b
        .base_url
        .clone()
        .unwrap_or_else(|| default_url.to_string());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        || base_url.len() <= "https://".len()
    {
        return Err(ctx.err(
            &format!("{path}.base_url"),
            format!("{base_url:?} is not an http(s) URL"),
        ));
    }
    if let Some(var) = &b.api_key_env {
        if var.is_empty() || var.contains('=') || var.starts_with("sk-") {
            return Err(ctx.err(
                &format!("{path}.api_key_env"),
                "must name an environment variable that holds the key (not the key itself)",
            ));
        }
    }
    let t = b.timeouts.as_ref();
    let r = b.retry.as_ref();
    if r.and_then(|r| r.max_attempts) == Some(0) {
        return Err(ctx.err(
            &format!("{path}.retry.max_attempts"),
            "must be >= 1 (1 means no retry)",
        ));
    }
    let extensions = match &b.extensions {
        None => Extensions::None,
        Some(v) => v
            .parse()
            .map_err(|e: String| ctx.err(&format!("{path}.extensions"), e))?,
    };
    if extensions == Extensions::Triage && provider != RemoteProvider::OpenAi {
        return Err(ctx.err(
            &format!("{path}.extensions"),
            "`extensions: triage` is for `kind: openai` backends that are another `triage serve`",
        ));
    }
    // Unset timeouts and retry fields keep the client's defaults.
    let dt = Timeouts::default();
    let dr = RetryPolicy::default();
    let or = |d: Option<RawDuration>, default: Duration| d.map_or(default, |d| d.0);
    Ok(BackendSpec::Remote(RemoteBackendSpec {
        provider,
        config: RemoteConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            model,
            api_key_env: b.api_key_env.clone(),
            headers: b.headers.clone().unwrap_or_default(),
            timeouts: Timeouts {
                connect: or(t.and_then(|t| t.connect), dt.connect),
                first_byte: or(t.and_then(|t| t.first_byte), dt.first_byte),
                idle: or(t.and_then(|t| t.idle), dt.idle),
                total: or(t.and_then(|t| t.total), dt.total),
            },
            retry: RetryPolicy {
                max_attempts: r.and_then(|r| r.max_attempts).unwrap_or(dr.max_attempts),
                base_delay: or(r.and_then(|r| r.initial_backoff), dr.base_delay),
                max_delay: or(r.and_then(|r| r.max_backoff), dr.max_delay),
            },
            extensions,
        },
    }))
}
