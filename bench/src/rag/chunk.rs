//! Markdown chunking for retrieval: one passage per section, long sections cut into
//! overlapping windows of at most `max_tokens` encoder tokens.
//!
//! Why by section: the shipped corpus is documentation, whose headings already say what a
//! passage is about; a passage that crosses a heading mixes two topics and embeds as neither.
//! Each passage starts with its heading path (`README.md › Quick start › Bench`), so a window
//! from the middle of a long section still says where it comes from, to the encoder and to the
//! model reading it. A section longer than the budget is cut at word boundaries into windows
//! that share `overlap_tokens` tokens with the previous one, so a sentence cut at one window's
//! end is whole in the next. Line breaks inside a section are kept (tables and lists stay
//! readable in the prompt). Lines inside code fences are never read as headings.
//!
//! Token counts come from a caller's counter (the encoder's own WordPiece tokenizer in the
//! harness; a word counter in tests). WordPiece splits at whitespace before anything else, so
//! a window's count is the sum of its words' counts.

use serde::{Deserialize, Serialize};

/// How a corpus is cut into passages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkSpec {
    /// Most encoder tokens in one passage, heading line and `[CLS]`/`[SEP]` included
    /// (default 200; all-MiniLM-L6-v2 reads at most 256).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Tokens a window shares with the previous window of the same section (default 48).
    #[serde(default = "default_overlap")]
    pub overlap_tokens: usize,
}

fn default_max_tokens() -> usize {
    200
}

fn default_overlap() -> usize {
    48
}

impl Default for ChunkSpec {
    fn default() -> Self {
        Self {
            max_tokens: default_max_tokens(),
            overlap_tokens: default_overlap(),
        }
    }
}

/// One passage of the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// `SOURCE#N`: the corpus file and the passage's position in it (0-based).
    pub id: String,
    /// The corpus file, relative to the corpus root.
    pub source: String,
    /// The heading path, `file › H1 › H2 …`.
    pub heading: String,
    /// The passage as embedded and shown: the heading path, a blank line, the section text.
    pub text: String,
}

/// A word of a section and whether it starts a line.
struct Word<'a> {
    text: &'a str,
    line_start: bool,
    tokens: usize,
}

/// Cut one markdown file into passages. `count` gives a text's token count without special
/// tokens. A window holds at least one word, so a single word above the budget makes a passage
/// above it (the encoder then refuses it by name).
pub fn chunk_markdown(
    source: &str,
    text: &str,
    spec: &ChunkSpec,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (heading, body) in sections(source, text) {
        let words: Vec<Word> = body
            .lines()
            .flat_map(|line| {
                line.split_whitespace().enumerate().map(|(i, w)| Word {
                    text: w,
                    line_start: i == 0,
                    tokens: count(w),
                })
            })
            .collect();
        if words.is_empty() {
            continue;
        }
        // [CLS], [SEP], and the blank line between heading and body (no tokens of its own).
        let budget = spec.max_tokens.saturating_sub(count(&heading) + 2).max(1);
        let mut start = 0;
        loop {
            let mut end = start;
            let mut used = 0;
            while end < words.len() && (end == start || used + words[end].tokens <= budget) {
                used += words[end].tokens;
                end += 1;
            }
            chunks.push(Chunk {
                id: format!("{source}#{}", chunks.len()),
                source: source.to_string(),
                heading: heading.clone(),
                text: format!("{heading}\n\n{}", join(&words[start..end])),
            });
            if end >= words.len() {
                break;
            }
            // The next window starts as far back as the overlap allows, always after `start`.
            let mut next = end;
            let mut shared = 0;
            while next > start + 1 && shared + words[next - 1].tokens <= spec.overlap_tokens {
                shared += words[next - 1].tokens;
                next -= 1;
            }
            start = next;
        }
    }
    chunks
}

fn join(words: &[Word]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(if w.line_start { '\n' } else { ' ' });
        }
        out.push_str(w.text);
    }
    out
}

/// `(heading path, body)` for every section of a markdown file, in order. Text before the
/// first heading belongs to a section named after the file alone.
fn sections(source: &str, text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let mut in_fence = false;
    let heading_of = |path: &[(usize, String)]| {
        std::iter::once(source.to_string())
            .chain(path.iter().map(|(_, t)| t.clone()))
            .collect::<Vec<_>>()
            .join(" › ")
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
        }
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        let is_heading = !in_fence
            && (1..=6).contains(&level)
            && trimmed[level..].starts_with(' ')
            && line.len() == trimmed.len();
        if is_heading {
            out.push((heading_of(&path), std::mem::take(&mut body)));
            path.retain(|(l, _)| *l < level);
            path.push((level, trimmed[level..].trim().to_string()));
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.push((heading_of(&path), body));
    out.retain(|(_, b)| !b.trim().is_empty());
    out
}

/// `text` with every run of whitespace made one space (how evidence quotes are matched).
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn sections_become_passages_with_their_heading_path() {
        let md = "intro line\n# Top\nalpha beta\n## Sub\ngamma\n```\n# not a heading\n```\n# Next\ndelta\n";
        let chunks = chunk_markdown("a.md", md, &ChunkSpec::default(), &words);
        let headings: Vec<&str> = chunks.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(
            headings,
            ["a.md", "a.md › Top", "a.md › Top › Sub", "a.md › Next"]
        );
        assert_eq!(
            chunks[2].text,
            "a.md › Top › Sub\n\ngamma\n```\n# not a heading\n```"
        );
        assert_eq!(chunks[3].id, "a.md#3");
    }

    #[test]
    fn long_sections_are_cut_into_overlapping_windows_within_budget() {
        let body: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
        let md = format!("# H\n{}\n", body.join(" "));
        let spec = ChunkSpec {
            max_tokens: 24,
            overlap_tokens: 5,
        };
        let chunks = chunk_markdown("b.md", &md, &spec, &words);
        // Budget: 24 − heading "b.md › H" (3 words) − 2 = 19 words per window.
        let first: Vec<&str> = chunks[0].text.split_whitespace().skip(3).collect();
        assert_eq!(first.len(), 19);
        let second: Vec<&str> = chunks[1].text.split_whitespace().skip(3).collect();
        assert_eq!(second[0], "w14", "5 words shared with the first window");
        let last = chunks.last().unwrap();
        assert!(last.text.ends_with("w49"));
        for c in &chunks {
            assert!(words(&c.text) + 2 <= 24, "{}", c.text);
        }
        // Every 5-word run of the section is whole in some window.
        for s in 0..=45 {
            let quote = body[s..s + 5].join(" ");
            assert!(
                chunks
                    .iter()
                    .any(|c| collapse_whitespace(&c.text).contains(&quote)),
                "{quote}"
            );
        }
    }
}
