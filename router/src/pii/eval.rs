//! Precision and recall of the detector against a labelled corpus (Presidio's synthetic
//! dataset, `synth_dataset_v2.json`): a detected span is a true positive when it overlaps a gold
//! span of the same entity type (each gold span matches once), and `exact` counts those whose
//! boundaries are identical. Used by `tests/pii_eval.rs` (the floors the privacy rule relies on)
//! and `examples/pii_eval.rs` (the full table). [`evaluate_requests`] scores the path the
//! gateway takes: each sentence as a one-message chat request through
//! [`PiiDetector::scan_request`] (the normalised view, offsets mapped back).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use backends::ChatRequest;

use super::{PiiDetector, PiiKind, PiiSpan};

/// One sentence of Presidio's `synth_dataset_v2.json`.
#[derive(Debug, Deserialize)]
pub struct Sample {
    /// The sentence, as the detector sees it.
    pub full_text: String,
    /// The labelled entities in it.
    pub spans: Vec<GoldSpan>,
}

/// Positions are character offsets into `full_text`.
#[derive(Debug, Deserialize)]
pub struct GoldSpan {
    /// Presidio's entity name (`EMAIL_ADDRESS`, `PHONE_NUMBER`, …; see [`ENTITIES`]).
    pub entity_type: String,
    /// First character of the entity.
    pub start_position: usize,
    /// One past its last character.
    pub end_position: usize,
}

/// Why a labelled corpus could not be loaded; both name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The corpus file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON array of samples.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The corpus file.
        path: PathBuf,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A line of a JSON-lines corpus is not an item.
    #[error("{}:{line}: {source}", path.display())]
    ParseLine {
        /// The corpus file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Read a corpus in Presidio's format (a JSON array of [`Sample`]s).
pub fn load(path: &Path) -> Result<Vec<Sample>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| EvalError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The evaluated entity types: Presidio's name → ours (IPv4 and IPv6 are one type there).
pub fn entity_of(kind: &PiiKind) -> Option<&'static str> {
    Some(match kind {
        PiiKind::Email => "EMAIL_ADDRESS",
        PiiKind::Phone => "PHONE_NUMBER",
        PiiKind::Card => "CREDIT_CARD",
        PiiKind::Iban => "IBAN_CODE",
        PiiKind::Ssn => "US_SSN",
        PiiKind::Ipv4 | PiiKind::Ipv6 => "IP_ADDRESS",
        PiiKind::Custom(_) => return None,
    })
}

/// The Presidio entity types scored, sorted; other labels in the corpus are ignored.
pub const ENTITIES: [&str; 6] = [
    "CREDIT_CARD",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "IP_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
];

/// Span counts of one entity type (or of all of them, [`Report::total`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Gold spans in the corpus.
    pub gold: usize,
    /// Spans the detector reported.
    pub predicted: usize,
    /// Predicted spans overlapping a gold span of the same type (each gold counted once).
    pub true_positives: usize,
    /// True positives whose boundaries equal the gold span's exactly.
    pub exact: usize,
}

impl Counts {
    /// True positives / predicted spans (0 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.predicted)
    }
    /// True positives / gold spans (0 when there is no gold span).
    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.gold)
    }
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The result of [`evaluate`]: span counts per entity type and sentence-level flag rates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Sentences evaluated.
    pub sentences: usize,
    /// Span counts per Presidio entity type (every one of [`ENTITIES`], even when absent).
    pub by_entity: BTreeMap<&'static str, Counts>,
    /// Sentences holding at least one evaluated entity, and how many of them were flagged.
    pub sentences_with_pii: usize,
    /// Of `sentences_with_pii`, those where the detector found anything (what the privacy rule
    /// needs: a flagged request stays local).
    pub sentences_flagged: usize,
    /// Sentences without any evaluated entity that were flagged anyway.
    pub sentences_without_pii: usize,
    /// Of `sentences_without_pii`, those flagged anyway (sent local needlessly).
    pub sentences_false_flagged: usize,
}

impl Report {
    /// The counts summed over every entity type.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.by_entity.values() {
            t.gold += c.gold;
            t.predicted += c.predicted;
            t.true_positives += c.true_positives;
            t.exact += c.exact;
        }
        t
    }
}

/// Byte offset of every char index (and one past the end).
fn char_to_byte(text: &str) -> Vec<usize> {
    let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    v.push(text.len());
    v
}

/// Run `detector` on every sample and score it against the gold spans.
pub fn evaluate(detector: &PiiDetector, samples: &[Sample]) -> Report {
    evaluate_with(samples, |text| detector.detect(text))
}

/// Score the gateway's path: each sample as one user message through
/// [`PiiDetector::scan_request`], its findings' spans in the sentence.
pub fn evaluate_requests(detector: &PiiDetector, samples: &[Sample]) -> Report {
    evaluate_with(samples, |text| {
        detector
            .scan_request(&ChatRequest::user("auto", text))
            .findings
            .into_iter()
            .filter_map(|f| {
                let (start, end) = f.span?;
                Some(PiiSpan {
                    kind: f.kind,
                    start,
                    end,
                })
            })
            .collect()
    })
}

fn evaluate_with(samples: &[Sample], detect: impl Fn(&str) -> Vec<PiiSpan>) -> Report {
    let mut r = Report {
        sentences: samples.len(),
        ..Report::default()
    };
    for e in ENTITIES {
        r.by_entity.insert(e, Counts::default());
    }
    for s in samples {
        let offsets = char_to_byte(&s.full_text);
        let at = |c: usize| offsets.get(c).copied().unwrap_or(s.full_text.len());
        let gold: Vec<(&str, usize, usize)> = s
            .spans
            .iter()
            .filter_map(|g| {
                let e = ENTITIES.iter().find(|e| **e == g.entity_type)?;
                Some((*e, at(g.start_position), at(g.end_position)))
            })
            .collect();
        let predicted: Vec<(&str, usize, usize)> = detect(&s.full_text)
            .iter()
            .filter_map(|p| Some((entity_of(&p.kind)?, p.start, p.end)))
            .collect();
        if gold.is_empty() {
            r.sentences_without_pii += 1;
            r.sentences_false_flagged += usize::from(!predicted.is_empty());
        } else {
            r.sentences_with_pii += 1;
            r.sentences_flagged += usize::from(!predicted.is_empty());
        }
        let mut used = vec![false; gold.len()];
        for (e, start, end) in &predicted {
            let c = r.by_entity.entry(e).or_default();
            c.predicted += 1;
            let hit = gold.iter().enumerate().position(|(i, (ge, gs, gend))| {
                !used[i] && ge == e && *start < *gend && *gs < *end
            });
            if let Some(i) = hit {
                used[i] = true;
                c.true_positives += 1;
                c.exact += usize::from(gold[i].1 == *start && gold[i].2 == *end);
            }
        }
        for (e, ..) in &gold {
            r.by_entity.entry(e).or_default().gold += 1;
        }
    }
    r
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>5} {:>9} {:>4} {:>9} {:>7} {:>6} {:>8}",
            "entity", "gold", "predicted", "TP", "precision", "recall", "F1", "exact"
        )?;
        let rows = self
            .by_entity
            .iter()
            .map(|(e, c)| (*e, *c))
            .chain(std::iter::once(("ALL", self.total())));
        for (e, c) in rows {
            writeln!(
                f,
                "{:<14} {:>5} {:>9} {:>4} {:>9.3} {:>7.3} {:>6.3} {:>8}",
                e,
                c.gold,
                c.predicted,
                c.true_positives,
                c.precision(),
                c.recall(),
                c.f1(),
                format!("{}/{}", c.exact, c.true_positives)
            )?;
        }
        writeln!(
            f,
            "sentences: {} | with PII of these types: {}, flagged {} ({:.1}%) | without: {}, flagged anyway {} ({:.1}%)",
            self.sentences,
            self.sentences_with_pii,
            self.sentences_flagged,
            100.0 * ratio(self.sentences_flagged, self.sentences_with_pii),
            self.sentences_without_pii,
            self.sentences_false_flagged,
            100.0 * ratio(self.sentences_false_flagged, self.sentences_without_pii),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, spans: &[(&str, usize, usize)]) -> Sample {
        Sample {
            full_text: text.to_string(),
            spans: spans
                .iter()
                .map(|&(e, s, end)| GoldSpan {
                    entity_type: e.to_string(),
                    start_position: s,
                    end_position: end,
                })
                .collect(),
        }
    }

    #[test]
    fn counts_use_character_offsets_and_match_each_gold_span_once() {
        // "Grüße " is 6 characters but 8 bytes: gold offsets are characters.
        let samples = [
            sample("Grüße a@b.io", &[("EMAIL_ADDRESS", 6, 12)]),
            sample("nothing here", &[]),
            sample("ip 10.0.0.1", &[("PERSON", 0, 2)]),
        ];
        let r = evaluate(&PiiDetector::new(), &samples);
        let email = r.by_entity["EMAIL_ADDRESS"];
        assert_eq!(
            (
                email.gold,
                email.predicted,
                email.true_positives,
                email.exact
            ),
            (1, 1, 1, 1)
        );
        let ip = r.by_entity["IP_ADDRESS"];
        assert_eq!((ip.gold, ip.predicted, ip.true_positives), (0, 1, 0));
        assert_eq!((r.sentences_with_pii, r.sentences_flagged), (1, 1));
        assert_eq!((r.sentences_without_pii, r.sentences_false_flagged), (2, 1));
        assert_eq!(r.total().predicted, 2);
    }

    #[test]
    fn load_errors_are_typed_and_name_the_file() {
        let missing = Path::new("/nonexistent/synth.json");
        let err = load(missing).unwrap_err();
        assert!(matches!(err, EvalError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("/nonexistent/synth.json: "),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "[{\"full_text\": 3}]").unwrap();
        let err = load(&bad).unwrap_err();
        assert!(matches!(err, EvalError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("bad.json: invalid type"), "{err}");
    }
}
