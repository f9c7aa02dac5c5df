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
//!
//! The same ledger call takes the request's share of its key's rate limits (`rate_limits:`,
//! one request and prompt + `max_tokens` tokens), so with a shared store admission is one
//! round trip. A rate limit without room is a 429 with `Retry-After`. When the shared store
//! does not answer, `store_failure` decides: `fail_open` admits unchecked (and logs it),
//! `fail_closed` keeps the request only if it can run on a local backend, else 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::ApiError;
use crate::config::Config;
use crate::ledger::budget_periods;
use crate::policy::{
    budget_refused, Action, Budgets, Decision, OnExhausted, Spend, DEFAULT_MAX_TOKENS,
};
use crate::pricing::BackendPrice;
use crate::reserve::{
    micros_down, micros_up, Ask as Reservation, Claim, Denied, Hold, Micros, RateAsk,
    ReservationLedger, StoreFailure, WindowKey,
};
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

/// Reserve `decision`'s worst case in every window that applies and take its share of the
/// key's rate limits, in one ledger call. A budget without room replaces the decision by the
/// `on_exhausted` choice; a rate limit without room is a 429 with `Retry-After`; a shared
/// store that does not answer follows `store_failure`. Returns the decision to execute and the
/// hold its cost is settled through.
pub(crate) async fn admit(
    config: &Config,
    ledger: &Arc<dyn ReservationLedger>,
    decision: Decision,
    ask: &Ask<'_>,
) -> Result<(Decision, Option<Hold>), ApiError> {
    if matches!(decision.action, Action::Refuse { .. }) {
        return Ok((decision, None));
    }
    let budgets = config.policy.budgets();
    let limit = config.shared.rate_limits.for_tenant(ask.tenant);
    if budgets.is_none() && limit.is_none() {
        return Ok((decision, None));
    }
    let claims = budgets.map_or_else(Vec::new, |b| claims(b, ask.tenant, ask.now_unix_ms));
    let keys: Vec<WindowKey> = claims.iter().map(|c| c.key.clone()).collect();
    let max_out = u64::from(
        ask.max_output_tokens
            .unwrap_or(budgets.map_or(DEFAULT_MAX_TOKENS, |b| b.default_max_tokens)),
    );
    let amount = if claims.is_empty() {
        0
    } else {
        worst_case(config, &decision, ask.prompt_tokens, max_out)
    };
    let rate = limit.zip(ask.tenant).map(|(limit, t)| RateAsk {
        scope: t.to_string(),
        limit,
        tokens: ask.prompt_tokens.saturating_add(max_out),
    });
    // Nothing to reserve and no limit to charge: the cost still counts when it is known.
    let unreserved = |rate: Option<RateAsk>| {
        let hold = Hold::new(ledger.clone(), None, keys.clone(), 0);
        Some(match rate {
            Some(r) => hold.with_tokens(r),
            None => hold,
        })
    };
    if amount == 0 && rate.is_none() {
        return Ok((decision, unreserved(None)));
    }
    let result = ledger
        .reserve(Reservation {
            claims,
            amount,
            expires: ask.expires,
            rate: rate.clone(),
        })
        .await;
    match result {
        Ok(id) => {
            let hold = Hold::new(
                ledger.clone(),
                (amount > 0).then_some(id),
                keys.clone(),
                amount,
            );
            Ok((
                decision,
                Some(match rate {
                    Some(r) => hold.with_tokens(r),
                    None => hold,
                }),
            ))
        }
        Err(Denied::Budget(refusal)) => {
            let refused = budget_refused(&config.policy, decision, &refusal.to_string());
            // What runs instead (a local backend) reserves nothing but its cost still counts,
            // and the rate limits were charged for it.
            Ok((refused, unreserved(rate)))
        }
        Err(Denied::Rate(limited)) => Err(ApiError::too_many_requests(
            limited.to_string(),
            "rate_limit_exceeded",
        )
        .with_retry_after(limited.retry_after.unwrap_or(Duration::from_secs(60)))),
        Err(denied) => store_failed(config, decision, &denied, ask.tenant)
            .map(|decision| (decision, unreserved(None))),
    }
}

/// The shared store did not answer: `fail_open` runs the decision unchecked, `fail_closed`
/// runs it only on a local backend (its own, a local fallback, or `budgets.on_exhausted`),
/// else 503.
fn store_failed(
    config: &Config,
    decision: Decision,
    denied: &Denied,
    tenant: Option<&str>,
) -> Result<Decision, ApiError> {
    match config.shared.on_failure {
        StoreFailure::FailOpen => {
            tracing::warn!(
                error = %denied,
                tenant = tenant.unwrap_or("-"),
                route = %decision.route,
                "admitted without budget or rate-limit checks (store_failure: fail_open)"
            );
            Ok(decision)
        }
        StoreFailure::FailClosed => {
            let policy = &config.policy;
            let local = |b: &&String| !policy.is_remote(b);
            let on_exhausted = policy.budgets().and_then(|b| match &b.on_exhausted {
                OnExhausted::Backend(b) => Some(b),
                OnExhausted::Refuse => None,
            });
            let target = match &decision.action {
                Action::Backend(b) if local(&b) => return Ok(decision),
                Action::Cascade(c) if local(&&c.first) => Some(c.first.clone()),
                _ => decision
                    .fallback
                    .iter()
                    .find(local)
                    .or(on_exhausted.filter(local))
                    .cloned(),
            };
            let Some(backend) = target else {
                return Err(ApiError::unavailable(format!(
                    "The shared budget store cannot be reached and this request's route {:?} has no local backend (store_failure: fail_closed): {denied}",
                    decision.route
                ))
                .with_code("store_unavailable"));
            };
            let mut trace = decision.trace;
            trace.push(format!("store: {denied}"));
            Ok(Decision {
                route: "store".into(),
                reason: format!(
                    "shared store unreachable (route {:?}) → {backend} (store_failure: fail_closed)",
                    decision.route
                ),
                action: Action::Backend(backend.clone()),
                fallback: decision
                    .fallback
                    .into_iter()
                    .filter(|b| local(&b) && *b != backend)
                    .collect(),
                trace,
            })
        }
    }
}
