//! Scorers: each turns (output, expected answer, item) into a score in [0, 1], keeps the raw
//! value it was computed from (the extracted label, the number, chrF on 0–100, the judge's
//! rating…) and says whether the item passed.
//!
//! - [`text`]: exact, normalised exact, contains, regex, choice (label extraction);
//! - [`numeric`]: the final number of the answer, GSM8K style;
//! - [`overlap`]: token F1, ROUGE-L, chrF;
//! - [`json`](mod@json): JSON validity, schema validity, field-by-field match;
//! - [`pii`]: PII leak (none of the item's PII values may appear in the output);
//! - [`judge`]: LLM-as-judge, MT-Bench style single-answer grading on 1–10;
//! - [`faithful`]: faithfulness of a retrieval-augmented answer to its passages, abstentions
//!   told apart.

pub mod faithful;
pub mod json;
pub mod judge;
pub mod numeric;
pub mod overlap;
pub mod pii;
pub mod text;

pub use judge::Judges;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ScorerError;
use crate::target::Target;
use crate::template::Item;

/// A scorer as written in a scenario file (`kind` selects it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScorerSpec {
    /// The trimmed output equals the expected answer.
    Exact,
    /// Equal after Unicode NFKC, lower-casing, removing punctuation and English articles, and
    /// collapsing whitespace (SQuAD normalisation).
    NormalizedExact,
    /// The label the model chose, found even inside a sentence, equals the expected label.
    Choice {
        /// The allowed labels (non-empty, distinct after case and Unicode folding).
        choices: Vec<String>,
    },
    /// The output contains the expected answer.
    Contains {
        /// Compare case-sensitively (default: case-insensitive).
        #[serde(default)]
        case_sensitive: bool,
    },
    /// The output matches this regular expression.
    Regex {
        /// The pattern (Rust `regex` syntax), searched anywhere in the output.
        pattern: String,
    },
    /// The final number of the output equals the expected number (commas, `$`, `####` handled).
    Numeric {
        /// Absolute tolerance (default 1e-6).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance: Option<f64>,
        /// Relative tolerance, as a fraction of the expected value (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relative: Option<f64>,
    },
    /// SQuAD token F1 with the expected answer.
    TokenF1 {
        /// Pass when the F1 is at least this (default 0.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_at: Option<f64>,
    },
    /// ROUGE-L F1 (longest common subsequence of tokens) with the expected answer.
    RougeL {
        /// Pass when the ROUGE-L F1 is at least this (default 0.3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_at: Option<f64>,
    },
    /// chrF (character 6-grams, β = 2, as sacrebleu) with the expected answer.
    Chrf {
        /// Pass when the chrF score, as a share in [0, 1], is at least this (default 0.4).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_at: Option<f64>,
    },
    /// The output is JSON (code fences allowed) and, when `schema` is given, valid against it.
    JsonValid {
        /// JSON Schema the parsed output must satisfy; without it, only JSON syntax is checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
    },
    /// The output is a JSON object whose fields equal those of the expected JSON object
    /// (normalised text comparison); score = share of fields matching.
    JsonMatch {
        /// Compare only these fields (default: every field of the expected object).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fields: Vec<String>,
        /// Pass when the share of matching fields is at least this (default 1: every field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_at: Option<f64>,
    },
    /// None of the PII values listed in the item's `field` (a list of strings) appears in the
    /// output; with `detector: true`, triage's own PII detector (`router::pii`) must also find
    /// nothing in the output (catches PII the model invented or reformatted).
    PiiLeak {
        /// The item field holding the list of PII strings that must not appear in the output.
        field: String,
        /// Also run triage's PII detector on the output (default false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        detector: bool,
    },
    /// The answer is supported by the passages in the item's `field` (default `passages`, the
    /// field RAG scenarios fill): score = share of the answer's content tokens found there; an
    /// abstention ("not in the context", …) scores 1 and is reported as an abstention
    /// (see `bench::score::faithful`).
    Faithfulness {
        /// The item field holding the passages (default `passages`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Pass when the support is at least this (default 0.75).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_at: Option<f64>,
    },
    /// A judge model grades the answer 1–10 against a rubric; score = (rating − 1) / 9.
    Judge {
        /// Target that judges (default: the suite's `judge`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        judge: Option<String>,
        /// What a good answer is; the reference answer is included when `expected` is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rubric: Option<String>,
        /// Pass when the score is at least this (default 0.7, a rating of 7.3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_at: Option<f64>,
    },
}

/// A validated scorer.
#[derive(Debug)]
pub enum Scorer {
    /// See [`ScorerSpec::Exact`].
    Exact,
    /// See [`ScorerSpec::NormalizedExact`].
    NormalizedExact,
    /// See [`ScorerSpec::Choice`]; the extractor holds the validated labels.
    Choice(text::ChoiceExtractor),
    /// See [`ScorerSpec::Contains`].
    Contains {
        /// Compare case-sensitively.
        case_sensitive: bool,
    },
    /// See [`ScorerSpec::Regex`]; the compiled pattern.
    Regex(regex::Regex),
    /// See [`ScorerSpec::Numeric`], with defaults applied.
    Numeric {
        /// Absolute tolerance.
        tolerance: f64,
        /// Relative tolerance, as a fraction of the expected value.
        relative: f64,
    },
    /// See [`ScorerSpec::TokenF1`].
    TokenF1 {
        /// Pass threshold on the F1, in [0, 1].
        pass_at: f64,
    },
    /// See [`ScorerSpec::RougeL`].
    RougeL {
        /// Pass threshold on the ROUGE-L F1, in [0, 1].
        pass_at: f64,
    },
    /// See [`ScorerSpec::Chrf`].
    Chrf {
        /// Pass threshold on chrF / 100, in [0, 1].
        pass_at: f64,
    },
    /// See [`ScorerSpec::JsonValid`]; the compiled schema, if any.
    JsonValid(Option<Box<jsonschema::Validator>>),
    /// See [`ScorerSpec::JsonMatch`].
    JsonMatch {
        /// Fields compared (empty: every field of the expected object).
        fields: Vec<String>,
        /// Pass threshold on the share of matching fields, in [0, 1].
        pass_at: f64,
    },
    /// See [`ScorerSpec::PiiLeak`].
    PiiLeak {
        /// The item field listing the PII values.
        field: String,
        /// Triage's PII detector, when `detector: true`.
        detector: Option<Box<router::pii::PiiDetector>>,
    },
    /// See [`ScorerSpec::Faithfulness`].
    Faithfulness {
        /// The item field holding the passages.
        field: String,
        /// Pass threshold on the support, in [0, 1].
        pass_at: f64,
    },
    /// See [`ScorerSpec::Judge`].
    Judge(judge::JudgeScorer),
}

/// What a scorer sees.
#[derive(Clone, Copy, Debug)]
pub struct ScoreInput<'a> {
    /// The model's answer text.
    pub output: &'a str,
    /// The item's rendered expected answer, if the scenario has one.
    pub expected: Option<&'a str>,
    /// The item's fields (e.g. the PII list a `pii_leak` scorer reads).
    pub item: &'a Item,
    /// The rendered user prompt (for the judge).
    pub prompt: &'a str,
}

/// One scorer's verdict on one output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScoreResult {
    /// The scorer kind (`choice`, `numeric`, …).
    pub scorer: String,
    /// In [0, 1].
    pub score: f64,
    /// Whether the score reached the scorer's pass threshold (for binary scorers: score 1).
    pub passed: bool,
    /// What the score was computed from (extracted label, number, chrF 0–100, rating, …).
    pub raw: Value,
}

impl Scorer {
    /// Validate a spec; the message says what is wrong.
    pub fn new(spec: &ScorerSpec) -> Result<Scorer, ScorerError> {
        let pass_at = |p: Option<f64>, default: f64| -> Result<f64, ScorerError> {
            let v = p.unwrap_or(default);
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(ScorerError::PassAt(v))
            }
        };
        Ok(match spec {
            ScorerSpec::Exact => Scorer::Exact,
            ScorerSpec::NormalizedExact => Scorer::NormalizedExact,
            ScorerSpec::Choice { choices } => Scorer::Choice(text::ChoiceExtractor::new(choices)?),
            ScorerSpec::Contains { case_sensitive } => Scorer::Contains {
                case_sensitive: *case_sensitive,
            },
            ScorerSpec::Regex { pattern } => {
                Scorer::Regex(regex::Regex::new(pattern).map_err(ScorerError::Pattern)?)
            }
            ScorerSpec::Numeric {
                tolerance,
                relative,
            } => {
                let tolerance = tolerance.unwrap_or(1e-6);
                let relative = relative.unwrap_or(0.0);
                if tolerance < 0.0 || relative < 0.0 {
                    return Err(ScorerError::NegativeTolerance);
                }
                Scorer::Numeric {
                    tolerance,
                    relative,
                }
            }
            ScorerSpec::TokenF1 { pass_at: p } => Scorer::TokenF1 {
                pass_at: pass_at(*p, 0.5)?,
            },
            ScorerSpec::RougeL { pass_at: p } => Scorer::RougeL {
                pass_at: pass_at(*p, 0.3)?,
            },
            ScorerSpec::Chrf { pass_at: p } => Scorer::Chrf {
                pass_at: pass_at(*p, 0.4)?,
            },
            ScorerSpec::JsonValid { schema } => Scorer::JsonValid(match schema {
                None => None,
                Some(s) => Some(Box::new(
                    jsonschema::validator_for(s).map_err(|e| ScorerError::Schema(e.to_string()))?,
                )),
            }),
            ScorerSpec::JsonMatch { fields, pass_at: p } => Scorer::JsonMatch {
                fields: fields.clone(),
                pass_at: pass_at(*p, 1.0)?,
            },
            ScorerSpec::PiiLeak { field, detector } => {
                if field.is_empty() {
                    return Err(ScorerError::NoPiiField);
                }
                Scorer::PiiLeak {
                    field: field.clone(),
                    detector: detector.then(|| Box::new(router::pii::PiiDetector::new())),
                }
            }
            ScorerSpec::Faithfulness { field, pass_at: p } => Scorer::Faithfulness {
                field: field
                    .clone()
                    .unwrap_or_else(|| crate::rag::PASSAGES_FIELD.to_string()),
                pass_at: pass_at(*p, 0.75)?,
            },
            ScorerSpec::Judge {
                judge: target,
                rubric,
                pass_at: p,
            } => Scorer::Judge(judge::JudgeScorer {
                target: target.clone(),
                rubric: rubric.clone(),
                pass_at: pass_at(*p, 0.7)?,
            }),
        })
    }

    /// The kind name, as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Scorer::Exact => "exact",
            Scorer::NormalizedExact => "normalized_exact",
            Scorer::Choice(_) => "choice",
            Scorer::Contains { .. } => "contains",
            Scorer::Regex(_) => "regex",
            Scorer::Numeric { .. } => "numeric",
            Scorer::TokenF1 { .. } => "token_f1",
            Scorer::RougeL { .. } => "rouge_l",
            Scorer::Chrf { .. } => "chrf",
            Scorer::JsonValid(_) => "json_valid",
            Scorer::JsonMatch { .. } => "json_match",
            Scorer::PiiLeak { .. } => "pii_leak",
            Scorer::Faithfulness { .. } => faithful::KIND,
            Scorer::Judge(_) => "judge",
        }
    }

    /// Whether this scorer compares against the expected answer.
    pub fn needs_expected(&self) -> bool {
        !matches!(
            self,
            Scorer::Regex(_)
                | Scorer::JsonValid(_)
                | Scorer::PiiLeak { .. }
                | Scorer::Faithfulness { .. }
                | Scorer::Judge(_)
        )
    }

    /// The judge target this scorer needs, if any.
    pub fn judge_target(&self) -> Option<Option<&str>> {
        match self {
            Scorer::Judge(j) => Some(j.target.as_deref()),
            _ => None,
        }
    }

    /// Check at load time that an item can be scored (the expected label is one of the
    /// choices, the PII field is a list of strings, the expected number parses…).
    pub fn check_item(&self, item: &Item, expected: Option<&str>) -> Result<(), ScorerError> {
        match self {
            Scorer::Choice(c) => {
                let e = expected.unwrap_or("");
                if c.canonical(e).is_none() {
                    return Err(ScorerError::NotAChoice {
                        expected: e.to_string(),
                        choices: c.choices().to_vec(),
                    });
                }
            }
            Scorer::Numeric { .. } => {
                let e = expected.unwrap_or("");
                if numeric::final_number(e).is_none() {
                    return Err(ScorerError::NoNumber(e.to_string()));
                }
            }
            Scorer::JsonMatch { .. } => {
                let e = expected.unwrap_or("");
                match json::extract_json(e) {
                    Some(Value::Object(_)) => {}
                    _ => return Err(ScorerError::NotJsonObject(e.to_string())),
                }
            }
            Scorer::PiiLeak { field, .. } => {
                pii::values(item, field)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Score one output. `judge` is the judge target for `judge` scorers (the runner resolves
    /// the name); a judge scorer without one scores 0 with the reason in `raw`.
    pub async fn score(&self, input: &ScoreInput<'_>, judge: Option<&dyn Target>) -> ScoreResult {
        let expected = input.expected.unwrap_or("");
        let output = input.output;
        let (score, passed, raw) = match self {
            Scorer::Exact => {
                let ok = output.trim() == expected.trim();
                (bool_score(ok), ok, json!(output.trim()))
            }
            Scorer::NormalizedExact => {
                let got = text::normalize(output);
                let ok = got == text::normalize(expected);
                (bool_score(ok), ok, json!(got))
            }
            Scorer::Choice(c) => {
                let extracted = c.extract(output);
                let ok = extracted.is_some() && extracted == c.canonical(expected);
                (bool_score(ok), ok, json!(extracted))
            }
            Scorer::Contains { case_sensitive } => {
                let ok = text::contains(output, expected, *case_sensitive);
                (bool_score(ok), ok, json!(ok))
            }
            Scorer::Regex(re) => {
                let m = re.find(output).map(|m| m.as_str().to_string());
                (bool_score(m.is_some()), m.is_some(), json!(m))
            }
            Scorer::Numeric {
                tolerance,
                relative,
            } => {
                let got = numeric::final_number(output);
                let want = numeric::final_number(expected);
                let ok = match (got, want) {
                    (Some(g), Some(w)) => (g - w).abs() <= tolerance.max(relative * w.abs()),
                    _ => false,
                };
                (bool_score(ok), ok, json!(got))
            }
            Scorer::TokenF1 { pass_at } => {
                let s = overlap::token_f1(output, expected);
                (s, s >= *pass_at, json!(s))
            }
            Scorer::RougeL { pass_at } => {
                let s = overlap::rouge_l(output, expected);
                (s, s >= *pass_at, json!(s))
            }
            Scorer::Chrf { pass_at } => {
                let s = overlap::chrf(output, expected);
                (s, s >= *pass_at, json!(s * 100.0))
            }
            Scorer::JsonValid(schema) => {
                let (ok, raw) = json::json_valid(output, schema.as_deref());
                (bool_score(ok), ok, raw)
            }
            Scorer::JsonMatch { fields, pass_at } => {
                let (s, raw) = json::json_match(output, expected, fields);
                (s, s >= *pass_at, raw)
            }
            Scorer::PiiLeak { field, detector } => {
                let leaked = pii::leaked(output, input.item, field);
                let detected: Vec<Value> = detector
                    .as_ref()
                    .map(|d| {
                        d.detect(output)
                            .into_iter()
                            .map(|s| json!({ "kind": s.kind.name(), "text": output.get(s.start..s.end) }))
                            .collect()
                    })
                    .unwrap_or_default();
                let ok = leaked.is_empty() && detected.is_empty();
                (
                    bool_score(ok),
                    ok,
                    json!({ "leaked": leaked, "detected": detected }),
                )
            }
            Scorer::Faithfulness { field, pass_at } => match input.item.get(field) {
                Some(Value::String(passages)) => {
                    let v = faithful::judge(output, passages);
                    let score = v.support.unwrap_or(1.0);
                    let ok = v.abstained || score >= *pass_at;
                    (score, ok, serde_json::to_value(&v).unwrap_or(Value::Null))
                }
                _ => (
                    0.0,
                    false,
                    json!({ "error": format!("the item has no `{field}` text to check the answer against") }),
                ),
            },
            Scorer::Judge(j) => return j.score(input, judge).await,
        };
        ScoreResult {
            scorer: self.kind().to_string(),
            score,
            passed,
            raw,
        }
    }
}

fn bool_score(ok: bool) -> f64 {
    if ok {
        1.0
    } else {
        0.0
    }
}
