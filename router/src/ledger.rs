//! The ledger: one row per request that reached the gateway (time, tenant or hashed key, task,
//! rule, backends tried, escalation, tokens, cost, saved, TTFT, end-to-end time, status), and
//! the totals `triage ledger summary` prints by backend, route and task.
//!
//! Rows never hold an API key: [`LedgerRow::key`] is the tenant name or
//! [`crate::gateway::auth::hashed_key_label`] of the key. Storage is behind [`crate::store::Store`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// One finished request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// When the request arrived, Unix milliseconds (UTC).
    pub time_unix_ms: i64,
    /// Tenant name or hashed key label (never the raw key); `-` without authentication.
    pub key: String,
    /// The task the router used (header, `metadata.task`, classifier, or `unknown`).
    pub task: String,
    /// The rule that decided (`pinned`, `budget`, … for the special cases).
    pub route: String,
    /// Backends called, in order; the last one produced the answer (empty when refused) unless
    /// [`LedgerRow::answered_by`] says otherwise.
    pub backends: Vec<String>,
    /// The backend whose answer the client got, when it is not the last one called (a cascade
    /// whose escalation failed keeps its first answer); `None`: the last one called.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// Whether a cascade escalated (or a fallback was used).
    pub escalated: bool,
    /// Prompt tokens of the answer, as its backend counted them.
    pub tokens_in: u64,
    /// Completion tokens of the answer.
    pub tokens_out: u64,
    /// What the request cost in USD, rejected cascade answers included.
    pub cost_usd: f64,
    /// The reference backend's price for the same tokens minus `cost_usd` (negative when routing
    /// cost more; 0 without a reference).
    pub saved_usd: f64,
    /// Milliseconds from arrival to the first content token; `None` when no token came.
    pub ttft_ms: Option<f64>,
    /// Milliseconds from arrival to the end of the answer.
    pub e2e_ms: f64,
    /// The HTTP status the client got.
    pub status: u16,
    /// `BackendError::code()` or a gateway code when the request failed; with status 200,
    /// `escalation_failed:CODE` when a cascade's escalation failed upstream and the client got
    /// the first step's answer.
    pub error_code: Option<String>,
}

impl LedgerRow {
    /// The backend that answered (by default the last one tried), or `-`.
    pub fn answered_by(&self) -> &str {
        self.answered_by
            .as_deref()
            .or_else(|| self.backends.last().map(String::as_str))
            .unwrap_or("-")
    }
}

/// Totals for one group (a backend, a route or a task).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupTotals {
    /// The backend, route or task name (`-`: no backend answered; `TOTAL`: every row).
    pub name: String,
    /// Ledger rows in the group.
    pub requests: u64,
    /// Requests answered with status >= 400.
    pub errors: u64,
    /// Requests where a cascade escalated or a fallback answered.
    pub escalated: u64,
    /// Sum of prompt tokens.
    pub tokens_in: u64,
    /// Sum of completion tokens.
    pub tokens_out: u64,
    /// Sum of costs, USD.
    pub cost_usd: f64,
    /// Sum of savings against the reference backend, USD.
    pub saved_usd: f64,
    /// Mean end-to-end time, milliseconds.
    pub mean_e2e_ms: f64,
    /// Mean time to first token over the rows that have one, milliseconds.
    pub mean_ttft_ms: Option<f64>,
}

/// What `triage ledger summary` prints: totals overall and grouped three ways, busiest first.
/// Shown as text, every name is made terminal-safe ([`crate::terminal::safe`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerSummary {
    /// Every row together.
    pub total: GroupTotals,
    /// Grouped by the backend that answered.
    pub by_backend: Vec<GroupTotals>,
    /// Grouped by the rule that decided.
    pub by_route: Vec<GroupTotals>,
    /// Grouped by task.
    pub by_task: Vec<GroupTotals>,
}

impl fmt::Display for LedgerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (title, groups) in [
            ("backend", &self.by_backend),
            ("route", &self.by_route),
            ("task", &self.by_task),
        ] {
            writeln!(
                f,
                "{:<20} {:>8} {:>7} {:>9} {:>11} {:>11} {:>12} {:>12} {:>10} {:>10}",
                format!("by {title}"),
                "requests",
                "errors",
                "escalated",
                "tokens_in",
                "tokens_out",
                "cost_usd",
                "saved_usd",
                "e2e_ms",
                "ttft_ms"
            )?;
            for g in groups.iter().chain(std::iter::once(&self.total)) {
                writeln!(
                    f,
                    "{:<20} {:>8} {:>7} {:>9} {:>11} {:>11} {:>12.6} {:>12.6} {:>10.1} {:>10}",
                    crate::terminal::safe(&g.name),
                    g.requests,
                    g.errors,
                    g.escalated,
                    g.tokens_in,
                    g.tokens_out,
                    g.cost_usd,
                    g.saved_usd,
                    g.mean_e2e_ms,
                    g.mean_ttft_ms
                        .map(|t| format!("{t:.1}"))
                        .unwrap_or_else(|| "-".into())
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The UTC calendar date of a Unix time in milliseconds: (year, month 1–12, day 1–31).
/// Howard Hinnant's `civil_from_days`; hand-written (a dozen lines) to keep budgets' day and
/// month boundaries identical for every store implementation without a date crate.
pub fn utc_date(unix_ms: i64) -> (i64, u32, u32) {
    let days = unix_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Budget period keys: (`d:YYYY-MM-DD`, `m:YYYY-MM`) of a Unix time in milliseconds.
pub fn budget_periods(unix_ms: i64) -> (String, String) {
    let (y, m, d) = utc_date(unix_ms);
    (
        format!("d:{y:04}-{m:02}-{d:02}"),
        format!("m:{y:04}-{m:02}"),
    )
}

/// Unix milliseconds now.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(86_400_000 - 1), (1970, 1, 1));
        assert_eq!(utc_date(951_782_400_000), (2000, 2, 29)); // leap day
        assert_eq!(utc_date(1_767_225_599_000), (2025, 12, 31));
        assert_eq!(utc_date(1_767_225_600_000), (2026, 1, 1));
        assert_eq!(utc_date(-1), (1969, 12, 31));
        assert_eq!(
            budget_periods(1_767_225_600_000),
            ("d:2026-01-01".to_string(), "m:2026-01".to_string())
        );
    }
}
