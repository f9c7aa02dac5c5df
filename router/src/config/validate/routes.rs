//! The `routes` section: each route's conditions, action (`to` or `cascade`, exactly one),
//! fallbacks and spill, checked against the backends; the privacy guarantee (a `pii: true` rule
//! reaches only local backends); and the last route matching every request.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::{known, Ctx};
use crate::config::raw::{RawCascade, RawRoute, RawWhen, StringList};
use crate::config::ConfigError;
use crate::policy::{
    CascadeSignal, CascadeSpec, Conditions, Locality, NonEmpty, Rule, RuleAction, Spill, TokenRange,
};

/// The validated routes, and the name of the privacy rule if there is one.
pub(super) struct Routes {
    pub(super) rules: Vec<Rule>,
    pub(super) privacy_rule: Option<String>,
}

pub(super) fn validate_routes(
    routes: &[RawRoute],
    locality: &BTreeMap<String, Locality>,
    queue_bounds: &BTreeMap<String, usize>,
    names: &BTreeSet<String>,
    ctx: &Ctx<'_>,
) -> Result<Routes, ConfigError> {
    let backend_ref = |name: &str, path: &str| -> Result<String, ConfigError> {
        if names.contains(name) {
            Ok(name.to_string())
        } else if locality.contains_key(name) {
            Err(ctx.err(
                path,
                format!(
                    "backend {name:?} is `kind: embedding`: it answers /v1/embeddings only, \
                     so no route may send chat to it (chat backends: {})",
                    known(names)
                ),
            ))
        } else {
            Err(ctx.err(
                path,
                format!("unknown backend {name:?} (known: {})", known(names)),
            ))
        }
    };

    if routes.is_empty() {
        return Err(ctx.err("routes", "at least one route is required"));
    }
    let mut rules = Vec::with_capacity(routes.len());
    let mut seen_names = BTreeSet::new();
    for (i, r) in routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        if r.name.trim().is_empty() {
            return Err(ctx.err(&format!("{path}.name"), "route name must not be empty"));
        }
        if !seen_names.insert(r.name.clone()) {
            return Err(ctx.err(
                &format!("{path}.name"),
                format!("duplicate route name {:?}", r.name),
            ));
        }
        let when = validate_when(r.when.as_ref(), &format!("{path}.when"), ctx)?;
        let action = match (&r.to, &r.cascade) {
            (Some(to), None) => RuleAction::To(backend_ref(to, &format!("{path}.to"))?),
            (None, Some(c)) => {
                let cp = format!("{path}.cascade");
                let first = backend_ref(&c.first, &format!("{cp}.first"))?;
                let escalate_to = backend_ref(&c.escalate_to, &format!("{cp}.escalate_to"))?;
                if first == escalate_to {
                    return Err(ctx.err(
                        &format!("{cp}.escalate_to"),
                        "a cascade must escalate to a different backend than `first`",
                    ));
                }
                let (signal, threshold) = cascade_signal(c, &cp, ctx)?;
                if let Some(lp) = c.min_token_logprob {
                    if lp.is_nan() || lp > 0.0 {
                        return Err(ctx.err(
                            &format!("{cp}.min_token_logprob"),
                            format!("a log-probability is <= 0 (got {lp})"),
                        ));
                    }
                }
                RuleAction::Cascade(CascadeSpec {
                    first,
                    escalate_to,
                    signal,
                    threshold,
                    min_token_logprob: c.min_token_logprob,
                    accept_if_constrained: c.accept_if_constrained.unwrap_or(false),
                })
            }
            (Some(_), Some(_)) => {
                return Err(ctx.err(
                    &format!("{path}.cascade"),
                    "a route has one action: `to` or `cascade`, not both",
                ))
            }
            (None, None) => {
                return Err(ctx.err(
                    &path,
                    "a route needs an action: `to: BACKEND` or `cascade: {first, escalate_to, signal, threshold}`",
                ))
            }
        };
        let first = match &action {
            RuleAction::To(b) => b.clone(),
            RuleAction::Cascade(c) => c.first.clone(),
        };
        let mut fallback = Vec::new();
        for (j, f) in r.fallback.iter().flatten().enumerate() {
            let fp = format!("{path}.fallback[{j}]");
            let f = backend_ref(f, &fp)?;
            if f == first || fallback.contains(&f) {
                return Err(ctx.err(
                    &fp,
                    format!("backend {f:?} is already tried before this fallback"),
                ));
            }
            fallback.push(f);
        }
        if r.fallback.as_ref().is_some_and(Vec::is_empty) {
            return Err(ctx.err(
                &format!("{path}.fallback"),
                "an empty fallback list; remove it or name backends",
            ));
        }
        let spill = match &r.spill {
            None => None,
            Some(s) => {
                let sp = format!("{path}.spill");
                let to = backend_ref(&s.to, &format!("{sp}.to"))?;
                if locality.get(&first) != Some(&Locality::Local) {
                    return Err(ctx.err(
                        &sp,
                        format!("spill applies when the route's first backend is local, and {first:?} is remote"),
                    ));
                }
                if to == first {
                    return Err(
                        ctx.err(&format!("{sp}.to"), "spill must go to a different backend")
                    );
                }
                if s.queue_depth.is_none() && s.predicted_ttft_ms.is_none() {
                    return Err(ctx.err(
                        &sp,
                        "spill needs `queue_depth` or `predicted_ttft_ms` (or both)",
                    ));
                }
                // The engine's queue never holds more than its bound (a request beyond it is
                // refused `Overloaded`), so a spill threshold above the bound never fires.
                if let (Some(depth), Some(&bound)) = (s.queue_depth, queue_bounds.get(&first)) {
                    if depth > bound {
                        return Err(ctx.err(
                            &format!("{sp}.queue_depth"),
                            format!("{depth} can never be reached: backend {first:?} queues at most {bound} requests (its `queue`); use a value from 1 to {bound}"),
                        ));
                    }
                }
                if s.queue_depth == Some(0) {
                    return Err(ctx.err(
                        &format!("{sp}.queue_depth"),
                        "0 would spill every request; use a value of at least 1",
                    ));
                }
                if let Some(t) = s.predicted_ttft_ms {
                    if !(t.is_finite() && t >= 0.0) {
                        return Err(ctx.err(
                            &format!("{sp}.predicted_ttft_ms"),
                            "must be a non-negative number of milliseconds",
                        ));
                    }
                }
                Some(Spill {
                    to,
                    queue_depth: s.queue_depth,
                    predicted_ttft_ms: s.predicted_ttft_ms,
                })
            }
        };
        // Privacy: a rule for requests with PII never names a remote backend.
        if when.pii == Some(true) {
            let mut reached: Vec<(&str, String)> = vec![];
            match &action {
                RuleAction::To(b) => reached.push((b, format!("{path}.to"))),
                RuleAction::Cascade(c) => {
                    reached.push((&c.first, format!("{path}.cascade.first")));
                    reached.push((&c.escalate_to, format!("{path}.cascade.escalate_to")));
                }
            }
            for (j, f) in fallback.iter().enumerate() {
                reached.push((f, format!("{path}.fallback[{j}]")));
            }
            if let Some(s) = &spill {
                reached.push((&s.to, format!("{path}.spill.to")));
            }
            for (b, p) in reached {
                if locality.get(b) == Some(&Locality::Remote) {
                    return Err(ctx.err(
                        &p,
                        format!("this rule matches requests with PII (`pii: true`) and would send them to remote backend {b:?}; privacy rules must keep data on local backends"),
                    ));
                }
            }
        }
        rules.push(Rule {
            name: r.name.clone(),
            when,
            action,
            fallback,
            spill,
        });
    }
    if let Some(last) = rules.last() {
        if !last.when.is_catch_all() {
            let i = rules.len() - 1;
            return Err(ctx.err(
                &format!("routes[{i}].when"),
                format!("the last route ({:?}) must match every request (no `when`), so every request gets a decision", last.name),
            ));
        }
    }
    let privacy_rule = rules
        .iter()
        .find(|r| {
            r.when.pii == Some(true)
                && Conditions {
                    pii: None,
                    ..r.when.clone()
                }
                .is_catch_all()
        })
        .map(|r| r.name.clone());

    Ok(Routes {
        rules,
        privacy_rule,
    })
}

fn string_set(
    list: &Option<StringList>,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<NonEmpty<String>>, ConfigError> {
    match list {
        None => Ok(None),
        Some(StringList(items)) => {
            if let Some(i) = items.iter().position(|s| s.trim().is_empty()) {
                return Err(ctx.err(&format!("{path}[{i}]"), "empty name"));
            }
            NonEmpty::new(items.clone()).map(Some).ok_or_else(|| {
                ctx.err(
                    path,
                    "an empty list matches nothing; remove the condition or name values",
                )
            })
        }
    }
}

fn validate_when(
    w: Option<&RawWhen>,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Conditions, ConfigError> {
    let Some(w) = w else {
        return Ok(Conditions::default());
    };
    let prompt_tokens = match &w.prompt_tokens {
        None => None,
        Some(r) => {
            if r.min.is_none() && r.max.is_none() {
                return Err(ctx.err(
                    &format!("{path}.prompt_tokens"),
                    "give `min`, `max` or both",
                ));
            }
            if let (Some(a), Some(b)) = (r.min, r.max) {
                if a > b {
                    return Err(ctx.err(
                        &format!("{path}.prompt_tokens"),
                        format!("min {a} > max {b}"),
                    ));
                }
            }
            Some(TokenRange {
                min: r.min,
                max: r.max,
            })
        }
    };
    let content = match &w.content {
        None => None,
        Some(re) => Some(
            Regex::new(re)
                .map_err(|e| ctx.err(&format!("{path}.content"), format!("invalid regex: {e}")))?,
        ),
    };
    Ok(Conditions {
        task: string_set(&w.task, &format!("{path}.task"), ctx)?,
        pii: w.pii,
        prompt_tokens,
        content,
        model: string_set(&w.model, &format!("{path}.model"), ctx)?,
        tenant: string_set(&w.tenant, &format!("{path}.tenant"), ctx)?,
        tools: w.tools,
        stream: w.stream,
    })
}

/// A cascade's signal and threshold: `signal` + `threshold`, or the legacy `min_confidence`.
fn cascade_signal(
    c: &RawCascade,
    cp: &str,
    ctx: &Ctx<'_>,
) -> Result<(CascadeSignal, f64), ConfigError> {
    let (signal, threshold, field) = match (&c.signal, c.threshold, c.min_confidence) {
        (Some(_), _, Some(_)) => {
            return Err(ctx.err(
                &format!("{cp}.min_confidence"),
                "give either `signal` + `threshold` or the legacy `min_confidence`, not both",
            ))
        }
        (Some(name), Some(t), None) => {
            let signal = CascadeSignal::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = CascadeSignal::ALL.iter().map(|s| s.name()).collect();
                ctx.err(
                    &format!("{cp}.signal"),
                    format!("unknown signal {name:?}; known: {}", known.join(", ")),
                )
            })?;
            (signal, t, "threshold")
        }
        (Some(_), None, None) => {
            return Err(ctx.err(
                &format!("{cp}.threshold"),
                "a cascade with a `signal` needs a `threshold`",
            ))
        }
        (None, Some(_), _) => {
            return Err(ctx.err(
                &format!("{cp}.signal"),
                "a `threshold` needs the `signal` it applies to",
            ))
        }
        (None, None, Some(m)) => (CascadeSignal::Confidence, m, "min_confidence"),
        (None, None, None) => {
            return Err(ctx.err(
                cp,
                "a cascade needs `signal` and `threshold` (or the legacy `min_confidence`)",
            ))
        }
    };
    if threshold.is_nan() {
        return Err(ctx.err(&format!("{cp}.{field}"), "the threshold is not a number"));
    }
    signal
        .check_threshold(threshold)
        .map_err(|m| ctx.err(&format!("{cp}.{field}"), m.to_string()))?;
    Ok((signal, threshold))
}
