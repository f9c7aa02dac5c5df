//! The `classifier` and `pii` sections: the rules and model that tell a request's task, and the
//! PII kinds and patterns the privacy rule relies on.

use std::path::Path;

use super::{check_name, resolve, Ctx};
use crate::classifier::{Classifier, Model, TaskRule};
use crate::config::raw::{RawClassifier, RawPii};
use crate::config::ConfigError;
use crate::pii::{PiiDetector, PiiKind};
use crate::policy::NonTextParts;

/// The classifier section. A model file that does not exist (not trained yet: `models/` is
/// git-ignored and `scripts/setup.sh` trains it) is not an error: the classifier runs on its
/// rules and a warning is pushed to `warnings`. A file that exists but is not a model is an
/// error.
pub(super) fn validate_classifier(
    c: Option<&RawClassifier>,
    ctx: &Ctx<'_>,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Classifier, ConfigError> {
    let Some(c) = c else {
        return Ok(Classifier {
            threshold: 0.5,
            ..Classifier::default()
        });
    };
    let threshold = c.threshold.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ctx.err(
            "classifier.threshold",
            format!("must be between 0 and 1 (got {threshold})"),
        ));
    }
    let (model, missing_model) = match &c.model {
        None => (None, None),
        Some(p) => {
            let path = resolve(dir, p);
            if path.exists() {
                let model =
                    Model::load(&path).map_err(|e| ctx.err("classifier.model", e.to_string()))?;
                (Some(model), None)
            } else {
                warnings.push(format!(
                    "classifier.model: {} does not exist; tasks come from the classifier rules \
                     only (train the model with scripts/setup.sh, or `triage route train`)",
                    path.display()
                ));
                (None, Some(path))
            }
        }
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
        missing_model,
    })
}

/// The `pii` section: the detector, and what the privacy rule does with parts it cannot read
/// (`non_text: local | refuse`, default `local`).
pub(super) fn validate_pii(
    p: Option<&RawPii>,
    ctx: &Ctx<'_>,
) -> Result<(PiiDetector, NonTextParts), ConfigError> {
    let Some(p) = p else {
        return Ok((PiiDetector::new(), NonTextParts::default()));
    };
    let non_text = match p.non_text.as_deref() {
        None | Some("local") => NonTextParts::Local,
        Some("refuse") => NonTextParts::Refuse,
        Some(other) => {
            return Err(ctx.err(
                "pii.non_text",
                format!(
                    "unknown value {other:?}: images, audio and files under the privacy rule \
                     either stay `local` or are refused (`refuse`)"
                ),
            ))
        }
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
    Ok((PiiDetector::with_kinds(&kinds, custom), non_text))
}
