//! The routing policy and its decision function.
//!
//! A [`Policy`] is an ordered list of rules (first match wins) plus budgets, built only by
//! config validation ([`crate::config`]), so every backend it names exists, every cascade has
//! both sides, every set is non-empty and the last rule matches everything.
//!
//! [`decide`] is pure: the same [`RequestFacts`] and [`StateSnapshot`] always give the same
//! [`Decision`] — no clock, no I/O, no randomness. The gateway gathers the facts (task,
//! PII, token count, …) and the state (local queue, budget spend) and acts on the decision.
//!
//! Two guarantees hold across every rule:
//! - **privacy**: when the policy has a privacy rule (`when: {pii: true}` sending to a local
//!   backend), a request with detected PII never reaches a remote backend — rules that would
//!   send it remote are skipped, and remote fallbacks and spills are dropped;
//! - **budgets**: once a daily/monthly budget (global or the tenant's) is spent, nothing is
//!   sent to a remote backend: the request goes to the `on_exhausted` local backend or is
//!   refused with 429.
//!
//! Under the privacy rule, content the PII detector cannot read (images, audio, files) counts
//! as PII (`pii.non_text: local`, the default: `gather_facts` sets `pii`) or is refused with
//! 400 (`pii.non_text: refuse`, here), never forwarded unread.

mod budget;
mod cascade;
mod decide;

pub use budget::{Budgets, Limits, OnExhausted, Spend, DEFAULT_MAX_TOKENS};
pub use cascade::{CascadeSignal, CascadeSpec, CascadeVerdict, Evidence, ThresholdError};
pub use decide::{
    budget_refused, decide, decide_pinned, Action, Decision, LocalLoad, RequestFacts, StateSnapshot,
};

use std::collections::BTreeMap;
use std::fmt::Write as _;

use regex::Regex;
use serde::Serialize;

/// A vector with at least one element (config validation builds them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NonEmpty<T>(Vec<T>);

impl<T> NonEmpty<T> {
    /// `None` when `items` is empty.
    pub fn new(items: Vec<T>) -> Option<Self> {
        (!items.is_empty()).then_some(Self(items))
    }
    /// The elements, never empty.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

/// Where a backend runs; the privacy and budget guarantees depend on it. The gateway's
/// backend slots carry it too (local ones feed spill decisions and the engine gauges).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Locality {
    /// In this process or on this machine (`kind: llama`): data stays here, no per-token bill.
    Local,
    /// Behind an HTTP API elsewhere: PII must not go there, and it spends the budgets.
    Remote,
}

/// What the privacy rule does with content the PII detector cannot read (images, audio,
/// files, data URLs): `pii.non_text` in the config. Either way such a request never reaches a
/// remote backend silently while a privacy rule is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NonTextParts {
    /// Treat the request as holding PII: it matches `when: {pii: true}` and stays local.
    #[default]
    Local,
    /// Refuse the request with 400.
    Refuse,
}

/// Inclusive bounds on the prompt's token count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRange {
    /// Smallest token count that matches; `None`: no lower bound.
    pub min: Option<usize>,
    /// Largest token count that matches; `None`: no upper bound.
    pub max: Option<usize>,
}

impl TokenRange {
    /// Whether `n` tokens fall within the bounds.
    pub fn contains(&self, n: usize) -> bool {
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }
}

/// Conditions of one rule; all present conditions must hold (an empty set matches everything).
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// `when.task`: the request's task must be one of these.
    pub task: Option<NonEmpty<String>>,
    /// `when.pii`: whether the PII detector must (true) or must not (false) have found something.
    pub pii: Option<bool>,
    /// `when.prompt_tokens`: bounds on the prompt's token count.
    pub prompt_tokens: Option<TokenRange>,
    /// `when.content`: a regex the prompt text must match.
    pub content: Option<Regex>,
    /// `when.model`: the `model` the client sent must be one of these.
    pub model: Option<NonEmpty<String>>,
    /// `when.tenant`: the API key's tenant must be one of these (no tenant: no match).
    pub tenant: Option<NonEmpty<String>>,
    /// `when.tools`: whether the request must (true) or must not (false) carry tools.
    pub tools: Option<bool>,
    /// `when.stream`: whether the request must (true) or must not (false) be streamed.
    pub stream: Option<bool>,
}

impl Conditions {
    /// Whether no condition is set, so the rule matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.task.is_none()
            && self.pii.is_none()
            && self.prompt_tokens.is_none()
            && self.content.is_none()
            && self.model.is_none()
            && self.tenant.is_none()
            && self.tools.is_none()
            && self.stream.is_none()
    }

    /// The conditions as written, e.g. `task in [qa, summary], pii false`; `always` for none.
    pub fn describe(&self) -> String {
        let list = |v: &NonEmpty<String>| format!("[{}]", v.as_slice().join(", "));
        let mut parts = Vec::new();
        if let Some(t) = &self.task {
            parts.push(format!("task in {}", list(t)));
        }
        if let Some(p) = self.pii {
            parts.push(format!("pii {p}"));
        }
        if let Some(r) = &self.prompt_tokens {
            parts.push(format!("prompt tokens in {}", describe_range(r)));
        }
        if let Some(re) = &self.content {
            parts.push(format!("content matches /{}/", re.as_str()));
        }
        if let Some(m) = &self.model {
            parts.push(format!("model in {}", list(m)));
        }
        if let Some(t) = &self.tenant {
            parts.push(format!("tenant in {}", list(t)));
        }
        if let Some(t) = self.tools {
            parts.push(format!("tools {t}"));
        }
        if let Some(s) = self.stream {
            parts.push(format!("stream {s}"));
        }
        if parts.is_empty() {
            "always".into()
        } else {
            parts.join(", ")
        }
    }

    /// `Ok(why it matched)` or `Err(the first condition that failed)`.
    pub(crate) fn check(&self, f: &RequestFacts) -> Result<String, String> {
        let mut why = String::new();
        let mut note = |s: std::fmt::Arguments<'_>| {
            if !why.is_empty() {
                why.push_str(", ");
            }
            let _ = why.write_fmt(s);
        };
        if let Some(tasks) = &self.task {
            if !tasks.as_slice().contains(&f.task) {
                return Err(format!("task {} not in {:?}", f.task, tasks.as_slice()));
            }
            note(format_args!("task {}", f.task));
        }
        if let Some(pii) = self.pii {
            if pii != f.pii {
                return Err(format!("pii is {}", f.pii));
            }
            note(format_args!("pii {}", f.pii));
        }
        if let Some(range) = &self.prompt_tokens {
            if !range.contains(f.prompt_tokens) {
                return Err(format!(
                    "prompt tokens {} outside {}",
                    f.prompt_tokens,
                    describe_range(range)
                ));
            }
            note(format_args!(
                "prompt tokens {} in {}",
                f.prompt_tokens,
                describe_range(range)
            ));
        }
        if let Some(re) = &self.content {
            if !re.is_match(&f.text) {
                return Err(format!("content does not match /{}/", re.as_str()));
            }
            note(format_args!("content matches /{}/", re.as_str()));
        }
        if let Some(models) = &self.model {
            if !models.as_slice().contains(&f.requested_model) {
                return Err(format!(
                    "model {:?} not in {:?}",
                    f.requested_model,
                    models.as_slice()
                ));
            }
            note(format_args!("model {}", f.requested_model));
        }
        if let Some(tenants) = &self.tenant {
            match &f.tenant {
                Some(t) if tenants.as_slice().contains(t) => note(format_args!("tenant {t}")),
                Some(t) => return Err(format!("tenant {t} not in {:?}", tenants.as_slice())),
                None => return Err("no tenant".to_string()),
            }
        }
        if let Some(tools) = self.tools {
            if tools != f.has_tools {
                return Err(format!("tools is {}", f.has_tools));
            }
            note(format_args!("tools {}", f.has_tools));
        }
        if let Some(stream) = self.stream {
            if stream != f.stream {
                return Err(format!("stream is {}", f.stream));
            }
            note(format_args!("stream {}", f.stream));
        }
        if why.is_empty() {
            why.push_str("catch-all");
        }
        Ok(why)
    }
}

fn describe_range(r: &TokenRange) -> String {
    match (r.min, r.max) {
        (Some(a), Some(b)) => format!("[{a}, {b}]"),
        (Some(a), None) => format!("[{a}, ∞)"),
        (None, Some(b)) => format!("[0, {b}]"),
        (None, None) => "[0, ∞)".into(),
    }
}

/// Send to another backend when the local one is too busy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spill {
    /// The backend to send to instead.
    pub to: String,
    /// Spill when the local backend's queue holds at least this many requests.
    pub queue_depth: Option<usize>,
    /// Spill when the engine predicts a time to first token of at least this many milliseconds.
    pub predicted_ttft_ms: Option<f64>,
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// `to:` send to this backend.
    To(String),
    /// `cascade:` try a first backend and escalate when its answer is not confident enough.
    Cascade(CascadeSpec),
}

/// One entry of `routes:`: conditions, what to do, and what to do when that fails or is busy.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The rule's `name`, reported as the decision's route.
    pub name: String,
    /// When the rule matches.
    pub when: Conditions,
    /// Where a matching request goes.
    pub action: RuleAction,
    /// Tried in order when the chosen backend fails upstream.
    pub fallback: Vec<String>,
    /// Where to go when the chosen local backend is too busy, if anywhere.
    pub spill: Option<Spill>,
}

/// A validated routing policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) rules: Vec<Rule>,
    pub(crate) budgets: Option<Budgets>,
    pub(crate) backends: BTreeMap<String, Locality>,
    /// The first rule with `when: {pii: true}` that keeps data local, if any.
    pub(crate) privacy_rule: Option<String>,
    /// What the privacy rule does with parts the detector cannot read.
    pub(crate) non_text: NonTextParts,
}

impl Policy {
    /// The rules in the order they are tried (the last one matches everything).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    /// The spending limits, when `budgets:` is configured.
    pub fn budgets(&self) -> Option<&Budgets> {
        self.budgets.as_ref()
    }
    /// Where the named backend runs; `None` for a name the config does not have.
    pub fn locality(&self, backend: &str) -> Option<Locality> {
        self.backends.get(backend).copied()
    }
    /// Whether the named backend is remote (false for unknown names).
    pub fn is_remote(&self, backend: &str) -> bool {
        self.locality(backend) == Some(Locality::Remote)
    }
    /// The name of the rule that keeps PII local, if the policy has one.
    pub fn privacy_rule(&self) -> Option<&str> {
        self.privacy_rule.as_deref()
    }
    /// What the privacy rule does with images, audio and files (`pii.non_text`).
    pub fn non_text(&self) -> NonTextParts {
        self.non_text
    }
    /// Every configured backend name, sorted.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }
}
