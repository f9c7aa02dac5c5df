//! `store:`, `store_failure:` and `rate_limits:` — what replicas share, and how much each API
//! key may send per minute.

use std::collections::BTreeMap;

use super::super::raw::{RawConfig, RawRate};
use super::{check_name, Ctx};
use crate::config::ConfigError;
use crate::reserve::{RateLimit, RateLimits, RedisLedger, SharedConfig, StoreFailure, StoreUrl};

pub(super) fn validate_shared(raw: &RawConfig, ctx: &Ctx<'_>) -> Result<SharedConfig, ConfigError> {
    let store = match raw.store.as_deref() {
        None => None,
        Some(url) => {
            let url = StoreUrl::parse(url).map_err(|why| ctx.err("store", why))?;
            // Parsed now (nothing is connected), so a bad address stops the start.
            RedisLedger::new(&url).map_err(|e| ctx.err("store", e.to_string()))?;
            Some(url)
        }
    };
    let on_failure = match raw.store_failure.as_deref() {
        None | Some("fail_closed") => StoreFailure::FailClosed,
        Some("fail_open") => StoreFailure::FailOpen,
        Some(other) => {
            return Err(ctx.err(
                "store_failure",
                format!("{other:?} is not `fail_closed` or `fail_open`"),
            ))
        }
    };
    if raw.store_failure.is_some() && store.is_none() {
        return Err(ctx.err(
            "store_failure",
            "needs `store: redis://host:port/db` (without a shared store nothing can fail)",
        ));
    }
    let mut rate_limits = RateLimits::default();
    if let Some(r) = &raw.rate_limits {
        rate_limits.per_key = match r.per_key {
            Some(rate) => Some(rate_limit(rate, "rate_limits.per_key", ctx)?),
            None => None,
        };
        let mut tenants = BTreeMap::new();
        for (t, rate) in r.tenants.iter().flatten() {
            let path = format!("rate_limits.tenants.{t}");
            check_name(t, &path, ctx)?;
            tenants.insert(t.clone(), rate_limit(*rate, &path, ctx)?);
        }
        rate_limits.tenants = tenants;
        if rate_limits.per_key.is_none() && rate_limits.tenants.is_empty() {
            return Err(ctx.err(
                "rate_limits",
                "no limit set: give `per_key` or `tenants` (each with `requests_per_minute` and/or `tokens_per_minute`)",
            ));
        }
    }
    Ok(SharedConfig {
        store,
        on_failure,
        rate_limits,
    })
}

fn rate_limit(r: RawRate, path: &str, ctx: &Ctx<'_>) -> Result<RateLimit, ConfigError> {
    for (field, v) in [
        ("requests_per_minute", r.requests_per_minute),
        ("tokens_per_minute", r.tokens_per_minute),
    ] {
        if v == Some(0) {
            return Err(ctx.err(
                &format!("{path}.{field}"),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
    }
    if r.requests_per_minute.is_none() && r.tokens_per_minute.is_none() {
        return Err(ctx.err(
            path,
            "give `requests_per_minute` and/or `tokens_per_minute`",
        ));
    }
    Ok(RateLimit {
        requests_per_minute: r.requests_per_minute,
        tokens_per_minute: r.tokens_per_minute,
    })
}
