//! Byte scans that find where PII candidates can be, so the detector's regexes run only on
//! small windows around them instead of once per kind over the whole text: runs of digits and
//! separators (phones, cards, SSNs, IPv4), runs with colons (IPv6), and word starts of the
//! form `AB12` (IBANs). Every window is cut at character boundaries, since the text around a
//! candidate may be any Unicode.
//!
//! The scans jump from one digit (or colon) to the next with [`next_digit`] (32 bytes tested at
//! a time, which the compiler turns into vector instructions) and `memchr`, so ordinary prose
//! costs a fraction of a cycle per byte rather than a branch per byte (issue 18: the scan was
//! a visible part of the gateway's time per KB of prompt).

/// A run of bytes that can make up a phone, card, SSN or IPv4 number: digits and the
/// separators those use (`+ ( ) - . space`, `x` for extensions), with its digit and dot counts.
pub(super) struct DigitRun {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) digits: usize,
    pub(super) dots: usize,
}

/// Bytes tested at a time by [`next_digit`].
const BLOCK: usize = 32;

/// The first ASCII digit at or after `from`.
pub(super) fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + BLOCK <= bytes.len() {
        let block = &bytes[i..i + BLOCK];
        // Branch-free over the block, so it vectorizes; a hit is then found byte by byte.
        if block
            .iter()
            .fold(false, |any, &b| any | b.wrapping_sub(b'0').lt(&10))
        {
            break;
        }
        i += BLOCK;
    }
    bytes
        .get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|k| i + k)
}

pub(super) fn digit_runs(bytes: &[u8]) -> Vec<DigitRun> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match next_digit(bytes, i) {
            Some(d) => i = d,
            None => break,
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

/// Where an IBAN could start: two letters and two digits at the start of a word. Every start
/// has a digit two bytes on, so only the digits' positions are tried, in order.
pub(super) fn iban_starts(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let d = next_digit(bytes, from)?;
        from = d + 1;
        Some(d)
    })
    .filter_map(|d| d.checked_sub(2))
    .filter(move |&i| {
        i + 3 < bytes.len()
            && bytes[i].is_ascii_alphabetic()
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
        match memchr::memchr(b':', &bytes[i..]) {
            Some(k) => i += k,
            None => break,
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
    memchr::memchr(b'@', bytes).is_some()
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

    /// The scans before they jumped between digits (the reference they must agree with).
    fn iban_starts_bytewise(bytes: &[u8]) -> Vec<usize> {
        (0..bytes.len().saturating_sub(3))
            .filter(|&i| {
                bytes[i].is_ascii_alphabetic()
                    && bytes[i + 1].is_ascii_alphabetic()
                    && bytes[i + 2].is_ascii_digit()
                    && bytes[i + 3].is_ascii_digit()
                    && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            })
            .collect()
    }

    #[test]
    fn the_jumping_scans_find_what_a_byte_by_byte_scan_finds() {
        let long = "word ".repeat(20);
        let texts = [
            String::new(),
            "7".into(),
            "GB82WEST12345698765432 and DE89 3704 0044 0532 0130 00".into(),
            format!("{long}AB12{long}x9 CD34"),
            format!("{long}{long}1"),
            format!("ab12{long}::1 fe80::1 {long}2001:db8::8a2e:370:7334"),
            "AB1".into(),
            "éAB12 中AB12 1AB12".into(),
        ];
        for text in &texts {
            let bytes = text.as_bytes();
            assert_eq!(
                iban_starts(bytes).collect::<Vec<_>>(),
                iban_starts_bytewise(bytes),
                "{text}"
            );
            for from in 0..=bytes.len() {
                assert_eq!(
                    next_digit(bytes, from),
                    bytes[from..]
                        .iter()
                        .position(u8::is_ascii_digit)
                        .map(|k| from + k),
                    "{text} from {from}"
                );
            }
        }
        let ipv6 = format!("{long}fe80::1 a:b 2001:db8::1{long}:");
        assert_eq!(colon_runs(ipv6.as_bytes()).len(), 2);
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
