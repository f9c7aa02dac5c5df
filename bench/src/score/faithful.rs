//! Faithfulness: is an answer supported by the passages it was given?
//!
//! A lexical check, chosen because it needs no second model and is easy to audit: the answer's
//! *content tokens* — its SQuAD-normalised tokens ([`super::text::tokens`]: NFKC, lower case,
//! punctuation split off, articles dropped) minus English function words ([`STOPWORDS`]) —
//! are looked up in the passages' normalised tokens; the score is the share found (`support`),
//! and the answer passes at `pass_at` (default 0.75). An answer with no content token at all
//! claims nothing and scores 1. It catches invented names, numbers and identifiers, which is
//! what a small model adds when it does not find the answer; it cannot tell a paraphrase that
//! reverses a passage's meaning from a faithful one (a judge scorer can).
//!
//! **Abstention rule.** An answer abstains when it is empty, or when its normalised text
//! contains one of [`ABSTENTIONS`] ("i don t know", "not in context", "cannot answer", "does
//! not mention", …; "unknown" only as the whole answer). An abstention claims nothing, so it
//! scores 1 and passes here, with `abstained: true` in its raw value; it is never a correct
//! answer (the correctness scorers fail it), and the run summary reports the abstention share
//! apart from the faithfulness of the answers that did not abstain (`rag::summary`).

use serde::{Deserialize, Serialize};

use super::text::{normalize, tokens};

/// The scorer kind, as written in scenario files.
pub const KIND: &str = "faithfulness";

/// Phrases (in normalised form: punctuation is a space, articles are gone) that make an answer
/// an abstention.
pub const ABSTENTIONS: &[&str] = &[
    "i don t know",
    "i do not know",
    "not in context",
    "not in passages",
    "not in provided",
    "not mentioned",
    "not stated",
    "not specified",
    "cannot answer",
    "can t answer",
    "cannot be answered",
    "unable to answer",
    "no information",
    "not enough information",
    "insufficient information",
    "does not say",
    "doesn t say",
    "do not say",
    "does not mention",
    "doesn t mention",
    "does not contain",
    "doesn t contain",
    "do not contain",
    "don t contain",
];

/// English function words, which say nothing about support (normalised: `don't` is `don t`).
pub const STOPWORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "we",
    "our",
    "you",
    "your",
    "he",
    "him",
    "his",
    "she",
    "her",
    "it",
    "its",
    "they",
    "them",
    "their",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
    "also",
    "would",
    "could",
    "may",
    "might",
    "must",
    "shall",
    "yes",
    "answer",
    "context",
    "passage",
    "passages",
    "according",
];

/// What a faithfulness verdict records (the score result's `raw`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessRaw {
    /// The answer abstained (see the module docs); `support` is then absent.
    pub abstained: bool,
    /// Share of the answer's content tokens found in the passages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<f64>,
    /// Content tokens in the answer.
    pub content_tokens: usize,
    /// Content tokens not found in the passages (at most 10, in answer order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
}

/// Whether `answer` abstains (see the module docs).
pub fn abstains(answer: &str) -> bool {
    let n = normalize(answer);
    if n.is_empty() || n == "unknown" {
        return true;
    }
    let padded = format!(" {n} ");
    ABSTENTIONS
        .iter()
        .any(|p| padded.contains(&format!(" {p} ")))
}

/// The faithfulness verdict of `answer` given `passages`.
pub fn judge(answer: &str, passages: &str) -> FaithfulnessRaw {
    if abstains(answer) {
        return FaithfulnessRaw {
            abstained: true,
            support: None,
            content_tokens: 0,
            unsupported: Vec::new(),
        };
    }
    let known: std::collections::HashSet<String> = tokens(passages).into_iter().collect();
    let content: Vec<String> = tokens(answer)
        .into_iter()
        .filter(|t| !STOPWORDS.contains(&t.as_str()))
        .collect();
    let missing: Vec<String> = content
        .iter()
        .filter(|t| !known.contains(*t))
        .cloned()
        .collect();
    let support = if content.is_empty() {
        1.0
    } else {
        1.0 - missing.len() as f64 / content.len() as f64
    };
    FaithfulnessRaw {
        abstained: false,
        support: Some(support),
        content_tokens: content.len(),
        unsupported: missing.into_iter().take(10).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSAGES: &str = "[1] ARCHITECTURE.md › The local engine\n\nOne OS thread owns the \
        `LlamaContext` (it is not `Send`); the model is an `Arc<LlamaModel>`.";

    #[test]
    fn abstentions_follow_the_rule() {
        for a in [
            "",
            "  ",
            "I don't know.",
            "Not in the context.",
            "The passages do not contain this information.",
            "The context does not mention it",
            "Unknown",
            "I cannot answer that from the passages.",
        ] {
            assert!(abstains(a), "{a:?}");
        }
        for a in [
            "One OS thread owns it",
            "unknown fields are forwarded",
            "It is not Send",
            "knowledge",
        ] {
            assert!(!abstains(a), "{a:?}");
        }
    }

    #[test]
    fn support_is_the_share_of_content_tokens_in_the_passages() {
        let v = judge("One OS thread owns the LlamaContext.", PASSAGES);
        assert_eq!(v.support, Some(1.0));
        assert_eq!(v.content_tokens, 5, "one os thread owns llamacontext");
        // "a dedicated GPU thread": dedicated and gpu are invented, thread is supported.
        let v = judge("A dedicated GPU thread.", PASSAGES);
        assert_eq!(v.content_tokens, 3);
        assert_eq!(v.unsupported, ["dedicated", "gpu"]);
        assert!((v.support.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // Punctuation and case do not matter; function words are not claims.
        let v = judge("it's the `Arc<LlamaModel>`!", PASSAGES);
        assert_eq!(v.support, Some(1.0));
        let v = judge("Yes, it is.", PASSAGES);
        assert_eq!((v.content_tokens, v.support), (0, Some(1.0)));
        let v = judge("Not in the context.", PASSAGES);
        assert!(v.abstained && v.support.is_none());
    }
}
