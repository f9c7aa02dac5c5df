//! What a validated configuration resolves to, in words: `triage config check` prints it so an
//! operator sees the backends, the routes in the order they are tried (with their conditions),
//! the prices, budgets and API key tenants a gateway would start with — before starting one.
//!
//! Keys are reported by the variable's name, whether it is set and the tenant names (or hashed
//! key labels) it holds; never a key.

use std::fmt::Write as _;

use super::{BackendSpec, Config, RemoteProvider};
use crate::gateway::{ApiKeys, KeysError};
use crate::policy::{OnExhausted, RuleAction};
use crate::pricing::BackendPrice;

/// What the API keys variable holds, without the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysStatus {
    /// No `server.api_keys_env`: the gateway is open (loopback only unless allowed).
    NotConfigured,
    /// The variable is named but not set: no authentication.
    Unset(String),
    /// The variable is set and parses: its tenants (or hashed key labels), one per key.
    Set {
        /// The variable's name.
        var: String,
        /// Tenant names or `key-…` labels.
        tenants: Vec<String>,
    },
    /// The variable is set but malformed (the gateway would refuse to start).
    Malformed(String),
}

impl KeysStatus {
    /// Read the variable `config` names from this process's environment.
    pub fn from_env(config: &Config) -> KeysStatus {
        let Some(var) = &config.server.api_keys_env else {
            return KeysStatus::NotConfigured;
        };
        match ApiKeys::from_env(var) {
            Ok(keys) => KeysStatus::Set {
                var: var.clone(),
                tenants: keys.tenants().map(str::to_string).collect(),
            },
            Err(KeysError::Unset(v)) => KeysStatus::Unset(v),
            // The error names the variable and what is wrong, never the value.
            Err(e) => KeysStatus::Malformed(e.to_string()),
        }
    }
}

/// The resolved configuration as text: backends, routes in order, prices, budgets, keys and
/// warnings.
pub fn render(config: &Config, keys: &KeysStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", config.file);
    let _ = writeln!(out, "\nserver: listen {}", config.server.listen);
    let _ = writeln!(out, "  ledger {}", config.server.ledger);

    let _ = writeln!(out, "\nbackends:");
    for (name, spec) in &config.backends {
        let _ = match spec {
            BackendSpec::Local(l) => writeln!(
                out,
                "  {name}: local llama.cpp {} ({} slots, {} threads, context {} per slot, queue {})",
                l.model_path.display(),
                l.slots,
                l.threads,
                l.context_per_slot,
                l.queue_capacity
            ),
            BackendSpec::Embedding(e) => writeln!(
                out,
                "  {name}: local embedding {} ({} threads, inputs up to {} tokens, queue {})",
                e.model_path.display(),
                e.threads,
                e.max_input_tokens,
                e.queue_capacity
            ),
            BackendSpec::Classifier(c) => writeln!(
                out,
                "  {name}: local encoder classifier {} ({} threads), heads: {}",
                c.encoder.model_path.display(),
                c.encoder.threads,
                c.heads
                    .iter()
                    .map(|(task, file)| format!("{task} {}", file.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            BackendSpec::Remote(r) => {
                let provider = match r.provider {
                    RemoteProvider::OpenAi => "openai",
                    RemoteProvider::Anthropic => "anthropic",
                };
                let key = match &r.config.api_key_env {
                    None => "no key".to_string(),
                    Some(var) if std::env::var_os(var).is_some() => format!("key from {var} (set)"),
                    Some(var) => format!("key from {var} (NOT SET: the backend will be down)"),
                };
                writeln!(
                    out,
                    "  {name}: remote {provider} {} model {}, {key}",
                    r.config.base_url, r.config.model
                )
            }
        };
    }

    let _ = writeln!(out, "\nroutes (first match wins):");
    for (i, rule) in config.policy.rules().iter().enumerate() {
        let action = match &rule.action {
            RuleAction::To(b) => format!("to {b}"),
            RuleAction::Cascade(c) => format!("cascade: {}", c.describe()),
        };
        let _ = write!(
            out,
            "  {}. {}: when {} -> {action}",
            i + 1,
            rule.name,
            rule.when.describe()
        );
        if !rule.fallback.is_empty() {
            let _ = write!(out, ", fallback [{}]", rule.fallback.join(", "));
        }
        if let Some(spill) = &rule.spill {
            let _ = write!(out, ", spill to {}", spill.to);
            if let Some(q) = spill.queue_depth {
                let _ = write!(out, " at queue depth {q}");
            }
            if let Some(ms) = spill.predicted_ttft_ms {
                let _ = write!(out, " at predicted TTFT {ms} ms");
            }
        }
        out.push('\n');
    }
    if let Some(p) = config.policy.privacy_rule() {
        let _ = writeln!(out, "  privacy rule: {p} (PII stays on local backends)");
    }

    let _ = writeln!(out, "\nprices:");
    for (name, price) in &config.costs.prices {
        let _ = match price {
            BackendPrice::PerToken { input, output } => writeln!(
                out,
                "  {name}: ${input} / ${output} per 1M input / output tokens"
            ),
            BackendPrice::Machine { usd_per_hour } => {
                writeln!(out, "  {name}: ${usd_per_hour} per machine hour")
            }
        };
    }
    if let Some(r) = &config.costs.reference {
        let _ = writeln!(out, "  savings measured against {r}");
    }

    let _ = writeln!(out, "\nbudgets:");
    match config.policy.budgets() {
        None => {
            let _ = writeln!(out, "  none");
        }
        Some(b) => {
            let limits = |l: &crate::policy::Limits| {
                let d = l.daily_usd.map_or("-".into(), |v| format!("${v}"));
                let m = l.monthly_usd.map_or("-".into(), |v| format!("${v}"));
                format!("daily {d}, monthly {m}")
            };
            let _ = writeln!(out, "  global: {}", limits(&b.global));
            let _ = writeln!(out, "  per key: {}", limits(&b.per_key));
            for (tenant, l) in &b.tenants {
                let _ = writeln!(out, "  tenant {tenant}: {}", limits(l));
            }
            let _ = match &b.on_exhausted {
                OnExhausted::Backend(n) => writeln!(out, "  when spent: route to {n}"),
                OnExhausted::Refuse => writeln!(out, "  when spent: refuse (429)"),
            };
            let _ = writeln!(
                out,
                "  requests without max_tokens reserve {} output tokens",
                b.default_max_tokens
            );
        }
    }

    let _ = writeln!(out, "\nkeys:");
    let _ = match keys {
        KeysStatus::NotConfigured => {
            writeln!(out, "  none configured: no authentication (loopback only)")
        }
        KeysStatus::Unset(var) => {
            writeln!(out, "  {var} is not set: no authentication (loopback only)")
        }
        KeysStatus::Set { var, tenants } => writeln!(
            out,
            "  {} key(s) from {var}, tenants: {}",
            tenants.len(),
            tenants.join(", ")
        ),
        KeysStatus::Malformed(why) => writeln!(out, "  {why} (the gateway would not start)"),
    };
    if !config.server.admin_tenants.is_empty() {
        let _ = writeln!(
            out,
            "  admin tenants: {}",
            config.server.admin_tenants.join(", ")
        );
    }

    if !config.warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in &config.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}
