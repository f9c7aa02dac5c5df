#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Config loading: the shipped samples load (their contents are not asserted: tests build
//! their own configs); every kind of mistake is reported with file:line:col and the field path.

use std::path::{Path, PathBuf};

use router::config::{BackendSpec, Config};
use router::policy::Locality;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "triage.yaml", Path::new("/etc/triage")).map_err(|e| e.to_string())
}

const BASE: &str = "\
backends:
  slm: { kind: llama, model: models/smol.gguf, slots: 2, threads: 2 }
  llm: { kind: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY }
";

/// The shipped files load; what a loaded config holds is checked on configs of the tests' own
/// (below), so editing the shipped `triage.yaml` never breaks a test.
#[test]
fn shipped_configs_load() {
    let root = repo_root();
    Config::load(&root.join("triage.yaml")).unwrap();
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// A config shaped like the shipped one: a local and a remote backend, a privacy rule.
const FULL: &str = r#"
backends:
  slm: { kind: llama, model: models/SmolLM2-135M-Instruct.Q4_1.gguf, slots: 4, threads: 2, context: 2048 }
  llm:
    kind: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY
    timeouts: { connect: 5s, first_byte: 60s, idle: 30s, total: 300s }
    retry: { max_attempts: 3, initial_backoff: 200ms, max_backoff: 5s }
pricing:
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: small-tasks, when: { task: [sentiment] }, to: slm, fallback: [llm] }
  - { name: cascade, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.6 } }
  - { name: default, to: llm, fallback: [slm] }
"#;

#[test]
fn a_full_config_resolves_paths_localities_and_remote_settings() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.policy.rules().len(), 4);
    assert_eq!(c.policy.privacy_rule(), Some("private"));
    assert_eq!(c.policy.locality("slm"), Some(Locality::Local));
    assert_eq!(c.policy.locality("llm"), Some(Locality::Remote));
    match c.backend("slm").unwrap() {
        BackendSpec::Local(l) => {
            assert_eq!(
                l.model_path,
                Path::new("/etc/triage/models/SmolLM2-135M-Instruct.Q4_1.gguf")
            );
            assert_eq!((l.slots, l.threads, l.context_per_slot), (4, 2, 2048));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.costs.reference.as_deref(), Some("llm"));
    match c.backend("llm").unwrap() {
        BackendSpec::Remote(r) => {
            let rc = &r.config;
            assert_eq!(rc.base_url, "https://api.openai.com/v1");
            assert_eq!(rc.model, "gpt-4o-mini");
            assert_eq!(rc.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
            assert_eq!(rc.timeouts.connect, std::time::Duration::from_secs(5));
            assert_eq!(rc.retry.max_attempts, 3);
            assert_eq!(rc.retry.base_delay, std::time::Duration::from_millis(200));
        }
        other => panic!("{other:?}"),
    }
}

/// The example in the design guide, verbatim.
#[test]
fn design_guide_example_loads() {
    let text = r#"
server: { listen: 127.0.0.1:8080, api_keys_env: TRIAGE_KEYS }
backends:
  slm:  { kind: llama, model: models/SmolLM2-135M-Instruct.Q4_1.gguf, slots: 4, threads: 2 }
  llm:  { kind: openai, base_url: https://api.openai.com/v1, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY }
pricing:                      # USD per 1M tokens; local cost from machine $/hour and measured seconds
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:                       # first match wins; every request gets a decision and a reason
  - { name: private, when: { pii: true }, to: slm }
  - { name: small-tasks, when: { task: [sentiment, intent, extraction] }, to: slm }
  - { name: cascade, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.62 } }
  - { name: default, to: llm, fallback: [slm] }
budgets: { daily_usd: 5.0, on_exhausted: slm }
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.server.api_keys_env.as_deref(), Some("TRIAGE_KEYS"));
    assert_eq!(c.policy.rules().len(), 4);
    assert_eq!(c.policy.privacy_rule(), Some("private"));
}

#[test]
fn remote_defaults_and_shipped_prices() {
    let c = parse(&format!(
        "{BASE}routes:\n  - {{ name: default, to: llm }}\n"
    ))
    .unwrap();
    match c.backend("llm").unwrap() {
        BackendSpec::Remote(r) => {
            assert_eq!(r.config.base_url, "https://api.openai.com/v1");
            assert_eq!(r.config.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
            // Unset timeouts and retry fields keep the remote client's defaults.
            assert_eq!(r.config.timeouts, backends::remote::Timeouts::default());
            assert_eq!(r.config.retry, backends::remote::RetryPolicy::default());
        }
        other => panic!("{other:?}"),
    }
    // gpt-4o-mini's price comes from the shipped table.
    let cost = c.costs.cost(
        "llm",
        &router::pricing::Usage {
            tokens_in: 1_000_000,
            tokens_out: 0,
            engine_busy_secs: 0.0,
        },
    );
    assert!((cost - 0.15).abs() < 1e-9);
}

#[test]
fn extensions_mark_a_triage_upstream_and_default_to_none() {
    let c = parse(
        "backends:\n  b: { kind: openai, base_url: \"http://127.0.0.1:8081/v1\", model: gemma, extensions: triage }\n  llm: { kind: openai, model: gpt-4o-mini }\n  claude: { kind: anthropic, model: claude-haiku-4-5, extensions: none }\npricing:\n  b: { input: 0.1, output: 0.2 }\n  claude: { input: 1.0, output: 5.0 }\nreference_backend: llm\nroutes:\n  - { name: d, to: b }\n",
    )
    .unwrap();
    let extensions = |name: &str| match c.backend(name).unwrap() {
        BackendSpec::Remote(r) => r.config.extensions,
        other => panic!("{other:?}"),
    };
    assert_eq!(extensions("b"), backends::remote::Extensions::Triage);
    assert_eq!(extensions("llm"), backends::remote::Extensions::None);
    assert_eq!(extensions("claude"), backends::remote::Extensions::None);
}

#[test]
fn llama_completion_mode_is_auto_on_off_or_a_boolean() {
    let mode = |value: Option<&str>| -> Result<backends::CompletionMode, String> {
        let field = value
            .map(|v| format!(", completion_mode: {v}"))
            .unwrap_or_default();
        let c = parse(&format!(
            "backends:\n  slm: {{ kind: llama, model: m.gguf{field} }}\nroutes:\n  - {{ name: default, to: slm }}\n"
        ))?;
        match c.backend("slm") {
            Some(BackendSpec::Local(l)) => Ok(l.completion_mode),
            other => Err(format!("{other:?}")),
        }
    };
    use backends::CompletionMode::{Auto, Off, On};
    assert_eq!(mode(None), Ok(Auto));
    assert_eq!(mode(Some("auto")), Ok(Auto));
    assert_eq!(mode(Some("on")), Ok(On));
    assert_eq!(mode(Some("off")), Ok(Off));
    assert_eq!(mode(Some("true")), Ok(On));
    assert_eq!(mode(Some("false")), Ok(Off));
    let err = mode(Some("sometimes")).unwrap_err();
    assert!(
        err.contains("backends.slm.completion_mode") && err.contains("`sometimes`"),
        "{err}"
    );
}

#[test]
fn a_missing_classifier_model_is_a_warning_and_a_broken_one_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{BASE}routes:\n  - {{ name: d, to: llm }}\nclassifier: {{ model: models/task-classifier.json, rules: [{{ task: sentiment, keywords: [review] }}] }}\n"
    );
    let c = Config::parse(&text, "triage.yaml", dir.path()).unwrap();
    let path = dir.path().join("models/task-classifier.json");
    assert!(c.classifier.model.is_none());
    assert_eq!(c.classifier.missing_model.as_deref(), Some(path.as_path()));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("task-classifier.json does not exist")
            && c.warnings[0].contains("route train"),
        "{}",
        c.warnings[0]
    );
    // The rules still classify.
    assert_eq!(
        c.classifier.classify("a review of the film").task,
        "sentiment"
    );

    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"not\": \"a model\"}").unwrap();
    let err = Config::parse(&text, "triage.yaml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("classifier.model") && err.contains("not a classifier model"),
        "{err}"
    );
    // No warnings without a model section.
    assert!(
        parse(&format!("{BASE}routes:\n  - {{ name: d, to: llm }}\n"))
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn partly_given_timeouts_and_retry_keep_the_other_defaults() {
    let c = parse(
        "backends:\n  llm: { kind: openai, model: gpt-4o-mini, timeouts: { connect: 2s }, retry: { max_backoff: 1s } }\nroutes:\n  - { name: d, to: llm }\n",
    )
    .unwrap();
    let BackendSpec::Remote(r) = c.backend("llm").unwrap() else {
        panic!("not remote");
    };
    let (t, rp) = (
        backends::remote::Timeouts::default(),
        backends::remote::RetryPolicy::default(),
    );
    assert_eq!(
        r.config.timeouts,
        backends::remote::Timeouts {
            connect: std::time::Duration::from_secs(2),
            ..t
        }
    );
    assert_eq!(
        r.config.retry,
        backends::remote::RetryPolicy {
            max_delay: std::time::Duration::from_secs(1),
            ..rp
        }
    );
}

/// `store:`, `store_failure:` and `rate_limits:` as the gateway reads them; the URL's password
/// never prints.
#[test]
fn shared_store_and_rate_limits() {
    let c = parse(&format!(
        "store: redis://:pw@10.0.0.5:6380/2\nstore_failure: fail_open\nrate_limits:\n  per_key: {{ requests_per_minute: 60 }}\n  tenants: {{ batch: {{ tokens_per_minute: 1000 }} }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"
    ))
    .unwrap();
    let url = c.shared.store.as_ref().unwrap();
    assert_eq!(url.to_string(), "redis://***@10.0.0.5:6380/2");
    assert!(!format!("{c:?}").contains(":pw@"));
    assert_eq!(c.shared.on_failure, router::reserve::StoreFailure::FailOpen);
    let limits = &c.shared.rate_limits;
    assert_eq!(
        limits
            .for_tenant(Some("alice"))
            .unwrap()
            .requests_per_minute,
        Some(60)
    );
    let batch = limits.for_tenant(Some("batch")).unwrap();
    assert_eq!(
        (batch.requests_per_minute, batch.tokens_per_minute),
        (None, Some(1000))
    );
    let none = parse(&format!("{BASE}routes:\n  - {{ name: d, to: llm }}\n")).unwrap();
    assert_eq!(none.shared, router::reserve::SharedConfig::default());
}

/// (name, config text, expected error text)
fn error_cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "unknown backend in a cascade",
            format!(
                "{BASE}routes:\n  - name: private\n    when: {{ pii: true }}\n    to: slm\n  - name: qa\n    cascade:\n      first: slm\n      escalate_to: lmm\n      min_confidence: 0.6\n  - {{ name: default, to: llm }}\n"
            ),
            "triage.yaml:11:20: routes[1].cascade.escalate_to: unknown backend \"lmm\" (known: llm, slm)",
        ),
        (
            "unknown field",
            format!("{BASE}routes:\n  - {{ name: default, to: llm, fallbak: [slm] }}\n"),
            "triage.yaml:5:31: routes[0].fallbak: unknown field `fallbak`, expected one of",
        ),
        (
            "unknown top-level field",
            format!("{BASE}route:\n  - {{ name: default, to: llm }}\n"),
            "triage.yaml:4:1: route: unknown field `route`",
        ),
        (
            "bad YAML",
            format!("{BASE}routes:\n  - {{ name: default, to: llm\n"),
            "triage.yaml:6:1: ",
        ),
        (
            "wrong type",
            format!("{BASE}routes:\n  - {{ name: default, to: llm }}\nbudgets: {{ daily_usd: lots }}\n"),
            "triage.yaml:6:23: budgets.daily_usd: invalid type: string \"lots\", expected f64",
        ),
        (
            "cascade missing a side",
            format!("{BASE}routes:\n  - name: qa\n    cascade: {{ first: slm, min_confidence: 0.5 }}\n  - {{ name: default, to: llm }}\n"),
            "routes[0].cascade: missing field `escalate_to`",
        ),
        (
            "route without an action",
            format!("{BASE}routes:\n  - {{ name: default }}\n"),
            "triage.yaml:5:5: routes[0]: a route needs an action",
        ),
        (
            "both actions",
            format!("{BASE}routes:\n  - {{ name: d, to: llm, cascade: {{ first: slm, escalate_to: llm, min_confidence: 0.5 }} }}\n"),
            "routes[0].cascade: a route has one action",
        ),
        (
            "last route not catch-all",
            format!("{BASE}routes:\n  - {{ name: only, when: {{ task: qa }}, to: llm }}\n"),
            "triage.yaml:5:25: routes[0].when: the last route (\"only\") must match every request",
        ),
        (
            "privacy rule sending PII remote",
            format!("{BASE}routes:\n  - {{ name: private, when: {{ pii: true }}, to: slm, fallback: [llm] }}\n  - {{ name: d, to: llm }}\n"),
            "routes[0].fallback[0]: this rule matches requests with PII",
        ),
        (
            "empty task set",
            format!("{BASE}routes:\n  - {{ name: a, when: {{ task: [] }}, to: slm }}\n  - {{ name: d, to: llm }}\n"),
            "routes[0].when.task: an empty list matches nothing",
        ),
        (
            "bad content regex",
            format!("{BASE}routes:\n  - {{ name: a, when: {{ content: \"(unclosed\" }}, to: slm }}\n  - {{ name: d, to: llm }}\n"),
            "routes[0].when.content: invalid regex",
        ),
        (
            "admin tenants without keys",
            format!("server:\n  admin_tenants: [ops]\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "server.admin_tenants: needs server.api_keys_env",
        ),
        (
            "CORS for every origin",
            format!("server:\n  cors_allow_origins: [\"*\"]\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "server.cors_allow_origins[0]: `*` would let every web site call the gateway",
        ),
        (
            "CORS origin with a path",
            format!("server:\n  cors_allow_origins: [\"https://app.example.com/x\"]\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "server.cors_allow_origins[0]: \"https://app.example.com/x\" is not an origin",
        ),
        (
            "spill from a remote backend",
            format!("{BASE}routes:\n  - {{ name: d, to: llm, spill: {{ to: slm, queue_depth: 4 }} }}\n"),
            "routes[0].spill: spill applies when the route's first backend is local",
        ),
        (
            "spill without a threshold",
            format!("{BASE}routes:\n  - {{ name: d, to: slm, spill: {{ to: llm }} }}\n"),
            "routes[0].spill: spill needs `queue_depth` or `predicted_ttft_ms`",
        ),
        (
            "spill above the engine's queue bound never fires",
            "backends:\n  slm: { kind: llama, model: m.gguf, queue: 4 }\n  llm: { kind: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY }\nroutes:\n  - { name: d, to: slm, spill: { to: llm, queue_depth: 5 } }\n".to_string(),
            "routes[0].spill.queue_depth: 5 can never be reached: backend \"slm\" queues at most 4 requests",
        ),
        (
            "spill at queue depth 0",
            format!("{BASE}routes:\n  - {{ name: d, to: slm, spill: {{ to: llm, queue_depth: 0 }} }}\n"),
            "routes[0].spill.queue_depth: 0 would spill every request",
        ),
        (
            "llama field on a remote backend",
            "backends:\n  llm: { kind: openai, model: gpt-4o-mini, slots: 4 }\nroutes:\n  - { name: d, to: llm }\n".to_string(),
            "triage.yaml:2:51: backends.llm.slots: `slots` applies only to kind llama",
        ),
        (
            "remote field on a llama backend",
            "backends:\n  slm: { kind: llama, model: m.gguf, base_url: \"http://127.0.0.1:9/v1\" }\nroutes:\n  - { name: d, to: slm }\n".to_string(),
            "triage.yaml:2:48: backends.slm.base_url: `base_url` applies only to kind openai or anthropic",
        ),
        (
            "llama field on a remote backend, block style",
            "backends:\n  claude:\n    kind: anthropic\n    model: claude-3-5-haiku-latest\n    context: 4096\nroutes:\n  - { name: d, to: claude }\n".to_string(),
            "triage.yaml:5:14: backends.claude.context: `context` applies only to kind llama",
        ),
        (
            "unknown field in a backend",
            "backends:\n  slm: { kind: llama, model: m.gguf, slotz: 2 }\nroutes:\n  - { name: d, to: slm }\n".to_string(),
            "triage.yaml:2:38: backends.slm.slotz: unknown field `slotz`, expected one of `model`, `slots`,",
        ),
        (
            "wrong type inside a backend",
            "backends:\n  slm:\n    kind: llama\n    model: m.gguf\n    slots: many\nroutes:\n  - { name: d, to: slm }\n".to_string(),
            "triage.yaml:5:12: backends.slm.slots: invalid type: string \"many\", expected usize",
        ),
        (
            "bad duration inside a backend",
            "backends:\n  llm.v2: { kind: openai, model: gpt-4o-mini, timeouts: { connect: soon } }\nroutes:\n  - { name: d, to: llm.v2 }\n".to_string(),
            "triage.yaml:2:68: backends.llm.v2.timeouts.connect: bad duration \"soon\"",
        ),
        (
            "backend without a kind",
            "backends:\n  x: { model: m }\nroutes:\n  - { name: d, to: x }\n".to_string(),
            "backends.x: missing field `kind`",
        ),
        (
            "unknown backend kind",
            "backends:\n  x: { kind: vllm, model: m }\nroutes:\n  - { name: d, to: x }\n".to_string(),
            "backends.x.kind: unknown variant `vllm`, expected one of `llama`, `openai`, `anthropic`",
        ),
        (
            "unpriced remote model",
            "backends:\n  b: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: my-model }\nroutes:\n  - { name: d, to: b }\n".to_string(),
            "backends.b.model: no price known for model \"my-model\"",
        ),
        (
            "remote on_exhausted",
            format!("{BASE}routes:\n  - {{ name: d, to: llm }}\nbudgets: {{ daily_usd: 1, on_exhausted: llm }}\n"),
            "budgets.on_exhausted: \"llm\" is a remote backend",
        ),
        (
            "min_confidence out of range",
            format!("{BASE}routes:\n  - {{ name: d, cascade: {{ first: slm, escalate_to: llm, min_confidence: 1.5 }} }}\n"),
            "routes[0].cascade.min_confidence: confidence is a probability: the threshold must be between 0 and 1",
        ),
        (
            "unknown cascade signal",
            format!("{BASE}routes:\n  - {{ name: d, cascade: {{ first: slm, escalate_to: llm, signal: vibes, threshold: 0.5 }} }}\n"),
            "routes[0].cascade.signal: unknown signal \"vibes\"; known: confidence, p_chosen, margin, mean_logprob, min_logprob",
        ),
        (
            "signal without threshold",
            format!("{BASE}routes:\n  - {{ name: d, cascade: {{ first: slm, escalate_to: llm, signal: p_chosen }} }}\n"),
            "routes[0].cascade.threshold: a cascade with a `signal` needs a `threshold`",
        ),
        (
            "log-prob threshold above zero",
            format!("{BASE}routes:\n  - {{ name: d, cascade: {{ first: slm, escalate_to: llm, signal: mean_logprob, threshold: 0.5 }} }}\n"),
            "routes[0].cascade.threshold: mean_logprob is a log-probability: the threshold must be <= 0",
        ),
        (
            "signal and min_confidence",
            format!("{BASE}routes:\n  - {{ name: d, cascade: {{ first: slm, escalate_to: llm, signal: margin, threshold: 0.2, min_confidence: 0.5 }} }}\n"),
            "routes[0].cascade.min_confidence: give either `signal` + `threshold` or the legacy `min_confidence`, not both",
        ),
        (
            "bad listen address",
            format!("server: {{ listen: localhost }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "triage.yaml:1:19: server.listen: \"localhost\" is not an address",
        ),
        (
            "bad duration",
            format!("server: {{ request_timeout: soon }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "server.request_timeout: bad duration \"soon\"",
        ),
        (
            "unknown PII kind",
            format!("{BASE}routes:\n  - {{ name: d, to: llm }}\npii: {{ detect: [email, passport] }}\n"),
            "triage.yaml:6:24: pii.detect[1]: unknown PII kind \"passport\"",
        ),
        (
            "duplicate route names",
            format!("{BASE}routes:\n  - {{ name: d, when: {{ stream: true }}, to: slm }}\n  - {{ name: d, to: llm }}\n"),
            "routes[1].name: duplicate route name",
        ),
        (
            "metrics key without keys",
            format!("server: {{ metrics_require_key: true }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "server.metrics_require_key: needs server.api_keys_env",
        ),
        (
            "unknown extensions",
            "backends:\n  llm: { kind: openai, model: m, extensions: vllm }\nroutes:\n  - { name: d, to: llm }\n".to_string(),
            "backends.llm.extensions: unknown extensions \"vllm\"",
        ),
        (
            "store not a Redis URL (the password never printed)",
            format!("store: \"postgres://u:hunter2@db/x\"\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "triage.yaml:1:8: store: postgres://***@db/x is not a Redis URL",
        ),
        (
            "store_failure without a store",
            format!("store_failure: fail_open\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "store_failure: needs `store: redis://host:port/db`",
        ),
        (
            "unknown store_failure",
            format!("store: redis://127.0.0.1:6379/0\nstore_failure: maybe\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "store_failure: \"maybe\" is not `fail_closed` or `fail_open`",
        ),
        (
            "a zero rate limit",
            format!("rate_limits:\n  per_key: {{ requests_per_minute: 0 }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "rate_limits.per_key.requests_per_minute: must be at least 1",
        ),
        (
            "an empty tenant rate limit",
            format!("rate_limits:\n  tenants: {{ alice: {{}} }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "rate_limits.tenants.alice: give `requests_per_minute` and/or `tokens_per_minute`",
        ),
        (
            "a misspelt rate limit",
            format!("rate_limits:\n  per_key: {{ requests_per_min: 5 }}\n{BASE}routes:\n  - {{ name: d, to: llm }}\n"),
            "unknown field `requests_per_min`",
        ),
        (
            "triage extensions on anthropic",
            "backends:\n  llm: { kind: anthropic, model: m, extensions: triage }\nroutes:\n  - { name: d, to: llm }\n".to_string(),
            "backends.llm.extensions: `extensions: triage` is for `kind: openai`",
        ),
    ]
}

#[test]
fn errors_name_file_line_column_and_path() {
    let mut failures = Vec::new();
    for (name, text, expected) in error_cases() {
        match parse(&text) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) if !e.contains(expected) => {
                failures.push(format!("{name}:\n   got: {e}\n  want: {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
