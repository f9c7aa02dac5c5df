//! The `classifier` and `pii` sections: the rules and model that tell a request's task, and the
//! PII kinds and patterns the privacy rule relies on.

use std::path::Path;

use super::{check_name, resolve, Ctx};
use crate::classifier::{Classifier, Model, TaskRule};
use crate::config::raw::{RawClassifier, RawPii};
use crate::config::ConfigError;
use crate::pii::{PiiDetector, PiiKind};

pub(super) fn validate_classifier(
    c: Option<&RawClassifier>,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<Classifier, ConfigError> {
    let Some(c) = c else {
        return Ok(Classifier {
            rules: Vec::new(),
            model: None,
            threshold: 0.5,
        });
    };
    let threshold = c.threshold.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ctx.err(
            "classifier.threshold",
            format!("must be between 0 and 1 (got {threshold})"),
        ));
    }
    let model = match &c.model {
        None => None,
        Some(p) => Some(
            Model::load(&resolve(dir, p))
                .map_err(|e| ctx.err("classifier.model", e.to_string()))?,
        ),
    };
    let mut rules = Vec::new();
    for (i, r) in c.rules.iter().enumerate() {
        let path = format!("classifier.rules[{i}]");
        if r.task.trim().is_empty() {
            return Err(ctx.err(&format!("{path}.task"), "empty task name"));
        }
        let name = r.name.clone().unwrap_or_else(|| format!("{}#{i}", r.task));
        let rule = TaskRule::new(&name, &r.task, &r.keywords, r.regex.as_deref()).map_err(|e| {
            let at = if r.regex.is_some() {
                format!("{path}.regex")
            } else {
                path.clone()
            };
            ctx.err(&at, e.to_string())
        })?;
        rules.push(rule);
    }
    Ok(Classifier {
        rules,
        model,
        threshold,
    })
}

pub(super) fn validate_pii(p: Option<&RawPii>, ctx: &Ctx<'_>) -> Result<PiiDetector, ConfigError> {
    let Some(p) = p else {
        return Ok(PiiDetector::new());
    };
    let kinds = match &p.detect {
        None => PiiKind::BUILT_IN.to_vec(),
        Some(list) => {
            let mut kinds = Vec::new();
            for (i, name) in list.iter().enumerate() {
                kinds.push(PiiKind::built_in(name).ok_or_else(|| {
                    ctx.err(
                        &format!("pii.detect[{i}]"),
                        format!(
                            "unknown PII kind {name:?} (known: {})",
                            PiiKind::BUILT_IN
                                .iter()
                                .map(PiiKind::name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?);
            }
            kinds
        }
    };
    let mut custom = Vec::new();
    for (i, pat) in p.patterns.iter().enumerate() {
        let path = format!("pii.patterns[{i}]");
        check_name(&pat.name, &format!("{path}.name"), ctx)?;
        if PiiKind::built_in(&pat.name).is_some() {
            return Err(ctx.err(
                &format!("{path}.name"),
                format!("{:?} is a built-in kind", pat.name),
            ));
        }
        custom.push(
            PiiDetector::custom_pattern(&pat.name, &pat.regex)
                .map_err(|e| ctx.err(&format!("{path}.regex"), e.to_string()))?,
        );
    }
    Ok(PiiDetector::with_kinds(&kinds, custom))
}
