//! Spending limits: global, per tenant and per named tenant, daily and monthly, and what
//! happens when one is spent. [`super::decide`] asks [`Budgets`] whether the request's scope is
//! exhausted before letting a rule reach a remote backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Limits in USD; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Limits {
    /// Most USD to spend per UTC day (every answer's ledger cost counts); then nothing goes remote.
    pub daily_usd: Option<f64>,
    /// Most USD to spend per UTC month, counted the same way.
    pub monthly_usd: Option<f64>,
}

impl Limits {
    pub(crate) fn exhausted(&self, day: f64, month: f64, scope: &str) -> Option<String> {
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

/// What happens to a request that would go remote once a budget is spent (`on_exhausted`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// Route to this local backend.
    Backend(String),
    /// Answer 429.
    Refuse,
}

/// The `budgets:` section: remote spending limits and what to do when one is spent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budgets {
    /// Limits on the whole gateway's spend (`daily_usd`, `monthly_usd`).
    pub global: Limits,
    /// Default limits for every tenant (API key).
    pub per_key: Limits,
    /// Limits for named tenants, replacing `per_key`.
    pub tenants: BTreeMap<String, Limits>,
    /// What a request goes to once a limit in its scope is spent.
    pub on_exhausted: OnExhausted,
    /// Completion tokens reserved for a request that sets no `max_tokens`
    /// (`budgets.default_max_tokens`, default [`DEFAULT_MAX_TOKENS`]).
    pub default_max_tokens: u32,
}

/// `budgets.default_max_tokens` when not configured.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

impl Budgets {
    /// The limits that apply to `tenant`'s requests: `(scope, limits)` for the whole gateway
    /// (`*`) and, with a tenant, the tenant's own or `per_key`.
    pub fn scopes<'a>(&'a self, tenant: Option<&'a str>) -> Vec<(&'a str, &'a Limits)> {
        let mut out = vec![("*", &self.global)];
        if let Some(t) = tenant {
            out.push((t, self.tenants.get(t).unwrap_or(&self.per_key)));
        }
        out
    }

    pub(crate) fn exhausted(&self, tenant: Option<&str>, spend: &Spend) -> Option<String> {
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

/// Spend so far in the current UTC day and month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spend {
    /// The whole gateway's spend today, in USD.
    pub global_day_usd: f64,
    /// The whole gateway's spend this month, in USD.
    pub global_month_usd: f64,
    /// The request's tenant (0 when there is none).
    pub tenant_day_usd: f64,
    /// The request's tenant this month (0 when there is none), in USD.
    pub tenant_month_usd: f64,
}
