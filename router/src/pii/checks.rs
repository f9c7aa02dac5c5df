//! Validators that confirm the detector's regex candidates: the Luhn check for payment cards,
//! ISO 7064 mod-97 with the ISO 13616 length table for IBANs, the SSA's issuing rules for US
//! social security numbers, and the look-alike rules for phone numbers (dates, postal codes,
//! house numbers). Each is a few lines tied to its pattern, written by hand; none allocates
//! more than the digits it checks.

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
pub(super) fn phone_plausible(s: &str, after: &str) -> bool {
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
}
