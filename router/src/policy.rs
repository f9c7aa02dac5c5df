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

use std::collections::BTreeMap;
use std::fmt::Write as _;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A vector with at least one element (config validation builds them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NonEmpty<T>(Vec<T>);

impl<T> NonEmpty<T> {
    /// `None` when `items` is empty.
    pub fn new(items: Vec<T>) -> Option<Self> {
        (!items.is_empty()).then_some(Self(items))
    }
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

/// Where a backend runs; the privacy and budget guarantees depend on it. The gateway's
/// backend slots carry it too (local ones feed spill decisions and the engine gauges).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Locality {
    Local,
    Remote,
}

/// Inclusive bounds on the prompt's token count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRange {
    pub min: Option<usize>,
    pub max: Option<usize>,
}

impl TokenRange {
    pub fn contains(&self, n: usize) -> bool {
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }
}

/// Conditions of one rule; all present conditions must hold (an empty set matches everything).
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    pub task: Option<NonEmpty<String>>,
    pub pii: Option<bool>,
    pub prompt_tokens: Option<TokenRange>,
    pub content: Option<Regex>,
    pub model: Option<NonEmpty<String>>,
    pub tenant: Option<NonEmpty<String>>,
    pub tools: Option<bool>,
    pub stream: Option<bool>,
}

impl Conditions {
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

    /// `Ok(why it matched)` or `Err(the first condition that failed)`.
    fn check(&self, f: &RequestFacts) -> Result<String, String> {
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

/// Answer with a (local) model first, and escalate unless its answer is confident enough.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CascadeSpec {
    pub first: String,
    pub escalate_to: String,
    /// Accept when exp(mean token log-probability) — the geometric-mean token probability —
    /// is at least this (0..=1).
    pub min_confidence: f64,
    /// Also require every token's log-probability to be at least this (≤ 0), when set.
    pub min_token_logprob: Option<f64>,
    /// Accept regardless of confidence when the answer satisfied a `choices` or JSON-schema
    /// constraint.
    pub accept_if_constrained: bool,
}

/// Accept or escalate a cascade's first answer, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CascadeVerdict {
    pub accept: bool,
    pub reason: String,
    /// exp(mean token log-probability), when there were tokens.
    pub confidence: Option<f64>,
    pub min_token_logprob: Option<f64>,
}

impl CascadeSpec {
    /// Judge the first backend's answer from its token log-probabilities and whether it
    /// satisfied a constraint (`None`: the request had none).
    pub fn judge(
        &self,
        token_logprobs: &[f32],
        constraint_satisfied: Option<bool>,
    ) -> CascadeVerdict {
        let (confidence, min_lp) = if token_logprobs.is_empty() {
            (None, None)
        } else {
            let mean = token_logprobs.iter().map(|&x| f64::from(x)).sum::<f64>()
                / token_logprobs.len() as f64;
            let min = token_logprobs
                .iter()
                .map(|&x| f64::from(x))
                .fold(f64::INFINITY, f64::min);
            (Some(mean.exp()), Some(min))
        };
        let verdict = |accept: bool, reason: String| CascadeVerdict {
            accept,
            reason,
            confidence,
            min_token_logprob: min_lp,
        };
        match constraint_satisfied {
            Some(true) if self.accept_if_constrained => {
                return verdict(true, "answer satisfied the request's constraint".into())
            }
            Some(false) => {
                return verdict(false, "answer violated the request's constraint".into())
            }
            _ => {}
        }
        let Some(conf) = confidence else {
            return verdict(
                false,
                "no token log-probabilities to judge confidence".into(),
            );
        };
        if conf.is_nan() || conf < self.min_confidence {
            return verdict(
                false,
                format!(
                    "confidence {conf:.3} < min_confidence {:.3}",
                    self.min_confidence
                ),
            );
        }
        if let (Some(limit), Some(min)) = (self.min_token_logprob, min_lp) {
            if min < limit {
                return verdict(
                    false,
                    format!("weakest token log-prob {min:.3} < min_token_logprob {limit:.3}"),
                );
            }
        }
        verdict(
            true,
            format!(
                "confidence {conf:.3} >= min_confidence {:.3}",
                self.min_confidence
            ),
        )
    }
}

/// Send to another backend when the local one is too busy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spill {
    pub to: String,
    pub queue_depth: Option<usize>,
    pub predicted_ttft_ms: Option<f64>,
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    To(String),
    Cascade(CascadeSpec),
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub when: Conditions,
    pub action: RuleAction,
    /// Tried in order when the chosen backend fails upstream.
    pub fallback: Vec<String>,
    pub spill: Option<Spill>,
}

/// Limits in USD; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Limits {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

impl Limits {
    fn exhausted(&self, day: f64, month: f64, scope: &str) -> Option<String> {
        if let Some(l) = self.daily_usd {
            if day >= l {
                return Some(format!("{scope} daily budget ${l:.2} spent (${day:.4})"));
            }
        }
        if let Some(l) = self.monthly_usd {
            if month >= l {
                return Some(format!(
                    "{scope} monthly budget ${l:.2} spent (${month:.4})"
                ));
            }
        }
        None
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// Route to this local backend.
    Backend(String),
    /// Answer 429.
    Refuse,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budgets {
    pub global: Limits,
    /// Default limits for every tenant (API key).
    pub per_key: Limits,
    /// Limits for named tenants, replacing `per_key`.
    pub tenants: BTreeMap<String, Limits>,
    pub on_exhausted: OnExhausted,
}

impl Budgets {
    fn exhausted(&self, tenant: Option<&str>, spend: &Spend) -> Option<String> {
        if let Some(why) =
            self.global
                .exhausted(spend.global_day_usd, spend.global_month_usd, "global")
        {
            return Some(why);
        }
        let t = tenant?;
        let limits = self.tenants.get(t).unwrap_or(&self.per_key);
        limits.exhausted(
            spend.tenant_day_usd,
            spend.tenant_month_usd,
            &format!("tenant {t}"),
        )
    }
}

/// A validated routing policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) rules: Vec<Rule>,
    pub(crate) budgets: Option<Budgets>,
    pub(crate) backends: BTreeMap<String, Locality>,
    /// The first rule with `when: {pii: true}` that keeps data local, if any.
    pub(crate) privacy_rule: Option<String>,
}

impl Policy {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn budgets(&self) -> Option<&Budgets> {
        self.budgets.as_ref()
    }
    pub fn locality(&self, backend: &str) -> Option<Locality> {
        self.backends.get(backend).copied()
    }
    pub fn is_remote(&self, backend: &str) -> bool {
        self.locality(backend) == Some(Locality::Remote)
    }
    pub fn privacy_rule(&self) -> Option<&str> {
        self.privacy_rule.as_deref()
    }
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }
}

/// What the gateway knows about a request before routing it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestFacts {
    /// From `x-triage-task`, `metadata.task` or the classifier (`unknown` when unsure).
    pub task: String,
    /// Whether the PII detector found anything.
    pub pii: bool,
    pub prompt_tokens: usize,
    /// The prompt text (all messages), for content conditions.
    pub text: String,
    /// The `model` field as the client sent it (`auto`, a route set, …).
    pub requested_model: String,
    /// The tenant the API key belongs to (or the key's hash), when keys are on.
    pub tenant: Option<String>,
    pub has_tools: bool,
    pub stream: bool,
}

/// Load of one local backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalLoad {
    pub queue_depth: usize,
    pub busy_slots: usize,
    pub slots: usize,
    /// The engine's estimate of time to first token for a request admitted now.
    pub predicted_ttft_ms: Option<f64>,
}

/// Spend so far in the current UTC day and month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spend {
    pub global_day_usd: f64,
    pub global_month_usd: f64,
    /// The request's tenant (0 when there is none).
    pub tenant_day_usd: f64,
    pub tenant_month_usd: f64,
}

/// What the gateway knows about the world when routing a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSnapshot {
    /// By local backend name; a backend without an entry counts as idle.
    pub local: BTreeMap<String, LocalLoad>,
    pub spend: Spend,
}

/// What to do with the request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Backend(String),
    Cascade(CascadeSpec),
    Refuse { status: u16, message: String },
}

impl Action {
    /// The backend that is called first (none when refused).
    pub fn first_backend(&self) -> Option<&str> {
        match self {
            Action::Backend(b) => Some(b),
            Action::Cascade(c) => Some(&c.first),
            Action::Refuse { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The rule that decided (`budget` when a budget overrode it, `privacy` for pinned
    /// requests refused for privacy).
    pub route: String,
    pub action: Action,
    /// Backends to try in order when the chosen one fails upstream.
    pub fallback: Vec<String>,
    pub reason: String,
    /// Every rule and guard checked, in order.
    pub trace: Vec<String>,
}

/// Why remote backends are off-limits for this request, if they are.
fn remote_block(
    policy: &Policy,
    facts: &RequestFacts,
    state: &StateSnapshot,
) -> (Option<String>, Option<String>) {
    let privacy = match (&policy.privacy_rule, facts.pii) {
        (Some(rule), true) => Some(format!("request has PII and privacy rule {rule:?} is on")),
        _ => None,
    };
    let budget = policy
        .budgets
        .as_ref()
        .and_then(|b| b.exhausted(facts.tenant.as_deref(), &state.spend));
    (privacy, budget)
}

fn action_reaches_remote(policy: &Policy, action: &RuleAction) -> bool {
    match action {
        RuleAction::To(b) => policy.is_remote(b),
        RuleAction::Cascade(c) => policy.is_remote(&c.first) || policy.is_remote(&c.escalate_to),
    }
}

/// Route one request. Pure: same inputs, same decision.
pub fn decide(policy: &Policy, facts: &RequestFacts, state: &StateSnapshot) -> Decision {
    let mut trace = Vec::with_capacity(policy.rules.len() + 2);
    let (privacy, budget) = remote_block(policy, facts, state);
    if let Some(p) = &privacy {
        trace.push(format!("guard: {p}: remote backends are off-limits"));
    }
    if let Some(b) = &budget {
        trace.push(format!("guard: {b}"));
    }
    for rule in &policy.rules {
        let why = match rule.when.check(facts) {
            Ok(why) => why,
            Err(failed) => {
                trace.push(format!("rule {:?}: no ({failed})", rule.name));
                continue;
            }
        };
        if privacy.is_some() && action_reaches_remote(policy, &rule.action) {
            trace.push(format!(
                "rule {:?}: matched ({why}) but skipped: would send PII to a remote backend",
                rule.name
            ));
            continue;
        }
        trace.push(format!("rule {:?}: match ({why})", rule.name));
        return finish(
            policy,
            rule,
            why,
            facts,
            state,
            privacy.is_some(),
            budget,
            trace,
        );
    }
    trace.push("no rule matched".into());
    Decision {
        route: "none".into(),
        action: Action::Refuse {
            status: 500,
            message: "no routing rule matched this request".into(),
        },
        fallback: Vec::new(),
        reason: "no rule matched".into(),
        trace,
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    policy: &Policy,
    rule: &Rule,
    why: String,
    facts: &RequestFacts,
    state: &StateSnapshot,
    private: bool,
    budget: Option<String>,
    mut trace: Vec<String>,
) -> Decision {
    let _ = facts;
    let remote_ok = !private && budget.is_none();
    // Budget: a remote-reaching action is replaced by the on_exhausted choice.
    if let (Some(exhausted), Some(budgets)) = (&budget, &policy.budgets) {
        if action_reaches_remote(policy, &rule.action) {
            let (action, what) = match &budgets.on_exhausted {
                OnExhausted::Backend(b) => (Action::Backend(b.clone()), format!("→ {b}")),
                OnExhausted::Refuse => (
                    Action::Refuse {
                        status: 429,
                        message: format!("budget exhausted: {exhausted}"),
                    },
                    "→ refuse 429".to_string(),
                ),
            };
            trace.push(format!(
                "budget: rule {:?} would reach a remote backend {what}",
                rule.name
            ));
            let fallback = local_fallback(policy, rule, action.first_backend(), &mut trace);
            return Decision {
                route: "budget".into(),
                action,
                fallback,
                reason: format!("{exhausted} (rule {:?} matched: {why}) {what}", rule.name),
                trace,
            };
        }
    }
    let (mut action, mut reason) = match &rule.action {
        RuleAction::To(b) => (Action::Backend(b.clone()), format!("{why} → {b}")),
        RuleAction::Cascade(c) => (
            Action::Cascade(c.clone()),
            format!(
                "{why} → cascade {} then {} below confidence {}",
                c.first, c.escalate_to, c.min_confidence
            ),
        ),
    };
    if let (Some(spill), Some(first)) = (&rule.spill, action.first_backend()) {
        let load = state.local.get(first).copied().unwrap_or_default();
        let over_queue = spill.queue_depth.filter(|&n| load.queue_depth >= n);
        let over_ttft = spill
            .predicted_ttft_ms
            .zip(load.predicted_ttft_ms)
            .filter(|(limit, p)| p >= limit);
        if over_queue.is_some() || over_ttft.is_some() {
            let cause = match (over_queue, over_ttft) {
                (Some(n), _) => format!("queue depth {} >= {n}", load.queue_depth),
                (None, Some((limit, p))) => format!("predicted TTFT {p:.0} ms >= {limit:.0} ms"),
                (None, None) => String::new(),
            };
            if remote_ok || !policy.is_remote(&spill.to) {
                trace.push(format!("spill: {first} busy ({cause}) → {}", spill.to));
                reason = format!("{why} → {first} busy ({cause}), spilled to {}", spill.to);
                action = Action::Backend(spill.to.clone());
            } else {
                trace.push(format!(
                    "spill: {first} busy ({cause}) but {} is remote and remote is off-limits; staying",
                    spill.to
                ));
            }
        } else {
            trace.push(format!(
                "spill: {first} not busy (queue {}, predicted TTFT {})",
                load.queue_depth,
                load.predicted_ttft_ms
                    .map(|p| format!("{p:.0} ms"))
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
    }
    let fallback = if remote_ok {
        rule.fallback
            .iter()
            .filter(|b| Some(b.as_str()) != action.first_backend())
            .cloned()
            .collect()
    } else {
        local_fallback(policy, rule, action.first_backend(), &mut trace)
    };
    Decision {
        route: rule.name.clone(),
        action,
        fallback,
        reason,
        trace,
    }
}

/// The rule's fallbacks that are local and not the chosen backend; notes dropped ones.
fn local_fallback(
    policy: &Policy,
    rule: &Rule,
    chosen: Option<&str>,
    trace: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for b in &rule.fallback {
        if policy.is_remote(b) {
            trace.push(format!("fallback {b} dropped: remote is off-limits"));
        } else if Some(b.as_str()) != chosen {
            out.push(b.clone());
        }
    }
    out
}

/// A request that names a backend directly (`model: "slm"`): no rules, but the privacy and
/// budget guarantees still hold.
pub fn decide_pinned(
    policy: &Policy,
    facts: &RequestFacts,
    state: &StateSnapshot,
    backend: &str,
) -> Decision {
    let mut trace = vec![format!("pinned: the request names backend {backend}")];
    let (privacy, budget) = remote_block(policy, facts, state);
    if policy.is_remote(backend) {
        if let Some(p) = privacy {
            trace.push(format!("guard: {p}"));
            return Decision {
                route: "privacy".into(),
                action: Action::Refuse {
                    status: 403,
                    message: format!(
                        "backend {backend} is remote and the request contains personal data; \
                         the privacy policy keeps such requests local"
                    ),
                },
                fallback: Vec::new(),
                reason: p,
                trace,
            };
        }
        if let (Some(b), Some(budgets)) = (budget, &policy.budgets) {
            trace.push(format!("guard: {b}"));
            let action = match &budgets.on_exhausted {
                OnExhausted::Backend(local) => Action::Backend(local.clone()),
                OnExhausted::Refuse => Action::Refuse {
                    status: 429,
                    message: format!("budget exhausted: {b}"),
                },
            };
            return Decision {
                route: "budget".into(),
                action,
                fallback: Vec::new(),
                reason: b,
                trace,
            };
        }
    }
    Decision {
        route: "pinned".into(),
        action: Action::Backend(backend.to_string()),
        fallback: Vec::new(),
        reason: format!("request pinned backend {backend}"),
        trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cascade(min_confidence: f64, min_token_logprob: Option<f64>) -> CascadeSpec {
        CascadeSpec {
            first: "slm".into(),
            escalate_to: "llm".into(),
            min_confidence,
            min_token_logprob,
            accept_if_constrained: true,
        }
    }

    #[test]
    fn cascade_judgement_table() {
        let ln = |p: f64| p.ln() as f32;
        // (spec, logprobs, constraint, accept, reason contains)
        type Case = (CascadeSpec, Vec<f32>, Option<bool>, bool, &'static str);
        let cases: Vec<Case> = vec![
            (
                cascade(0.6, None),
                vec![ln(0.9), ln(0.8)],
                None,
                true,
                ">= min_confidence",
            ),
            (
                cascade(0.9, None),
                vec![ln(0.9), ln(0.8)],
                None,
                false,
                "< min_confidence",
            ),
            (
                cascade(0.4, Some(-1.0)),
                vec![ln(0.99), ln(0.2)],
                None,
                false,
                "weakest token",
            ),
            (
                cascade(0.4, Some(-2.0)),
                vec![ln(0.99), ln(0.2)],
                None,
                true,
                ">= min_confidence",
            ),
            (
                cascade(0.99, None),
                vec![ln(0.1)],
                Some(true),
                true,
                "satisfied",
            ),
            (
                cascade(0.1, None),
                vec![ln(0.9)],
                Some(false),
                false,
                "violated",
            ),
            (
                cascade(0.1, None),
                vec![],
                None,
                false,
                "no token log-probabilities",
            ),
            (
                CascadeSpec {
                    accept_if_constrained: false,
                    ..cascade(0.99, None)
                },
                vec![ln(0.5)],
                Some(true),
                false,
                "< min_confidence",
            ),
        ];
        for (i, (spec, lps, constraint, accept, reason)) in cases.into_iter().enumerate() {
            let v = spec.judge(&lps, constraint);
            assert_eq!(v.accept, accept, "case {i}: {v:?}");
            assert!(v.reason.contains(reason), "case {i}: {v:?}");
        }
        let v = cascade(0.5, None).judge(&[ln(0.5), ln(0.5)], None);
        assert!((v.confidence.unwrap() - 0.5).abs() < 1e-6);
    }
}
