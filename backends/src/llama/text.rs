//! Turning sampled token bytes into streamed text: UTF-8 reassembly across tokens and stop
//! strings that are never emitted (text that could be the start of a stop string is held back
//! until it is known not to be one). Optionally the answer starts at its first non-whitespace
//! character, so a stop string made of whitespace (a completion answer's blank line) cannot end
//! it before it began. A stop says which string matched, so the Messages API can report the
//! request's `stop_sequence`.

/// Accumulates token bytes and releases text that is safe to show.
#[derive(Debug, Default)]
pub struct TextAssembler {
    /// Bytes of a UTF-8 character split across tokens.
    pending_bytes: Vec<u8>,
    /// Decoded text not yet released (may be a stop-string prefix).
    held: String,
    stops: Vec<String>,
    /// Every piece of text released so far, for the caller's convenience.
    released_len: usize,
    /// Drop whitespace until the first other character (see [`Self::skipping_leading_whitespace`]).
    skip_leading_whitespace: bool,
    /// Whether a non-whitespace character was seen.
    started: bool,
}

/// What one token's bytes produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// Text that may be shown now (possibly empty when held back).
    Text(String),
    /// A stop string was found, generation must end.
    Stopped {
        /// The text before the stop string, not yet released.
        text: String,
        /// The stop string that matched (the first listed one when several start at the same
        /// position).
        stop: String,
    },
}

impl TextAssembler {
    /// An assembler that ends the answer at the first of `stops` (empty strings ignored); where
    /// several match at the same position, the one listed first is reported.
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// Drop the answer's leading whitespace when `skip`: it is never released and never matches
    /// a stop string.
    pub fn skipping_leading_whitespace(mut self, skip: bool) -> Self {
        self.skip_leading_whitespace = skip;
        self
    }

    /// Feed the bytes of one token.
    pub fn push(&mut self, bytes: &[u8]) -> Assembled {
        self.pending_bytes.extend_from_slice(bytes);
        let decoded = take_valid_utf8(&mut self.pending_bytes);
        self.held.push_str(&decoded);
        if self.skip_leading_whitespace && !self.started {
            let content = self.held.trim_start();
            if content.is_empty() {
                self.held.clear();
                return Assembled::Text(String::new());
            }
            self.held = content.to_string();
            self.started = true;
        }

        // A stop string anywhere in the held text ends generation; the held text never
        // contains a complete stop string from before, so searching it all is enough.
        // `min_by_key` keeps the first of equal positions: the earlier listed stop.
        if let Some((pos, stop)) = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()).map(|pos| (pos, stop)))
            .min_by_key(|(pos, _)| *pos)
        {
            let text = self.held[..pos].to_string();
            let stop = stop.clone();
            self.held.clear();
            self.released_len += text.len();
            return Assembled::Stopped { text, stop };
        }

        let keep = self.longest_stop_prefix_suffix();
        let release_to = self.held.len() - keep;
        let out: String = self.held[..release_to].to_string();
        self.held.drain(..release_to);
        self.released_len += out.len();
        Assembled::Text(out)
    }

    /// Release everything held back (generation ended for another reason).
    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.held);
        if !self.pending_bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending_bytes));
            self.pending_bytes.clear();
        }
        self.released_len += out.len();
        out
    }

    /// Bytes of text released so far.
    pub fn released_len(&self) -> usize {
        self.released_len
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop string.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = best.max(len);
                    break;
                }
            }
        }
        best
    }
}

/// Remove and return the longest valid UTF-8 prefix of `bytes`; invalid sequences (not merely
/// incomplete ones at the end) are replaced with U+FFFD.
fn take_valid_utf8(bytes: &mut Vec<u8>) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                bytes.clear();
                return out;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // Safe: from_utf8 said the prefix is valid.
                out.push_str(&String::from_utf8_lossy(&bytes[..valid]));
                match e.error_len() {
                    None => {
                        // Incomplete character at the end: keep it for the next token.
                        bytes.drain(..valid);
                        return out;
                    }
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        bytes.drain(..valid + bad);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let mut a = TextAssembler::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            match a.push(p) {
                Assembled::Text(t) => out.push_str(&t),
                Assembled::Stopped { text, .. } => {
                    out.push_str(&text);
                    return (out, true);
                }
            }
        }
        out.push_str(&a.finish());
        (out, false)
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(
            run(&[], &[b"Hello", b",", b" world"]),
            ("Hello, world".into(), false)
        );
    }

    #[test]
    fn stop_string_inside_one_token_is_cut() {
        assert_eq!(run(&["\n\n"], &[b"one", b"\n\ntwo"]), ("one".into(), true));
    }

    #[test]
    fn stop_string_split_across_tokens_is_never_emitted() {
        let mut a = TextAssembler::new(vec!["END".into()]);
        assert_eq!(a.push(b"abc E"), Assembled::Text("abc ".into()));
        assert_eq!(a.push(b"N"), Assembled::Text(String::new()));
        assert_eq!(a.push(b"D more"), stopped("", "END"));
    }

    #[test]
    fn held_prefix_is_released_when_it_turns_out_not_to_be_a_stop() {
        assert_eq!(run(&["END"], &[b"E", b"N", b"d"]), ("ENd".into(), false));
    }

    #[test]
    fn utf8_split_across_tokens_is_reassembled() {
        let bytes = "é😀".as_bytes();
        let (out, _) = run(&[], &[&bytes[..1], &bytes[1..3], &bytes[3..]]);
        assert_eq!(out, "é😀");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        let (out, _) = run(&[], &[b"a\xffb"]);
        assert_eq!(out, "a\u{FFFD}b");
    }

    #[test]
    fn leading_whitespace_is_dropped_and_cannot_stop_the_answer() {
        let mut a = TextAssembler::new(vec!["\n\n".into(), "\nInput:".into()])
            .skipping_leading_whitespace(true);
        assert_eq!(a.push(b"\n\n"), Assembled::Text(String::new()));
        assert_eq!(a.push(b" "), Assembled::Text(String::new()));
        assert_eq!(a.push(b" positive"), Assembled::Text("positive".into()));
        assert_eq!(a.push(b"\n"), Assembled::Text(String::new()));
        assert_eq!(a.push(b"\nInput: x"), stopped("", "\n\n"));
        // Whitespace inside the answer is kept; the next label ends it without a blank line.
        let mut b = TextAssembler::new(vec!["\n\n".into(), "\nInput:".into()])
            .skipping_leading_whitespace(true);
        assert_eq!(b.push(b" a b"), Assembled::Text("a b".into()));
        assert_eq!(b.push(b"\nc\nInput:"), stopped("\nc", "\nInput:"));
        // Without the option a leading blank line is a stop like any other.
        assert_eq!(run(&["\n\n"], &[b"\n\n", b"x"]), (String::new(), true));
    }

    fn stopped(text: &str, stop: &str) -> Assembled {
        Assembled::Stopped {
            text: text.into(),
            stop: stop.into(),
        }
    }

    #[test]
    fn earliest_of_several_stops_wins_and_is_named() {
        assert_eq!(run(&["c", "b"], &[b"abc"]), ("a".into(), true));
        let mut a = TextAssembler::new(vec!["c".into(), "b".into()]);
        assert_eq!(a.push(b"abc"), stopped("a", "b"));
    }

    #[test]
    fn stops_starting_at_the_same_place_report_the_first_listed() {
        let mut a = TextAssembler::new(vec!["\n".into(), "\n\n".into()]);
        assert_eq!(a.push(b"x\n\ny"), stopped("x", "\n"));
        let mut b = TextAssembler::new(vec!["\n\n".into(), "\n".into()]);
        assert_eq!(b.push(b"x\n\ny"), stopped("x", "\n\n"));
    }
}
