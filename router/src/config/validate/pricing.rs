//! The `pricing` and `budgets` sections: what each backend costs (per token for remote APIs,
//! shipped table or given prices; machine time for local engines), the reference backend savings
//! are measured against, and the spend limits with what happens when one is reached.

use std::collections::{BTreeMap, BTreeSet};

use super::{known, Ctx};
use crate::config::raw::{RawBudgets, RawConfig, RawLimits};
use crate::config::{BackendSpec, ConfigError, RemoteProvider};
use crate::policy::DEFAULT_MAX_TOKENS;
use crate::policy::{Budgets, Limits, Locality, OnExhausted};
use crate::pricing::{BackendPrice, CostModel, PriceTable};

pub(super) fn validate_pricing(
    raw: &RawConfig,
    backends: &BTreeMap<String, BackendSpec>,
    names: &BTreeSet<String>,
    ctx: &Ctx<'_>,
) -> Result<CostModel, ConfigError> {
    for name in raw.pricing.keys() {
        if !names.contains(name) {
            return Err(ctx.err(
                &format!("pricing.{name}"),
                format!("unknown backend {name:?} (known: {})", known(names)),
            ));
        }
    }
    let table = PriceTable::shipped().map_err(|e| ctx.err("pricing", e.to_string()))?;
    let mut prices = BTreeMap::new();
    for (name, spec) in backends {
        let path = format!("pricing.{name}");
        let given = raw.pricing.get(name);
        let non_negative = |v: f64, field: &str| -> Result<f64, ConfigError> {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(ctx.err(
                    &format!("{path}.{field}"),
                    format!("must be a non-negative price (got {v})"),
                ))
            }
        };
        let price = match (spec, given) {
            (
                BackendSpec::Local(_) | BackendSpec::Embedding(_) | BackendSpec::Classifier(_),
                None,
            ) => BackendPrice::Machine { usd_per_hour: 0.0 },
            (
                BackendSpec::Local(_) | BackendSpec::Embedding(_) | BackendSpec::Classifier(_),
                Some(p),
            ) => {
                if p.input.is_some() || p.output.is_some() || p.model.is_some() {
                    return Err(ctx.err(
                        &path,
                        "a local backend is priced by `machine_usd_per_hour` only",
                    ));
                }
                BackendPrice::Machine {
                    usd_per_hour: non_negative(
                        p.machine_usd_per_hour.unwrap_or(0.0),
                        "machine_usd_per_hour",
                    )?,
                }
            }
            (BackendSpec::Remote(r), p) => {
                if p.is_some_and(|p| p.machine_usd_per_hour.is_some()) {
                    return Err(ctx.err(&format!("{path}.machine_usd_per_hour"), "applies only to local backends; remote ones use `input`/`output` per 1M tokens"));
                }
                match p.map(|p| (p.input, p.output, p.model.as_deref())) {
                    Some((Some(i), Some(o), None)) => BackendPrice::PerToken {
                        input: non_negative(i, "input")?,
                        output: non_negative(o, "output")?,
                    },
                    Some((Some(_), None, _)) | Some((None, Some(_), _)) => {
                        return Err(ctx.err(&path, "give both `input` and `output` (USD per 1M tokens)"))
                    }
                    Some((Some(_), Some(_), Some(_))) => {
                        return Err(ctx.err(&path, "give either `model` (look up the shipped table) or `input`/`output`, not both"))
                    }
                    other => {
                        let model = other.and_then(|o| o.2).unwrap_or(&r.config.model);
                        let hint = match r.provider {
                            RemoteProvider::Anthropic => Some("anthropic"),
                            RemoteProvider::OpenAi => None,
                        };
                        match table.lookup(model, hint) {
                            Some(m) => BackendPrice::PerToken { input: m.input, output: m.output },
                            None => {
                                let at = if other.is_some() { format!("{path}.model") } else { format!("backends.{name}.model") };
                                return Err(ctx.err(
                                    &at,
                                    format!("no price known for model {model:?}; set `pricing.{name}: {{input: USD_PER_1M, output: USD_PER_1M}}`"),
                                ));
                            }
                        }
                    }
                }
            }
        };
        prices.insert(name.clone(), price);
    }
    let remotes: Vec<&String> = backends
        .iter()
        .filter(|(_, b)| matches!(b, BackendSpec::Remote(_)))
        .map(|(n, _)| n)
        .collect();
    let reference = match &raw.reference_backend {
        Some(r) => {
            if !names.contains(r) {
                return Err(ctx.err("reference_backend", format!("unknown backend {r:?} (known: {})", known(names))));
            }
            if !matches!(prices.get(r), Some(BackendPrice::PerToken { .. })) {
                return Err(ctx.err("reference_backend", format!("{r:?} is local; savings are measured against a per-token (remote) price")));
            }
            Some(r.clone())
        }
        None => match remotes.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            _ => {
                return Err(ctx.err(
                    "reference_backend",
                    format!("several remote backends ({}); set `reference_backend` to the one savings are measured against", remotes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
                ))
            }
        },
    };
    Ok(CostModel { prices, reference })
}

fn validate_limits(l: RawLimits, path: &str, ctx: &Ctx<'_>) -> Result<Limits, ConfigError> {
    for (field, v) in [("daily_usd", l.daily_usd), ("monthly_usd", l.monthly_usd)] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                let p = if path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                return Err(ctx.err(
                    &p,
                    format!("must be a non-negative amount of USD (got {v})"),
                ));
            }
        }
    }
    Ok(Limits {
        daily_usd: l.daily_usd,
        monthly_usd: l.monthly_usd,
    })
}

pub(super) fn validate_budgets(
    b: &RawBudgets,
    locality: &BTreeMap<String, Locality>,
    names: &BTreeSet<String>,
    ctx: &Ctx<'_>,
) -> Result<Budgets, ConfigError> {
    let global = validate_limits(
        RawLimits {
            daily_usd: b.daily_usd,
            monthly_usd: b.monthly_usd,
        },
        "budgets",
        ctx,
    )?;
    let per_key = validate_limits(b.per_key.unwrap_or_default(), "budgets.per_key", ctx)?;
    let mut tenants = BTreeMap::new();
    for (t, l) in b.tenants.iter().flatten() {
        tenants.insert(
            t.clone(),
            validate_limits(*l, &format!("budgets.tenants.{t}"), ctx)?,
        );
    }
    if global == Limits::default() && per_key == Limits::default() && tenants.is_empty() {
        return Err(ctx.err(
            "budgets",
            "no limit set: give `daily_usd`, `monthly_usd`, `per_key` or `tenants`",
        ));
    }
    let on_exhausted = match b.on_exhausted.as_deref() {
        None | Some("refuse") => OnExhausted::Refuse,
        Some(name) => match locality.get(name) {
            Some(Locality::Local) => OnExhausted::Backend(name.to_string()),
            Some(Locality::Remote) => {
                return Err(ctx.err(
                    "budgets.on_exhausted",
                    format!("{name:?} is a remote backend; when the budget is spent, route to a local backend or `refuse`"),
                ))
            }
            None => {
                return Err(ctx.err(
                    "budgets.on_exhausted",
                    format!("unknown backend {name:?} (known: {}; or `refuse`)", known(names)),
                ))
            }
        },
    };
    let default_max_tokens = match b.default_max_tokens {
        Some(0) => {
            return Err(ctx.err(
                "budgets.default_max_tokens",
                "must be at least 1 (the completion tokens reserved for a request without `max_tokens`)",
            ))
        }
        Some(n) => n,
        None => DEFAULT_MAX_TOKENS,
    };
    Ok(Budgets {
        global,
        per_key,
        tenants,
        on_exhausted,
        default_max_tokens,
    })
}
