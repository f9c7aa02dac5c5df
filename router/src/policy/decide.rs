//! [`decide`]: one request's facts and the world's state in, a [`Decision`] out — pure, with
//! the privacy and budget guards applied across every rule (see the module docs of
//! [`crate::policy`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CascadeSpec, NonTextParts, OnExhausted, Policy, Rule, RuleAction, Spend};

/// What the gateway knows about a request before routing it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestFacts {
    /// From `x-triage-task`, `metadata.task` or the classifier (`unknown` when unsure).
    pub task: String,
    /// Whether the PII detector found anything in a field the request would forward — or, under
    /// a privacy rule with `pii.non_text: local`, the request carries parts it cannot read.
    pub pii: bool,
    /// Whether the request carries parts the detector cannot read (images, audio, files,
    /// data URLs).
    pub non_text: bool,
    /// Prompt tokens: the local tokenizer's count, or an estimate (UTF-8 bytes / 4).
    pub prompt_tokens: usize,
    /// The prompt text (all messages), for content conditions.
    pub text: String,
    /// The `model` field as the client sent it (`auto`, a route set, …).
    pub requested_model: String,
    /// The tenant the API key belongs to (or the key's hash), when keys are on.
    pub tenant: Option<String>,
    /// Whether the request carries tools.
    pub has_tools: bool,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// Load of one local backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalLoad {
    /// Requests admitted but waiting for a slot.
    pub queue_depth: usize,
    /// Slots currently generating.
    pub busy_slots: usize,
    /// Slots configured.
    pub slots: usize,
    /// The engine's estimate of time to first token for a request admitted now.
    pub predicted_ttft_ms: Option<f64>,
}

/// What the gateway knows about the world when routing a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSnapshot {
    /// By local backend name; a backend without an entry counts as idle.
    pub local: BTreeMap<String, LocalLoad>,
    /// Spend so far today and this month, for the budget guard.
    pub spend: Spend,
}

/// What to do with the request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Call this backend.
    Backend(String),
    /// Call the cascade's first backend and escalate if its answer is not confident enough.
    Cascade(CascadeSpec),
    /// Answer with an error without calling any backend.
    Refuse {
        /// HTTP status of the refusal: 429 budget spent, 403 privacy, 500 no rule matched.
        status: u16,
        /// The error message the client gets.
        message: String,
    },
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

/// Where one request goes and why: the output of [`decide`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The rule that decided (`budget` when a budget overrode it, `privacy` for pinned
    /// requests refused for privacy).
    pub route: String,
    /// What to do with the request.
    pub action: Action,
    /// Backends to try in order when the chosen one fails upstream.
    pub fallback: Vec<String>,
    /// One line for people (ledger, events, `triage route explain`): the conditions that
    /// matched and any override (spill, budget, privacy).
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

/// The refusal of a request with unreadable parts under a privacy rule with
/// `pii.non_text: refuse`, if this is one.
fn refuse_non_text(policy: &Policy, facts: &RequestFacts) -> Option<Decision> {
    let rule = policy.privacy_rule.as_ref()?;
    if !facts.non_text || policy.non_text != NonTextParts::Refuse {
        return None;
    }
    let reason = format!(
        "request has image, audio or file content and privacy rule {rule:?} refuses what it cannot scan (pii.non_text: refuse)"
    );
    Some(Decision {
        route: "privacy".into(),
        action: Action::Refuse {
            status: 400,
            message: "this gateway does not accept image, audio or file content: its privacy \
                      policy cannot check it for personal data (pii.non_text: refuse)"
                .into(),
        },
        fallback: Vec::new(),
        trace: vec![format!("guard: {reason}")],
        reason,
    })
}

/// Route one request. Pure: same inputs, same decision.
pub fn decide(policy: &Policy, facts: &RequestFacts, state: &StateSnapshot) -> Decision {
    if let Some(refused) = refuse_non_text(policy, facts) {
        return refused;
    }
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
            format!("{why} → cascade: {}", c.describe()),
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
    if let Some(refused) = refuse_non_text(policy, facts) {
        return refused;
    }
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

/// A decision whose reservation did not fit a budget: its remote-reaching action is replaced by
/// the `on_exhausted` choice (a local backend, or 429 with `why`), remote fallbacks dropped —
/// exactly what a spent budget does in [`decide`].
pub fn budget_refused(policy: &Policy, decision: Decision, why: &str) -> Decision {
    let Some(budgets) = &policy.budgets else {
        return decision;
    };
    let mut trace = decision.trace;
    trace.push(format!("budget: {why}"));
    let (action, what) = match &budgets.on_exhausted {
        OnExhausted::Backend(b) => (Action::Backend(b.clone()), format!("→ {b}")),
        OnExhausted::Refuse => (
            Action::Refuse {
                status: 429,
                message: format!("budget exhausted: {why}"),
            },
            "→ refuse 429".to_string(),
        ),
    };
    let fallback = decision
        .fallback
        .into_iter()
        .filter(|b| !policy.is_remote(b) && Some(b.as_str()) != action.first_backend())
        .collect();
    Decision {
        route: "budget".into(),
        reason: format!("{why} (route {:?}) {what}", decision.route),
        action,
        fallback,
        trace,
    }
}
