//! Budget admission for [`PolicyCore`](super::configured_routing::PolicyCore): the spend the
//! policy's budget guard sees, and the reservation of a decided request's worst-case cost.
//!
//! Windows are loaded lazily from the SQLite spend counters the first time a (scope, period)
//! is needed; from then on the in-memory [`ReservationLedger`] is the authority and SQLite only
//! persists rows. The worst case of a decision: for one backend and its fallbacks (only one of
//! them answers) the largest per-token cost among them; for a cascade, both steps up front
//! (first + escalation) — so an escalation can never be refused half way. The cost of a call is
//! prompt tokens × input price + completion tokens (`max_tokens`, else
//! `budgets.default_max_tokens`) × output price; machine-priced (local) backends reserve
//! nothing, their busy seconds are settled when the answer ends.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::ledger::budget_periods;
use crate::policy::{budget_refused, Action, Budgets, Decision, Spend};
use crate::pricing::BackendPrice;
use crate::reserve::{micros_down, micros_up, Claim, Hold, Micros, ReservationLedger, WindowKey};
use crate::store::Store;

/// The windows that apply to a tenant now, each with its limit (unlimited ones left out).
fn claims(budgets: &Budgets, tenant: Option<&str>, now_unix_ms: i64) -> Vec<Claim> {
    let (day, month) = budget_periods(now_unix_ms);
    let mut out = Vec::new();
    for (scope, limits) in budgets.scopes(tenant) {
        for (period, limit) in [(&day, limits.daily_usd), (&month, limits.monthly_usd)] {
            if let Some(l) = limit {
                out.push(Claim {
                    key: WindowKey {
                        scope: scope.to_string(),
                        period: period.clone(),
                    },
                    limit: micros_down(l),
                });
            }
        }
    }
    out
}

/// Make sure every window of `tenant` now is in the ledger, seeded from the store's counters.
fn ensure_loaded(
    ledger: &dyn ReservationLedger,
    store: &dyn Store,
    tenant: Option<&str>,
    now_unix_ms: i64,
) {
    let (day, month) = budget_periods(now_unix_ms);
    let key = |scope: &str, period: &String| WindowKey {
        scope: scope.to_string(),
        period: period.clone(),
    };
    let mut keys = vec![key("*", &day), key("*", &month)];
    if let Some(t) = tenant {
        keys.extend([key(t, &day), key(t, &month)]);
    }
    if keys.iter().all(|k| ledger.is_loaded(k)) {
        return;
    }
    let spend = store.spend(tenant, now_unix_ms).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not read spend; budget windows start at 0");
        Spend::default()
    });
    let values = [
        spend.global_day_usd,
        spend.global_month_usd,
        spend.tenant_day_usd,
        spend.tenant_month_usd,
    ];
    for (k, usd) in keys.iter().zip(values) {
        ledger.load(k, micros_up(usd));
    }
}

/// Settled spend of `tenant`'s windows now, for the policy's budget guard.
pub(crate) fn spend(
    ledger: &dyn ReservationLedger,
    store: &dyn Store,
    tenant: Option<&str>,
    now_unix_ms: i64,
) -> Spend {
    ensure_loaded(ledger, store, tenant, now_unix_ms);
    let (day, month) = budget_periods(now_unix_ms);
    let settled = |scope: &str, period: &String| {
        ledger
            .window(&WindowKey {
                scope: scope.to_string(),
                period: period.clone(),
            })
            .settled as f64
            / 1e6
    };
    Spend {
        global_day_usd: settled("*", &day),
        global_month_usd: settled("*", &month),
        tenant_day_usd: tenant.map_or(0.0, |t| settled(t, &day)),
        tenant_month_usd: tenant.map_or(0.0, |t| settled(t, &month)),
    }
}

/// Worst-case cost of `backend` answering `prompt_tokens` + `max_out` tokens (0 for machine
/// prices: local answers are settled, not reserved).
fn call_worst_case(config: &Config, backend: &str, prompt_tokens: u64, max_out: u64) -> Micros {
    match config.costs.prices.get(backend) {
        Some(p @ BackendPrice::PerToken { .. }) => micros_up(p.cost(prompt_tokens, max_out, 0.0)),
        _ => 0,
    }
}

/// Worst-case cost of executing `decision`.
pub(crate) fn worst_case(
    config: &Config,
    decision: &Decision,
    prompt_tokens: u64,
    max_out: u64,
) -> Micros {
    let cost = |b: &str| call_worst_case(config, b, prompt_tokens, max_out);
    let first = match &decision.action {
        Action::Backend(b) => cost(b),
        Action::Cascade(c) => cost(&c.first).saturating_add(cost(&c.escalate_to)),
        Action::Refuse { .. } => return 0,
    };
    decision
        .fallback
        .iter()
        .map(|b| cost(b))
        .fold(first, Micros::max)
}

/// What admission needs to know about a request.
pub(crate) struct Ask<'a> {
    pub(crate) tenant: Option<&'a str>,
    pub(crate) prompt_tokens: u64,
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) expires: Instant,
    pub(crate) now_unix_ms: i64,
}

/// Reserve `decision`'s worst case in every window that applies, or replace it by the
/// `on_exhausted` choice when it does not fit. Returns the decision to execute and the hold
/// its cost is settled through.
pub(crate) fn admit(
    config: &Config,
    ledger: &Arc<dyn ReservationLedger>,
    decision: Decision,
    ask: &Ask<'_>,
) -> (Decision, Option<Hold>) {
    let Some(budgets) = config.policy.budgets() else {
        return (decision, None);
    };
    let claims = claims(budgets, ask.tenant, ask.now_unix_ms);
    let keys: Vec<WindowKey> = claims.iter().map(|c| c.key.clone()).collect();
    let max_out = u64::from(ask.max_output_tokens.unwrap_or(budgets.default_max_tokens));
    let amount = worst_case(config, &decision, ask.prompt_tokens, max_out);
    if amount == 0 || claims.is_empty() {
        return (decision, Some(Hold::new(ledger.clone(), None, keys, 0)));
    }
    match ledger.reserve(&claims, amount, ask.expires) {
        Ok(id) => (
            decision,
            Some(Hold::new(ledger.clone(), Some(id), keys, amount)),
        ),
        Err(refusal) => {
            let refused = budget_refused(&config.policy, decision, &refusal.to_string());
            // What runs instead (a local backend) reserves nothing but its cost still counts.
            (refused, Some(Hold::new(ledger.clone(), None, keys, 0)))
        }
    }
}
