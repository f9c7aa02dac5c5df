//! Spending limits: global, per tenant and per named tenant, daily and monthly, and what
//! happens when one is spent. [`super::decide`] asks [`Budgets`] whether the request's scope is
//! exhausted before letting a rule reach a remote backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Limits in USD; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Limits {
    pub daily_usd: Option<f64>,
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
    pub global_day_usd: f64,
    pub global_month_usd: f64,
    /// The request's tenant (0 when there is none).
    pub tenant_day_usd: f64,
    pub tenant_month_usd: f64,
}
