//! PII detector used by the privacy rule: finds e-mail addresses, phone numbers, payment cards
//! (Luhn-checked), IBANs (mod-97-checked), US social security numbers, IPv4/IPv6 addresses and
//! operator-configured patterns, and returns typed byte spans.
//!
//! Regular expressions find candidates; checksums and parsers (`Ipv6Addr`, Luhn, ISO 7064
//! mod-97, SSA rules for SSNs) reject look-alikes. Overlapping candidates are resolved by
//! priority: a checksum-validated span (card, IBAN) beats an SSN, which beats a phone number,
//! so a card number is never also reported as a phone number. The detector is built once from
//! config and is cheap to share (`Sync`); a scan allocates only its result vector.
//!
//! This file holds the detector (kinds, patterns, the scan and overlap resolution);
//! `scan` the byte scans that find where candidates can be, `checks` the validators that
//! confirm them (Luhn, IBAN mod-97, SSN rules, phone look-alikes), `normalize` the view of
//! text the detector scans (NFKC, invisible characters removed, spaces, dashes and digits
//! mapped), [`request`] the walk over every field of a chat request that the gateway routes on,
//! [`eval`] the precision/recall evaluation on labelled data and [`adversarial`] the evaluation
//! on requests written to slip PII past the scan.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub mod adversarial;
mod checks;
pub mod eval;
mod normalize;
pub mod request;
mod scan;

use checks::phone_plausible;
pub use checks::{card_valid, iban_valid, luhn, ssn_valid};
pub use request::{Finding, NonTextPart, RequestScan};
use scan::{
    colon_runs, digit_runs, glued_to_dot, iban_end, iban_starts, memchr_at, next_digit, window,
};

/// What kind of personal data a span holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// An email address.
    Email,
    /// A phone number with 7–15 digits that does not look like a date, address or postal code.
    Phone,
    /// A payment card number that passes the Luhn check.
    Card,
    /// An IBAN whose ISO 7064 mod-97 check digits are right.
    Iban,
    /// A US social security number that the SSA could have issued.
    Ssn,
    /// A dotted-quad IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A pattern from the config, by its name.
    Custom(String),
}

impl PiiKind {
    /// The built-in kinds, in the order config names them.
    pub const BUILT_IN: [PiiKind; 7] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Card,
        PiiKind::Iban,
        PiiKind::Ssn,
        PiiKind::Ipv4,
        PiiKind::Ipv6,
    ];

    /// The kind's config name (`email`, `phone`, …; a custom pattern's own name).
    pub fn name(&self) -> &str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
            PiiKind::Ssn => "ssn",
            PiiKind::Ipv4 => "ipv4",
            PiiKind::Ipv6 => "ipv6",
            PiiKind::Custom(name) => name,
        }
    }

    /// Parse a built-in kind by its config name.
    pub fn built_in(name: &str) -> Option<PiiKind> {
        Self::BUILT_IN.into_iter().find(|k| k.name() == name)
    }

    /// Higher wins when two candidates overlap.
    fn priority(&self) -> u8 {
        match self {
            PiiKind::Custom(_) => 7,
            PiiKind::Email => 6,
            PiiKind::Iban => 5,
            PiiKind::Card => 4,
            PiiKind::Ipv6 => 3,
            PiiKind::Ipv4 => 3,
            PiiKind::Ssn => 2,
            PiiKind::Phone => 1,
        }
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding: `text[start..end]` (byte offsets) is of kind `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiSpan {
    /// What was found.
    pub kind: PiiKind,
    /// Byte offset where it starts.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
}

/// A named pattern from config (`pii.patterns`).
#[derive(Clone, Debug)]
pub struct CustomPattern {
    /// The pattern's name, reported as the span's kind.
    pub name: String,
    /// What it matches.
    pub regex: Regex,
}

/// Why a detector could not be built from the config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PiiError {
    /// A custom pattern's regex does not compile.
    #[error("invalid regex for PII pattern {name:?}: {source}")]
    BadPattern {
        /// The pattern's name.
        name: String,
        /// The regex compiler's error.
        #[source]
        source: Box<regex::Error>,
    },
}

/// The detector: which built-in kinds are on, plus custom patterns.
#[derive(Clone, Debug)]
pub struct PiiDetector {
    email: Option<Regex>,
    phone: Option<Regex>,
    card: Option<Regex>,
    iban: Option<Regex>,
    ssn: Option<Regex>,
    ipv4: Option<Regex>,
    ipv6: Option<Regex>,
    custom: Vec<CustomPattern>,
}

// ASCII word boundaries `(?-u:\b)` keep the lazy DFA on the fast path for non-ASCII text.
const EMAIL: &str = r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)";
/// Card candidates: 12–19 digits, optionally grouped by single spaces or hyphens.
const CARD: &str = r"(?-u:\b)[0-9](?:[ \-]?[0-9]){11,18}(?-u:\b)";
/// IBAN candidates: country code, check digits, then 11–30 alphanumerics written compact or
/// in space-separated groups of four (any case).
const IBAN: &str = r"(?i)(?-u:\b)[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?-u:\b)";
const SSN: &str = r"(?-u:\b)[0-9]{3}([\- ]?)[0-9]{2}([\- ]?)[0-9]{4}(?-u:\b)";
const IPV4: &str = r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)";
/// IPv6 candidates; `Ipv6Addr::from_str` decides.
const IPV6: &str = r"(?i-u:[0-9a-f]{0,4}:){2,7}(?i-u:[0-9a-f]{0,4})(?:(?-u:\b)|(?i-u:[0-9a-f]{0,4}:)*(?:[0-9]{1,3}\.){3}[0-9]{1,3})";
/// Phone candidates: optional `+CC` and/or `(area)`, then up to 6 groups of digits separated by
/// one space, dot or hyphen, and an optional extension (`x123`, `ext. 12`).
const PHONE: &str = r"(?:\+[0-9]{1,3}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?|\([0-9]{1,4}\)[ .\-]?|(?-u:\b))[0-9]{1,12}(?:[ .\-][0-9]{2,8}){0,5}(?:[ .\-]?(?:x|ext\.? ?)[0-9]{1,5})?(?-u:\b)";

impl PiiDetector {
    /// Every built-in kind, no custom patterns.
    pub fn new() -> Self {
        Self::with_kinds(&PiiKind::BUILT_IN, Vec::new())
    }

    /// Only the given built-in kinds (custom kinds in `kinds` are ignored; pass them as patterns).
    pub fn with_kinds(kinds: &[PiiKind], custom: Vec<CustomPattern>) -> Self {
        let on = |k: PiiKind, re: &str| kinds.contains(&k).then(|| compile_builtin(re));
        Self {
            email: on(PiiKind::Email, EMAIL).flatten(),
            phone: on(PiiKind::Phone, PHONE).flatten(),
            card: on(PiiKind::Card, CARD).flatten(),
            iban: on(PiiKind::Iban, IBAN).flatten(),
            ssn: on(PiiKind::Ssn, SSN).flatten(),
            ipv4: on(PiiKind::Ipv4, IPV4).flatten(),
            ipv6: on(PiiKind::Ipv6, IPV6).flatten(),
            custom,
        }
    }

    /// Compile a custom pattern (a config entry) into a [`CustomPattern`].
    pub fn custom_pattern(name: &str, regex: &str) -> Result<CustomPattern, PiiError> {
        Regex::new(regex)
            .map(|regex| CustomPattern {
                name: name.to_string(),
                regex,
            })
            .map_err(|e| PiiError::BadPattern {
                name: name.to_string(),
                source: Box::new(e),
            })
    }

    /// Whether `text` contains any PII (same result as `!detect(text).is_empty()`).
    pub fn contains_pii(&self, text: &str) -> bool {
        !self.detect(text).is_empty()
    }

    /// Every PII span in `text`, sorted by start, without overlaps.
    pub fn detect(&self, text: &str) -> Vec<PiiSpan> {
        let mut found: Vec<PiiSpan> = Vec::new();
        let bytes = text.as_bytes();
        let has_digit = next_digit(bytes, 0).is_some();
        let mut push =
            |kind: PiiKind, start: usize, end: usize| found.push(PiiSpan { kind, start, end });
        if let Some(re) = &self.email {
            if memchr_at(bytes) {
                for m in re.find_iter(text) {
                    push(PiiKind::Email, m.start(), m.end());
                }
            }
        }
        for p in &self.custom {
            for m in p.regex.find_iter(text) {
                if m.start() < m.end() {
                    push(PiiKind::Custom(p.name.clone()), m.start(), m.end());
                }
            }
        }
        if has_digit {
            // Numbers: regexes run only on windows around runs of digits and separators that
            // hold enough digits, so ordinary prose costs one byte scan, not one regex pass
            // per kind (see `digit_runs`).
            for run in digit_runs(bytes) {
                let (w0, w1) = window(text, run.start, run.end);
                let hay = &text[w0..w1];
                if run.digits >= 12 {
                    if let Some(re) = &self.card {
                        for m in re.find_iter(hay) {
                            let (start, end) = (w0 + m.start(), w0 + m.end());
                            // "+44 7700 …" is an international phone number, not a card.
                            let after_plus = start > 0 && bytes[start - 1] == b'+';
                            if !after_plus && card_valid(m.as_str()) {
                                push(PiiKind::Card, start, end);
                            }
                        }
                    }
                }
                if run.digits >= 9 {
                    if let Some(re) = &self.ssn {
                        for c in re.captures_iter(hay) {
                            let (Some(m), Some(s1), Some(s2)) = (c.get(0), c.get(1), c.get(2))
                            else {
                                continue;
                            };
                            if s1.as_str() == s2.as_str() && ssn_valid(m.as_str()) {
                                push(PiiKind::Ssn, w0 + m.start(), w0 + m.end());
                            }
                        }
                    }
                }
                if run.digits >= 4 && run.dots >= 3 {
                    if let Some(re) = &self.ipv4 {
                        for m in re.find_iter(hay) {
                            let (start, end) = (w0 + m.start(), w0 + m.end());
                            if !glued_to_dot(bytes, start, end) {
                                push(PiiKind::Ipv4, start, end);
                            }
                        }
                    }
                }
                if run.digits >= 7 {
                    if let Some(re) = &self.phone {
                        for m in re.find_iter(hay) {
                            let (start, end) = (w0 + m.start(), w0 + m.end());
                            if phone_plausible(m.as_str(), &text[end..])
                                && !glued_to_dot(bytes, start, end)
                            {
                                push(PiiKind::Phone, start, end);
                            }
                        }
                    }
                }
            }
            if let Some(re) = &self.iban {
                for start in iban_starts(bytes) {
                    let (w0, w1) = window(text, start, iban_end(text, start));
                    if let Some(m) = re.find(&text[w0..w1]) {
                        if w0 + m.start() == start && iban_valid(m.as_str()) {
                            push(PiiKind::Iban, start, w0 + m.end());
                        }
                    }
                }
            }
        }
        if let Some(re) = &self.ipv6 {
            for (s0, e0) in colon_runs(bytes) {
                let (w0, w1) = window(text, s0, e0);
                for m in re.find_iter(&text[w0..w1]) {
                    let s = m.as_str();
                    let shaped = s.contains("::") || s.matches(':').count() == 7 || s.contains('.');
                    if shaped && Ipv6Addr::from_str(s).is_ok() {
                        push(PiiKind::Ipv6, w0 + m.start(), w0 + m.end());
                    }
                }
            }
        }
        resolve_overlaps(found)
    }
}

impl Default for PiiDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// Built-in patterns are constants checked by the test suite; a failure here is a bug, and the
/// kind is then simply off rather than taking the gateway down.
fn compile_builtin(re: &str) -> Option<Regex> {
    match Regex::new(re) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "built-in PII pattern does not compile");
            None
        }
    }
}

/// Keep the higher-priority span of any two that overlap (longer wins on a tie).
fn resolve_overlaps(mut found: Vec<PiiSpan>) -> Vec<PiiSpan> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by(|a, b| {
        b.kind
            .priority()
            .cmp(&a.kind.priority())
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<PiiSpan> = Vec::with_capacity(found.len());
    for span in found {
        if kept
            .iter()
            .all(|k| span.end <= k.start || span.start >= k.end)
        {
            kept.push(span);
        }
    }
    kept.sort_by_key(|s| (s.start, s.end));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        PiiDetector::new()
            .detect(text)
            .into_iter()
            .map(|s| (s.kind, text[s.start..s.end].to_string()))
            .collect()
    }

    #[test]
    fn finds_each_kind_with_its_text() {
        let found = kinds(
            "mail ann.lee+x@example.co.uk, card 4111 1111 1111 1111, iban GB82 WEST 1234 5698 7654 32, \
             ssn 123-45-6789, call +1 (415) 555-0132, host 192.168.10.7 or 2001:db8::8a2e:370:7334.",
        );
        assert_eq!(
            found,
            vec![
                (PiiKind::Email, "ann.lee+x@example.co.uk".into()),
                (PiiKind::Card, "4111 1111 1111 1111".into()),
                (PiiKind::Iban, "GB82 WEST 1234 5698 7654 32".into()),
                (PiiKind::Ssn, "123-45-6789".into()),
                (PiiKind::Phone, "+1 (415) 555-0132".into()),
                (PiiKind::Ipv4, "192.168.10.7".into()),
                (PiiKind::Ipv6, "2001:db8::8a2e:370:7334".into()),
            ]
        );
    }

    #[test]
    fn rejects_look_alikes() {
        assert!(kinds("card 4111 1111 1111 1112 is fake").is_empty());
        assert!(kinds("version 1.2.3.4.5 and 10.0.0.256").is_empty());
        assert!(kinds("meet at 12:30:45 on 2024-01-15").is_empty());
        assert!(kinds("the year 2023 had 365 days and 12 months").is_empty());
        assert!(!kinds("mixed separators 123-45 6789")
            .iter()
            .any(|(k, _)| *k == PiiKind::Ssn));
        assert!(kinds("plain text with no personal data at all").is_empty());
    }

    #[test]
    fn custom_patterns_and_kind_selection() {
        let emp = PiiDetector::custom_pattern("employee_id", r"EMP-\d{6}").unwrap();
        let d = PiiDetector::with_kinds(&[PiiKind::Email], vec![emp]);
        let text = "EMP-123456 wrote from a@b.io about 4111 1111 1111 1111";
        let spans = d.detect(text);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].kind, PiiKind::Custom("employee_id".into()));
        assert_eq!(spans[1].kind, PiiKind::Email);
        assert!(PiiDetector::custom_pattern("bad", "(").is_err());
    }

    #[test]
    fn non_ascii_text_keeps_byte_offsets_right() {
        let text = "Grüße — schreib an jürgen@example.de bitte";
        let spans = PiiDetector::new().detect(text);
        assert_eq!(spans.len(), 1);
        // The local part starts after the non-ASCII 'ü' (an ASCII boundary): "rgen@example.de".
        assert!(text[spans[0].start..spans[0].end].ends_with("@example.de"));
    }

    #[test]
    fn iban_window_ending_inside_a_character_does_not_panic() {
        // An IBAN candidate's 42-byte window used to be cut inside a multi-byte character.
        for text in [
            format!("AB12{}", "中".repeat(20)), // 4 + 3k: byte 42 is inside a character
            format!("AB123{}", "é".repeat(30)), // 5 + 2k
            format!("see AB12 {}", "😀".repeat(12)), // 4-byte characters
            format!("XY99{}", "e\u{301}".repeat(20)), // combining acute accents
        ] {
            assert!(kinds(&text).is_empty(), "{text}");
        }
        // A real IBAN glued to CJK text is still found, with its exact text.
        let text = format!("GB82WEST12345698765432{}", "中文说明".repeat(3));
        assert_eq!(
            kinds(&text),
            vec![(PiiKind::Iban, "GB82WEST12345698765432".into())]
        );
    }

    #[test]
    fn finds_pii_in_cjk_emoji_combining_and_rtl_text() {
        let cases: [(&str, PiiKind, &str); 8] = [
            (
                "请发邮件到 wang.li@example.cn 谢谢",
                PiiKind::Email,
                "wang.li@example.cn",
            ),
            (
                "卡号：4111 1111 1111 1111。",
                PiiKind::Card,
                "4111 1111 1111 1111",
            ),
            (
                "😀 call +1 (415) 555-0132 👩‍👩‍👧",
                PiiKind::Phone,
                "+1 (415) 555-0132",
            ),
            (
                "Überweisung: DE89 3704 0044 0532 0130 00 — danke",
                PiiKind::Iban,
                "DE89 3704 0044 0532 0130 00",
            ),
            (
                "e\u{301}tudiant·e, numéro 123-45-6789",
                PiiKind::Ssn,
                "123-45-6789",
            ),
            (
                "رقم الهاتف \u{200F}+44 20 7946 0958\u{200F} شكرا",
                PiiKind::Phone,
                "+44 20 7946 0958",
            ),
            (
                "כתובת השרת 192.168.1.20 בבקשה",
                PiiKind::Ipv4,
                "192.168.1.20",
            ),
            ("服务器2001:db8::1上", PiiKind::Ipv6, "2001:db8::1"),
        ];
        for (text, kind, found) in cases {
            assert_eq!(kinds(text), vec![(kind, found.to_string())], "{text}");
        }
        // Right-to-left override and mixed scripts around digits that are no PII.
        assert!(kinds("\u{202E}2024 年 3 月 15 日\u{202C} 😀 Ωmega 12 ℃").is_empty());
    }

    /// Every span lies inside the text on character boundaries, sorted, without overlaps.
    fn check_spans(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let spans = PiiDetector::new().detect(text);
        for s in &spans {
            proptest::prop_assert!(s.start < s.end && s.end <= text.len(), "{s:?} in {text:?}");
            proptest::prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        }
        for pair in spans.windows(2) {
            proptest::prop_assert!(pair[0].end <= pair[1].start, "{spans:?} in {text:?}");
        }
        Ok(())
    }

    /// Pieces that make up PII candidates, glued to multi-byte characters of every kind.
    fn mixed_piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(vec![
                "AB12",
                "GB82",
                "de89",
                "WEST",
                "4111",
                " ",
                "-",
                ".",
                ":",
                "::",
                "@",
                "+",
                "(",
                ")",
                "x",
                "ext. ",
                "a",
                "中",
                "文字",
                "é",
                "e\u{301}",
                "😀",
                "👩‍👩‍👧",
                "\u{0627}\u{0644}",
                "\u{200F}",
                "\u{202E}",
                "ſ",
                "\u{212A}",
                "İ",
                "\u{FEFF}",
            ])
            .prop_map(String::from),
            "[0-9]{1,6}",
            any::<char>().prop_map(String::from),
        ]
    }

    proptest::proptest! {
        #[test]
        fn detector_never_panics_on_any_unicode(text in proptest::prelude::any::<String>()) {
            check_spans(&text)?;
        }

        #[test]
        fn detector_never_panics_on_pii_shapes_mixed_with_unicode(
            pieces in proptest::collection::vec(mixed_piece(), 0..48)
        ) {
            check_spans(&pieces.concat())?;
        }
    }
}
