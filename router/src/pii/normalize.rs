//! The normalised view of text the detector scans, so that PII written with look-alike
//! characters is still found (issue 14, "PII without side doors"): fullwidth digits, a
//! fullwidth `＠`, a zero-width space inside an address or a no-break space inside an SSN
//! all read the same to a person and to a remote model, so they must read the same to the
//! detector.
//!
//! The view is NFKC (the `unicode-normalization` crate), then: format and other invisible
//! characters removed (Unicode category Cf such as U+200B–U+200F, U+2060–U+2064, U+FEFF,
//! the soft hyphen U+00AD, bidi controls, plus the combining grapheme joiner and Hangul
//! fillers), every space separator mapped to `' '` (line and paragraph separators to
//! `'\n'`), dashes and minus signs mapped to `'-'`, decimal digits of other scripts
//! (Arabic-Indic, Devanagari, Thai, …) mapped to ASCII digits, and combining marks that
//! follow an ASCII character (keycaps `4️⃣`, underlines `4̲`) dropped. The detectors
//! themselves are unchanged; they run on this view.
//!
//! Offsets: pure-ASCII text is its own view (no copy). Otherwise the text is cut into
//! segments at characters that NFKC never joins with what precedes them (ASCII, and
//! starters whose NFKC quick check says "yes"), each segment is normalised on its own — the
//! same result as normalising the whole text — and [`Normalized::to_original`] maps a span
//! of the view back to the original bytes it came from (exact for ASCII, to whole segments
//! otherwise).

use std::borrow::Cow;

use unicode_normalization::char::{canonical_combining_class, is_combining_mark};
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Text as the detector sees it, with the way back to the original's byte offsets.
#[derive(Clone, Debug)]
pub struct Normalized<'a> {
    text: Cow<'a, str>,
    /// How the view's bytes map to the original's; empty when the view is the original.
    pieces: Vec<Piece>,
}

/// A stretch of the view that came from `orig_start..orig_end` of the original.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Where the stretch starts in the view.
    start: usize,
    orig_start: usize,
    orig_end: usize,
    /// Byte for byte the same as the original (ASCII), so offsets map exactly.
    identity: bool,
}

impl<'a> Normalized<'a> {
    /// The normalised view of `text`.
    pub fn new(text: &'a str) -> Self {
        if text.is_ascii() {
            return Self {
                text: Cow::Borrowed(text),
                pieces: Vec::new(),
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut pieces: Vec<Piece> = Vec::new();
        let mut seg_start = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            let next = chars.peek().map(|&(j, _)| j).unwrap_or(text.len());
            let ends_segment = chars.peek().is_none_or(|&(_, n)| is_boundary(n));
            if !ends_segment {
                continue;
            }
            let segment = &text[seg_start..next];
            let start = out.len();
            if segment.len() == 1 {
                // A lone ASCII character: copied, offsets exact.
                out.push(c);
                match pieces.last_mut() {
                    Some(p)
                        if p.identity
                            && p.orig_end == seg_start
                            && p.start + (p.orig_end - p.orig_start) == start =>
                    {
                        p.orig_end = next;
                    }
                    _ => pieces.push(Piece {
                        start,
                        orig_start: seg_start,
                        orig_end: next,
                        identity: true,
                    }),
                }
            } else {
                push_normalized(segment, &mut out);
                if out.len() > start {
                    pieces.push(Piece {
                        start,
                        orig_start: seg_start,
                        orig_end: next,
                        identity: false,
                    });
                }
            }
            seg_start = next;
        }
        Self {
            text: Cow::Owned(out),
            pieces,
        }
    }

    /// The view the detector scans.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The view, borrowed from the original when it is the original (ASCII text).
    pub fn into_text(self) -> Cow<'a, str> {
        self.text
    }

    /// The original byte range that `start..end` of the view came from (a view span inside
    /// a normalised segment widens to the whole segment).
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        if self.pieces.is_empty() {
            return (start, end);
        }
        let at = |pos: usize| -> Option<&Piece> {
            let i = self.pieces.partition_point(|p| p.start <= pos);
            i.checked_sub(1).and_then(|i| self.pieces.get(i))
        };
        let s = match at(start) {
            Some(p) if p.identity => p.orig_start + (start - p.start),
            Some(p) => p.orig_start,
            None => 0,
        };
        let last = end.saturating_sub(1).max(start);
        let e = match at(last) {
            Some(p) if p.identity => p.orig_start + (last - p.start) + 1,
            Some(p) => p.orig_end,
            None => s,
        };
        (s, e.max(s))
    }
}

/// Whether NFKC never joins `c` with what precedes it, so a segment may start at `c`.
fn is_boundary(c: char) -> bool {
    c.is_ascii()
        || (canonical_combining_class(c) == 0
            && is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes)
}

/// NFKC of `segment`, then the mappings of the module docs, appended to `out`.
fn push_normalized(segment: &str, out: &mut String) {
    for c in segment.nfkc() {
        if is_invisible(c) {
            continue;
        }
        if is_combining_mark(c) && out.chars().next_back().is_some_and(|p| p.is_ascii()) {
            continue;
        }
        out.push(map_char(c));
    }
}

/// Spaces, dashes and digits of other scripts, as the detector's ASCII patterns expect.
fn map_char(c: char) -> char {
    match c {
        '\u{2028}' | '\u{2029}' => '\n',
        '\u{00A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => ' ',
        '\u{058A}'
        | '\u{05BE}'
        | '\u{1400}'
        | '\u{1806}'
        | '\u{2010}'..='\u{2015}'
        | '\u{2E17}'
        | '\u{2E1A}'
        | '\u{2E3A}'
        | '\u{2E3B}'
        | '\u{2E40}'
        | '\u{2E5D}'
        | '\u{301C}'
        | '\u{3030}'
        | '\u{30A0}'
        | '\u{FE31}'
        | '\u{FE32}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}'
        | '\u{2212}'
        | '\u{02D7}'
        | '\u{2796}'
        | '\u{2043}' => '-',
        _ => digit_of(c).unwrap_or(c),
    }
}

/// The first code point (the zero) of each block of ten decimal digits outside ASCII that
/// NFKC leaves alone (fullwidth and mathematical digits NFKC maps itself).
const DIGIT_ZEROS: [u32; 35] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
];

fn digit_of(c: char) -> Option<char> {
    let u = u32::from(c);
    if u < 0x0660 {
        return None;
    }
    DIGIT_ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&u))
        .and_then(|z| char::from_digit(u - z, 10))
}

/// Format characters (category Cf) and other characters that render as nothing.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(s: &str) -> String {
        Normalized::new(s).text().to_string()
    }

    #[test]
    fn look_alikes_read_as_ascii() {
        assert_eq!(view("４１１１－１１１１"), "4111-1111");
        assert_eq!(view("john\u{200B}@example.com"), "john@example.com");
        assert_eq!(view("john＠example．com"), "john@example.com");
        assert_eq!(view("123\u{00A0}45\u{00A0}6789"), "123 45 6789");
        assert_eq!(view("123\u{2011}45\u{2013}6789"), "123-45-6789");
        assert_eq!(view("\u{0664}\u{0661}\u{0661}\u{0661}"), "4111");
        assert_eq!(view("4\u{FE0F}\u{20E3}1\u{0332}"), "41");
        assert_eq!(view("se\u{00AD}cret\u{FEFF}"), "secret");
        assert_eq!(view("e\u{301}tude"), "\u{e9}tude");
        assert_eq!(view("plain ascii"), "plain ascii");
    }

    #[test]
    fn spans_map_back_to_the_original_bytes() {
        let text = "mail: jo\u{200B}hn＠ex.io, ok";
        let n = Normalized::new(text);
        let v = n.text();
        let (s, e) = (v.find("john").unwrap(), v.find(".io").unwrap() + 3);
        let (os, oe) = n.to_original(s, e);
        assert_eq!(&text[os..oe], "jo\u{200B}hn＠ex.io");
        // ASCII text maps to itself.
        assert_eq!(Normalized::new("abc").to_original(1, 2), (1, 2));
    }

    proptest::proptest! {
        #[test]
        fn spans_stay_on_character_boundaries(text in proptest::prelude::any::<String>()) {
            let n = Normalized::new(&text);
            let len = n.text().len();
            for (s, e) in [(0, len), (0, len / 2), (len / 3, len)] {
                let (os, oe) = n.to_original(s, e);
                proptest::prop_assert!(os <= oe && oe <= text.len());
                proptest::prop_assert!(text.is_char_boundary(os) && text.is_char_boundary(oe));
            }
        }
    }
}
