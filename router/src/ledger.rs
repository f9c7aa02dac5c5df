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
    /// Rows that have a time to first token (the weight of `mean_ttft_ms` when merging).
    pub ttft_requests: u64,
}

impl GroupTotals {
    /// Add `other` (the same group, from another ledger): counts and sums add, means are
    /// weighted by the rows they were taken over.
    pub fn absorb(&mut self, other: &GroupTotals) {
        let requests = self.requests + other.requests;
        if requests > 0 {
            self.mean_e2e_ms = (self.mean_e2e_ms * self.requests as f64
                + other.mean_e2e_ms * other.requests as f64)
                / requests as f64;
        }
        let ttft_requests = self.ttft_requests + other.ttft_requests;
        self.mean_ttft_ms = if ttft_requests > 0 {
            Some(
                (self.mean_ttft_ms.unwrap_or(0.0) * self.ttft_requests as f64
                    + other.mean_ttft_ms.unwrap_or(0.0) * other.ttft_requests as f64)
                    / ttft_requests as f64,
            )
        } else {
            None
        };
        self.requests = requests;
        self.ttft_requests = ttft_requests;
        self.errors += other.errors;
        self.escalated += other.escalated;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cost_usd += other.cost_usd;
        self.saved_usd += other.saved_usd;
    }
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

impl LedgerSummary {
    /// The summary of several ledgers read as one (`triage ledger summary --ledger A --ledger
    /// B`): groups with the same name are added ([`GroupTotals::absorb`]) and re-sorted busiest
    /// first, then by name, as a single ledger's summary is.
    pub fn merge(parts: impl IntoIterator<Item = LedgerSummary>) -> LedgerSummary {
        use std::collections::BTreeMap;
        fn add(into: &mut BTreeMap<String, GroupTotals>, groups: Vec<GroupTotals>) {
            for g in groups {
                match into.get_mut(&g.name) {
                    Some(have) => have.absorb(&g),
                    None => {
                        into.insert(g.name.clone(), g);
                    }
                }
            }
        }
        fn sorted(groups: BTreeMap<String, GroupTotals>) -> Vec<GroupTotals> {
            let mut v: Vec<GroupTotals> = groups.into_values().collect();
            v.sort_by(|a, b| {
                b.requests
                    .cmp(&a.requests)
                    .then_with(|| a.name.cmp(&b.name))
            });
            v
        }
        let mut total = GroupTotals {
            name: "TOTAL".into(),
            ..GroupTotals::default()
        };
        let (mut backend, mut route, mut task) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for part in parts {
            total.absorb(&part.total);
            add(&mut backend, part.by_backend);
            add(&mut route, part.by_route);
            add(&mut task, part.by_task);
        }
        LedgerSummary {
            total,
            by_backend: sorted(backend),
            by_route: sorted(route),
            by_task: sorted(task),
        }
    }
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

/// Unix milliseconds of 00:00 UTC on a calendar date (`month` 1–12; `day` may run past the
/// month's end, which counts on into the next). The inverse of [`utc_date`].
fn unix_ms_of_date(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

/// The budget windows containing a Unix time in milliseconds, as half-open ranges of Unix
/// milliseconds: (day start, day end, month start, month end). Stores that keep no spend
/// counters (Postgres) sum the ledger's costs over these, matching [`budget_periods`].
pub fn budget_window_bounds(unix_ms: i64) -> (i64, i64, i64, i64) {
    let day_start = unix_ms.div_euclid(86_400_000) * 86_400_000;
    let (y, m, _) = utc_date(unix_ms);
    let month_start = unix_ms_of_date(y, m, 1);
    let month_end = if m == 12 {
        unix_ms_of_date(y + 1, 1, 1)
    } else {
        unix_ms_of_date(y, m + 1, 1)
    };
    (day_start, day_start + 86_400_000, month_start, month_end)
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

    #[test]
    fn window_bounds_agree_with_periods() {
        // Every 7 hours across 2023-2025 (a leap day, year ends) and around 1970.
        let mut t = 1_672_531_200_000 - 86_400_000 * 3;
        while t < 1_767_225_600_000 + 86_400_000 * 3 {
            let (ds, de, ms, me) = budget_window_bounds(t);
            assert!(ds <= t && t < de && ms <= ds && de <= me, "{t}");
            assert_eq!(budget_periods(ds), budget_periods(t));
            assert_eq!(budget_periods(ms).1, budget_periods(t).1);
            assert_eq!(budget_periods(me - 1).1, budget_periods(t).1);
            assert_ne!(budget_periods(me).1, budget_periods(t).1);
            assert_ne!(budget_periods(ms - 1).1, budget_periods(t).1);
            t += 7 * 3_600_000;
        }
        assert_eq!(budget_window_bounds(0), (0, 86_400_000, 0, 31 * 86_400_000));
        let (_, _, ms, me) = budget_window_bounds(951_782_400_000); // 2000-02-29
        assert_eq!((me - ms) / 86_400_000, 29);
    }
}
