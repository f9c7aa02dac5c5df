//! The `classifier` and `pii` sections: the rules and model that tell a request's task, and the
//! PII kinds and patterns the privacy rule relies on.

use std::path::Path;

use super::{check_name, resolve, Ctx};
use crate::classifier::{Classifier, EmbeddingModel, LearnedModel, Model, TaskRule, TASK_HEAD};
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
    let (model, missing_model) = match c.kind.as_deref().unwrap_or("ngram") {
        "ngram" => {
            if c.encoder.is_some() {
                return Err(ctx.err(
                    "classifier.encoder",
                    "only `kind: embedding` reads an encoder (the n-gram model reads the text)",
                ));
            }
            match learned_file(c, dir, warnings)? {
                Some(path) => {
                    let model = Model::load(&path)
                        .map_err(|e| ctx.err("classifier.model", e.to_string()))?;
                    (Some(LearnedModel::Ngram(model)), None)
                }
                None => (None, c.model.as_ref().map(|p| resolve(dir, p))),
            }
        }
        "embedding" => embedding_model(c, ctx, dir, warnings)?,
        other => {
            return Err(ctx.err(
                "classifier.kind",
                format!(
                    "`{other}` is not a classifier kind: expected `ngram` (default) or `embedding`"
                ),
            ))
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

/// The configured model file when it exists; `None` (and a warning) when it is configured
/// but not trained yet, or not configured.
fn learned_file(
    c: &RawClassifier,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    let Some(p) = &c.model else {
        return Ok(None);
    };
    let path = resolve(dir, p);
    if path.exists() {
        return Ok(Some(path));
    }
    warnings.push(format!(
        "classifier.model: {} does not exist; tasks come from the classifier rules \
         only (train the model with scripts/setup.sh, or `triage route train`)",
        path.display()
    ));
    Ok(None)
}

/// `kind: embedding`: the encoder must exist (an error naming it otherwise), the head must be
/// a task head trained on that encoder (checked by SHA-256). A head file not trained yet is a
/// warning, as for the n-gram model.
fn embedding_model(
    c: &RawClassifier,
    ctx: &Ctx<'_>,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<(Option<LearnedModel>, Option<std::path::PathBuf>), ConfigError> {
    let Some(encoder) = &c.encoder else {
        return Err(ctx.err(
            "classifier.encoder",
            "`kind: embedding` needs `encoder: FILE.gguf`, the sentence encoder its head was \
             trained on (e.g. models/all-MiniLM-L6-v2.gguf)",
        ));
    };
    let encoder = resolve(dir, encoder);
    if !encoder.is_file() {
        return Err(ctx.err(
            "classifier.encoder",
            format!(
                "{} does not exist (the sentence encoder `kind: embedding` reads; \
                 scripts/setup.sh downloads all-MiniLM-L6-v2)",
                encoder.display()
            ),
        ));
    }
    if c.model.is_none() {
        return Err(ctx.err(
            "classifier.model",
            "`kind: embedding` needs `model: FILE.json`, a task head (triage route train \
             --head embedding --task-classifier)",
        ));
    }
    let Some(path) = learned_file(c, dir, warnings)? else {
        return Ok((None, c.model.as_ref().map(|p| resolve(dir, p))));
    };
    let head = backends::head::Head::load(&path)
        .map_err(|e| ctx.err("classifier.model", e.to_string()))?;
    if head.task != TASK_HEAD {
        return Err(ctx.err(
            "classifier.model",
            format!(
                "{} is the `{}` head of a `kind: classifier` backend (labels: {}), not a task \
                 classifier (triage route train --head embedding --task-classifier)",
                path.display(),
                head.task,
                head.labels.join(", ")
            ),
        ));
    }
    let actual = backends::head::EncoderId::of_file(&encoder, head.encoder.dims)
        .map_err(|e| ctx.err("classifier.encoder", e.to_string()))?;
    head.check_encoder(&actual)
        .map_err(|e| ctx.err("classifier.encoder", e.to_string()))?;
    Ok((
        Some(LearnedModel::Embedding(EmbeddingModel { head, encoder })),
        None,
    ))
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
