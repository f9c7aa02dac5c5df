//! The adversarial evaluation: chat requests written for triage to slip personal data past
//! the scan (look-alike characters, invisible characters, numbers split over messages, PII
//! in tool calls, tool definitions, names and unmodelled fields, images) and negatives
//! that look like PII but are not (`tests/data/pii_adversarial/items.jsonl`).
//!
//! Each item is run through [`PiiDetector::scan_request`], the function the gateway routes
//! on. A planted value counts as found when the scan reports a finding of its type (the
//! value itself is the item author's record of what was planted); an item expecting
//! non-text content counts as found when the scan lists an unreadable part. Precision is
//! per item: of the items the scan flags, the share that hold PII.

use std::fmt;
use std::path::{Path, PathBuf};

use backends::ChatRequest;
use serde::Deserialize;

use super::eval::EvalError;
use super::PiiDetector;

/// One request of the adversarial set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// A short name (`fullwidth-digits-card`).
    pub id: String,
    /// What the obfuscation is, for people.
    #[serde(default)]
    pub note: String,
    /// The request as a client sends it.
    pub request: ChatRequest,
    /// The personal data planted in it (empty: a negative).
    #[serde(default)]
    pub pii: Vec<Planted>,
    /// Whether it carries content the detector cannot read (an image, audio, a file).
    #[serde(default)]
    pub non_text: bool,
}

/// A planted value and its type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Planted {
    /// The detector's kind name (`email`, `card`, `phone`, `ssn`, `iban`, `ipv4`, `ipv6`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The value as written in the request.
    pub value: String,
}

/// Read a JSON-lines file of [`Item`]s (blank lines skipped).
pub fn load(path: &Path) -> Result<Vec<Item>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        items.push(
            serde_json::from_str(line).map_err(|source| EvalError::ParseLine {
                path: PathBuf::from(path),
                line: i + 1,
                source,
            })?,
        );
    }
    Ok(items)
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdversarialReport {
    /// Items evaluated.
    pub items: usize,
    /// Planted values, and those whose type the scan found.
    pub planted: usize,
    /// Of `planted`, found.
    pub planted_found: usize,
    /// Items with non-text content, and those the scan listed as unreadable.
    pub non_text: usize,
    /// Of `non_text`, listed.
    pub non_text_found: usize,
    /// Items holding PII or non-text content.
    pub positives: usize,
    /// Of `positives`, flagged (PII found or a part unreadable).
    pub positives_flagged: usize,
    /// Items with neither.
    pub negatives: usize,
    /// Of `negatives`, flagged anyway.
    pub negatives_flagged: usize,
    /// `id: type` of every planted value (or non-text part) not found.
    pub missed: Vec<String>,
    /// `id: kinds found` of every negative flagged.
    pub false_alarms: Vec<String>,
}

impl AdversarialReport {
    /// Planted values and non-text parts found / planted.
    pub fn recall(&self) -> f64 {
        ratio(
            self.planted_found + self.non_text_found,
            self.planted + self.non_text,
        )
    }
    /// Flagged items that hold PII / flagged items.
    pub fn precision(&self) -> f64 {
        ratio(
            self.positives_flagged,
            self.positives_flagged + self.negatives_flagged,
        )
    }
    /// Negatives flagged / negatives.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.negatives_flagged, self.negatives)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Scan every item as the gateway would and score it.
pub fn evaluate(detector: &PiiDetector, items: &[Item]) -> AdversarialReport {
    let mut r = AdversarialReport {
        items: items.len(),
        ..AdversarialReport::default()
    };
    for item in items {
        let scan = detector.scan_request(&item.request);
        let flagged = scan.has_pii() || scan.has_non_text();
        for p in &item.pii {
            r.planted += 1;
            if scan.findings.iter().any(|f| f.kind.name() == p.kind) {
                r.planted_found += 1;
            } else {
                r.missed.push(format!("{}: {}", item.id, p.kind));
            }
        }
        if item.non_text {
            r.non_text += 1;
            if scan.has_non_text() {
                r.non_text_found += 1;
            } else {
                r.missed.push(format!("{}: non-text", item.id));
            }
        }
        if item.pii.is_empty() && !item.non_text {
            r.negatives += 1;
            if flagged {
                r.negatives_flagged += 1;
                let kinds: Vec<String> = scan
                    .findings
                    .iter()
                    .map(|f| format!("{} in {}", f.kind, f.field))
                    .chain(
                        scan.non_text
                            .iter()
                            .map(|p| format!("{} in {}", p.kind, p.field)),
                    )
                    .collect();
                r.false_alarms
                    .push(format!("{}: {}", item.id, kinds.join(", ")));
            }
        } else {
            r.positives += 1;
            r.positives_flagged += usize::from(flagged);
        }
    }
    r
}

impl fmt::Display for AdversarialReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "items: {} ({} with PII or non-text content, {} negatives)",
            self.items, self.positives, self.negatives
        )?;
        writeln!(
            f,
            "planted values found: {}/{} | non-text parts found: {}/{} | recall {:.3}",
            self.planted_found,
            self.planted,
            self.non_text_found,
            self.non_text,
            self.recall()
        )?;
        writeln!(
            f,
            "items flagged: {} of {} positives, {} of {} negatives | precision {:.3} | false positive rate {:.3}",
            self.positives_flagged,
            self.positives,
            self.negatives_flagged,
            self.negatives,
            self.precision(),
            self.false_positive_rate()
        )?;
        for m in &self.missed {
            writeln!(f, "missed: {m}")?;
        }
        for a in &self.false_alarms {
            writeln!(f, "false alarm: {a}")?;
        }
        Ok(())
    }
}
