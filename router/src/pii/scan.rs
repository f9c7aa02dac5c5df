//! Byte scans that find where PII candidates can be, so the detector's regexes run only on
//! small windows around them instead of once per kind over the whole text: runs of digits and
//! separators (phones, cards, SSNs, IPv4), runs with colons (IPv6), and word starts of the
//! form `AB12` (IBANs). Every window is cut at character boundaries, since the text around a
//! candidate may be any Unicode.

/// A run of bytes that can make up a phone, card, SSN or IPv4 number: digits and the
/// separators those use (`+ ( ) - . space`, `x` for extensions), with its digit and dot counts.
pub(super) struct DigitRun {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) digits: usize,
    pub(super) dots: usize,
}

pub(super) fn digit_runs(bytes: &[u8]) -> Vec<DigitRun> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Grow around the first digit: back over separators, forward over digits/separators.
        let mut start = i;
        while start > 0 && matches!(bytes[start - 1], b'+' | b'(' | b')' | b'-' | b'.' | b' ') {
            start -= 1;
        }
        let (mut digits, mut dots) = (0, 0);
        let mut end = i;
        while end < bytes.len()
            && matches!(
                bytes[end],
                b'0'..=b'9' | b'+' | b'(' | b')' | b'-' | b'.' | b' ' | b'x'
            )
        {
            digits += usize::from(bytes[end].is_ascii_digit());
            dots += usize::from(bytes[end] == b'.');
            end += 1;
        }
        runs.push(DigitRun {
            start,
            end,
            digits,
            dots,
        });
        i = end;
    }
    runs
}

/// `[start, end)` widened by one character on each side, so `\b` sees the real neighbours.
pub(super) fn window(text: &str, start: usize, end: usize) -> (usize, usize) {
    let w0 = text[..start]
        .char_indices()
        .next_back()
        .map(|(i, _)| i)
        .unwrap_or(start);
    let w1 = text[end..]
        .chars()
        .next()
        .map(|c| end + c.len_utf8())
        .unwrap_or(end);
    (w0, w1)
}

/// Where an IBAN could start: two letters and two digits at the start of a word.
pub(super) fn iban_starts(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..bytes.len().saturating_sub(3)).filter(move |&i| {
        bytes[i].is_ascii_alphabetic()
            && bytes[i + 1].is_ascii_alphabetic()
            && bytes[i + 2].is_ascii_digit()
            && bytes[i + 3].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
    })
}

/// Runs of hex digits, colons and dots holding at least two colons (IPv6 candidates).
pub(super) fn colon_runs(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b':' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && (bytes[start - 1].is_ascii_hexdigit() || bytes[start - 1] == b':') {
            start -= 1;
        }
        let mut end = i;
        let mut colons = 0;
        while end < bytes.len()
            && (bytes[end].is_ascii_hexdigit() || matches!(bytes[end], b':' | b'.'))
        {
            colons += usize::from(bytes[end] == b':');
            end += 1;
        }
        if colons >= 2 {
            runs.push((start, end));
        }
        i = end.max(i + 1);
    }
    runs
}

pub(super) fn memchr_at(bytes: &[u8]) -> bool {
    bytes.contains(&b'@')
}

/// `1.2.3.4.5` or `v1.2.3.4` are not addresses/phones: reject matches glued to a dot+digit.
pub(super) fn glued_to_dot(bytes: &[u8], start: usize, end: usize) -> bool {
    let before = start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit();
    let after = end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit();
    before || after
}

/// Where an IBAN candidate starting at `start` can end: up to 42 bytes (34 characters in groups
/// of four), then on to the end of the word. The 42nd byte can fall inside a multi-byte
/// character ("AB12" followed by CJK text), so the cut backs off to that character's start.
pub(super) fn iban_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = (start + 42).min(bytes.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_end_stays_on_character_boundaries() {
        let cjk = format!("AB12{}", "中".repeat(20)); // byte 42 is inside the 13th "中"
        assert_eq!(iban_end(&cjk, 0), 40);
        let accents = format!("x AB123{}", "é".repeat(30));
        let end = iban_end(&accents, 2);
        assert!(accents.is_char_boundary(end) && end <= 44, "{end}");
        // ASCII: 42 bytes, then on to the end of the word.
        let ascii = format!("{}{} tail", "GB82", "A".repeat(50));
        assert_eq!(iban_end(&ascii, 0), 54);
        assert_eq!(iban_end("AB12", 0), 4);
    }

    #[test]
    fn digit_runs_count_digits_and_dots() {
        let runs = digit_runs(b"ip 10.0.0.1, call (415) 555-0132");
        let got: Vec<(usize, usize, usize, usize)> = runs
            .iter()
            .map(|r| (r.start, r.end, r.digits, r.dots))
            .collect();
        assert_eq!(got, [(2, 11, 5, 3), (17, 32, 10, 0)]);
    }
}
