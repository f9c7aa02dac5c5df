//! PII detector used by the privacy rule: finds e-mail addresses, phone numbers, payment cards
//! (Luhn-checked), IBANs (mod-97-checked), US social security numbers, IPv4/IPv6 addresses and
//! operator-configured patterns, and returns typed byte spans.
//!
//! Regular expressions find candidates; checksums and parsers (`Ipv6Addr`, Luhn, ISO 7064
//! mod-97, SSA rules for SSNs) reject look-alikes. Overlapping candidates are resolved by
//! priority: a checksum-validated span (card, IBAN) beats an SSN, which beats a phone number,
//! so a card number is never also reported as a phone number. The detector is built once from
//! config and is cheap to share (`Sync`); a scan allocates only its result vector.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What kind of personal data a span holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    /// A payment card number that passes the Luhn check.
    Card,
    /// An IBAN whose ISO 7064 mod-97 check digits are right.
    Iban,
    /// A US social security number that the SSA could have issued.
    Ssn,
    Ipv4,
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
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// A named pattern from config (`pii.patterns`).
#[derive(Clone, Debug)]
pub struct CustomPattern {
    pub name: String,
    pub regex: Regex,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PiiError {
    #[error("invalid regex for PII pattern {name:?}: {source}")]
    BadPattern {
        name: String,
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
        let has_digit = bytes.iter().any(u8::is_ascii_digit);
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
            if let Some(re) = &self.iban {
                for m in re.find_iter(text) {
                    if iban_valid(m.as_str()) {
                        push(PiiKind::Iban, m.start(), m.end());
                    }
                }
            }
            if let Some(re) = &self.card {
                for m in re.find_iter(text) {
                    // "+44 7700 …" is an international phone number, not a card.
                    let after_plus = m.start() > 0 && bytes[m.start() - 1] == b'+';
                    if !after_plus && card_valid(m.as_str()) {
                        push(PiiKind::Card, m.start(), m.end());
                    }
                }
            }
            if let Some(re) = &self.ssn {
                for c in re.captures_iter(text) {
                    let (Some(m), Some(s1), Some(s2)) = (c.get(0), c.get(1), c.get(2)) else {
                        continue;
                    };
                    if s1.as_str() == s2.as_str() && ssn_valid(m.as_str()) {
                        push(PiiKind::Ssn, m.start(), m.end());
                    }
                }
            }
            if let Some(re) = &self.ipv4 {
                for m in re.find_iter(text) {
                    if !glued_to_dot(bytes, m.start(), m.end()) {
                        push(PiiKind::Ipv4, m.start(), m.end());
                    }
                }
            }
            if let Some(re) = &self.phone {
                for m in re.find_iter(text) {
                    if phone_plausible(m.as_str(), &text[m.end()..])
                        && !glued_to_dot(bytes, m.start(), m.end())
                    {
                        push(PiiKind::Phone, m.start(), m.end());
                    }
                }
            }
        }
        if let Some(re) = &self.ipv6 {
            if bytes.contains(&b':') {
                for m in re.find_iter(text) {
                    let s = m.as_str();
                    let shaped = s.contains("::") || s.matches(':').count() == 7 || s.contains('.');
                    if shaped && Ipv6Addr::from_str(s).is_ok() {
                        push(PiiKind::Ipv6, m.start(), m.end());
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

fn memchr_at(bytes: &[u8]) -> bool {
    bytes.contains(&b'@')
}

/// `1.2.3.4.5` or `v1.2.3.4` are not addresses/phones: reject matches glued to a dot+digit.
fn glued_to_dot(bytes: &[u8], start: usize, end: usize) -> bool {
    let before = start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit();
    let after = end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit();
    before || after
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

/// Luhn check over the digits of `s` (separators ignored); 12–19 digits, not all the same.
pub fn card_valid(s: &str) -> bool {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    if !(12..=19).contains(&digits.len()) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    luhn(&digits)
}

/// The Luhn (mod 10) checksum over decimal digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// IBAN length by country (ISO 13616 registry), for the countries that issue them.
fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SC", 31),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
    ];
    LENGTHS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(country))
        .map(|&(_, n)| n)
}

/// An IBAN (spaces allowed, any case) whose length fits its country and whose mod-97 is 1.
pub fn iban_valid(s: &str) -> bool {
    let compact: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if compact.len() < 15 || compact.len() > 34 || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    match iban_length(country) {
        Some(n) if n == compact.len() => {}
        _ => return false,
    }
    // Move the first four characters to the end; letters count as 10..35; remainder mod 97.
    let mut rem: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A US SSN the SSA could have issued: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn ssn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    if digits.len() != 9 {
        return false;
    }
    let area = digits[0] * 100 + digits[1] * 10 + digits[2];
    let group = digits[3] * 10 + digits[4];
    let serial = digits[5] * 1000 + digits[6] * 100 + digits[7] * 10 + digits[8];
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Words that label a phone number when they follow it ("555 0132 office").
const PHONE_LABELS: [&str; 9] = [
    "office", "fax", "mobile", "desk", "phone", "tel", "cell", "home", "work",
];

/// A phone candidate is plausible with 7–15 digits (E.164 allows 15); with fewer than 10 it
/// needs a separator or a leading `+`/`(`. Look-alikes rejected: dates (`2024-01-15 10`), and
/// two short digit groups that start a street address (`370 3911 Fourth Avenue`) or form a
/// postal code (`75534-030`). `after` is the text following the candidate.
fn phone_plausible(s: &str, after: &str) -> bool {
    let main = s
        .split('x')
        .next()
        .unwrap_or(s)
        .trim_end_matches(|c: char| !c.is_ascii_digit());
    let digits = main.bytes().filter(u8::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    let structured = s.starts_with('+') || s.starts_with('(');
    let groups: Vec<&str> = main
        .split([' ', '-', '.'])
        .filter(|g| !g.is_empty())
        .collect();
    if digits < 10 && !structured && groups.len() < 2 {
        return false;
    }
    let b = main.as_bytes();
    let is_date = |i: usize| {
        b.len() >= i + 10
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && matches!(b[i + 4], b'-' | b'/' | b'.')
            && b[i + 5..i + 7].iter().all(u8::is_ascii_digit)
            && b[i + 7] == b[i + 4]
            && b[i + 8..i + 10].iter().all(u8::is_ascii_digit)
    };
    if is_date(0) {
        return false;
    }
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if !structured && lens == [2, 2, 4] && digits == 8 {
        return false; // 15.01.2024
    }
    if !structured && groups.len() == 2 && digits < 10 {
        if lens[0] == 5 {
            return false; // postal codes such as 75534-030, or "17151 2450 Crown St"
        }
        let next = after.trim_start_matches(' ');
        let word: String = next.chars().take_while(|c| c.is_alphabetic()).collect();
        if !word.is_empty()
            && after.starts_with(' ')
            && !PHONE_LABELS.contains(&word.to_lowercase().as_str())
        {
            return false; // a house number followed by a street name
        }
    }
    true
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
    fn luhn_edge_cases() {
        assert!(card_valid("4111 1111 1111 1111"));
        assert!(card_valid("4111-1111-1111-1111"));
        assert!(card_valid("378282246310005")); // Amex, 15 digits
        assert!(card_valid("6011111111111117"));
        assert!(!card_valid("4111 1111 1111 1112")); // one digit off
        assert!(!card_valid("0000 0000 0000 0000")); // Luhn-valid but all the same digit
        assert!(!card_valid("12345678901")); // too short
        assert!(!card_valid("41111111111111111111")); // 20 digits: too long
        assert!(luhn(&[0]));
        assert!(luhn(&[1, 8]));
        assert!(!luhn(&[1, 9]));
    }

    #[test]
    fn iban_edge_cases() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("gb82west12345698765432")); // lower case
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("NO9386011117947")); // shortest (15)
        assert!(!iban_valid("GB83WEST12345698765432")); // wrong check digits
        assert!(!iban_valid("DE8937040044053201300")); // wrong length for DE
        assert!(!iban_valid("ZZ82WEST12345698765432")); // unknown country
        assert!(!iban_valid("GB82WEST1234569876543!"));
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn_valid("123-45-6789"));
        assert!(!ssn_valid("000-45-6789"));
        assert!(!ssn_valid("666-45-6789"));
        assert!(!ssn_valid("912-45-6789"));
        assert!(!ssn_valid("123-00-6789"));
        assert!(!ssn_valid("123-45-0000"));
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
}

/// Precision/recall of the detector against a labelled corpus (Presidio's synthetic dataset).
pub mod eval {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::path::Path;

    use serde::Deserialize;

    use super::{PiiDetector, PiiKind};

    /// One sentence of Presidio's `synth_dataset_v2.json`.
    #[derive(Debug, Deserialize)]
    pub struct Sample {
        pub full_text: String,
        pub spans: Vec<GoldSpan>,
    }

    /// Positions are character offsets into `full_text`.
    #[derive(Debug, Deserialize)]
    pub struct GoldSpan {
        pub entity_type: String,
        pub start_position: usize,
        pub end_position: usize,
    }

    pub fn load(path: &Path) -> Result<Vec<Sample>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
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

    pub const ENTITIES: [&str; 6] = [
        "CREDIT_CARD",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "IP_ADDRESS",
        "PHONE_NUMBER",
        "US_SSN",
    ];

    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    pub struct Counts {
        pub gold: usize,
        pub predicted: usize,
        /// Predicted spans overlapping a gold span of the same type (each gold counted once).
        pub true_positives: usize,
        /// True positives whose boundaries equal the gold span's exactly.
        pub exact: usize,
    }

    impl Counts {
        pub fn precision(&self) -> f64 {
            ratio(self.true_positives, self.predicted)
        }
        pub fn recall(&self) -> f64 {
            ratio(self.true_positives, self.gold)
        }
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

    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Report {
        pub sentences: usize,
        pub by_entity: BTreeMap<&'static str, Counts>,
        /// Sentences holding at least one evaluated entity, and how many of them were flagged.
        pub sentences_with_pii: usize,
        pub sentences_flagged: usize,
        /// Sentences without any evaluated entity that were flagged anyway.
        pub sentences_without_pii: usize,
        pub sentences_false_flagged: usize,
    }

    impl Report {
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

    pub fn evaluate(detector: &PiiDetector, samples: &[Sample]) -> Report {
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
            let predicted: Vec<(&str, usize, usize)> = detector
                .detect(&s.full_text)
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
}
