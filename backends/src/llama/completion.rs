//! The prompt of a base model: plain text to continue, not chat turns.
//!
//! A base model (Gemma-3-270M) was never tuned on turn markers; rendered as a chat it mostly
//! repeats the system prompt. What it was trained on is text, and a few-shot text is the prompt
//! it continues best:
//!
//! ```text
//! {system prompt}
//!
//! Input: {first example question}
//! Answer: {first example answer}
//!
//! Input: {the question}
//! Answer:
//! ```
//!
//! System and developer messages form the preamble; every other message is part of a block, in
//! order: user (and tool) messages are a block's `Input:`, the assistant message after them its
//! `Answer:`. So a scenario's few-shot examples — prior user/assistant pairs — become worked
//! blocks, and the last user message the open one. Blocks are separated by a blank line, which is
//! why an answer ends at the first blank line after it started, or at a following `Input:` label
//! ([`STOPS`]); blank lines inside an example's answer are collapsed so the examples follow the
//! same rule. `Answer:` ends without a space: the model writes the space itself (` positive` is
//! one token for SentencePiece vocabularies, `positive` after a space another), and the leading
//! whitespace of the answer is dropped (see `SamplingParams::skip_leading_whitespace`).

use crate::types::{ChatMessage, Role};

/// The label that opens a block's question.
pub const INPUT: &str = "Input:";
/// The label that opens a block's answer; the prompt ends with it.
pub const ANSWER: &str = "Answer:";
/// What follows an answer in the rendered text: the blank line between blocks. Choice scoring
/// ends every choice with it.
pub const ANSWER_END: &str = "\n\n";
/// Stop strings of a completion-mode answer: a blank line, or the next block's label written
/// without one.
pub const STOPS: &[&str] = &[ANSWER_END, "\nInput:"];

/// Render the conversation as completion text ending with `Answer:` (or, when the last message is
/// the assistant's, with that answer left open for the model to continue).
pub fn render(messages: &[ChatMessage]) -> String {
    let mut preamble: Vec<String> = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut inputs: Vec<String> = Vec::new();
    let mut open = true;
    for m in messages {
        let text = m.text();
        let text = text.trim();
        match m.role {
            Role::System | Role::Developer => {
                if !text.is_empty() {
                    preamble.push(text.to_string());
                }
            }
            Role::User | Role::Tool | Role::Function => {
                inputs.push(text.to_string());
                open = true;
            }
            Role::Assistant => {
                blocks.push(block(&inputs, Some(&collapse_blank_lines(text))));
                inputs.clear();
                open = false;
            }
        }
    }
    if open {
        blocks.push(block(&inputs, None));
    }
    let mut parts = preamble;
    parts.extend(blocks);
    let mut out = parts.join(ANSWER_END);
    if !open {
        // The assistant's last message is the start of the answer to continue.
        return out;
    }
    if out.is_empty() {
        out.push_str(ANSWER);
    }
    out
}

/// One block: the inputs (several user messages in a row are one input, a line each), then the
/// answer, or an open `Answer:`.
fn block(inputs: &[String], answer: Option<&str>) -> String {
    let mut out = String::new();
    if !inputs.is_empty() {
        out.push_str(INPUT);
        out.push(' ');
        out.push_str(&inputs.join("\n"));
        out.push('\n');
    }
    out.push_str(ANSWER);
    if let Some(answer) = answer {
        out.push(' ');
        out.push_str(answer);
    }
    out
}

/// Lines of `text` with the empty ones removed: an example answer must not contain the blank
/// line that ends an answer.
fn collapse_blank_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, text)
    }

    #[test]
    fn system_is_the_preamble_examples_are_blocks_and_the_question_is_open() {
        let messages = [
            msg(Role::System, "You classify reviews."),
            msg(Role::User, "Review: great fun"),
            msg(Role::Assistant, "positive"),
            msg(Role::User, "Review: dull\nReally."),
            msg(Role::Assistant, " negative \n"),
            msg(Role::User, "Review: loved it"),
        ];
        assert_eq!(
            render(&messages),
            "You classify reviews.\n\n\
             Input: Review: great fun\nAnswer: positive\n\n\
             Input: Review: dull\nReally.\nAnswer: negative\n\n\
             Input: Review: loved it\nAnswer:"
        );
    }

    #[test]
    fn a_lone_question_has_no_preamble_and_ends_with_the_answer_label() {
        assert_eq!(
            render(&[msg(Role::User, "Name a colour.")]),
            "Input: Name a colour.\nAnswer:"
        );
        assert_eq!(render(&[]), "Answer:");
        assert_eq!(
            render(&[msg(Role::System, "Be brief.")]),
            "Be brief.\n\nAnswer:"
        );
    }

    #[test]
    fn consecutive_inputs_join_and_developer_messages_join_the_preamble() {
        let messages = [
            msg(Role::Developer, "Rule one."),
            msg(Role::User, "first"),
            msg(Role::System, "Rule two."),
            msg(Role::User, "second"),
        ];
        assert_eq!(
            render(&messages),
            "Rule one.\n\nRule two.\n\nInput: first\nsecond\nAnswer:"
        );
    }

    #[test]
    fn example_answers_lose_their_blank_lines_and_a_final_answer_stays_open() {
        let messages = [
            msg(Role::User, "Steps?"),
            msg(Role::Assistant, "one\n\n\ntwo"),
            msg(Role::User, "Again?"),
            msg(Role::Assistant, "three"),
        ];
        assert_eq!(
            render(&messages),
            "Input: Steps?\nAnswer: one\ntwo\n\nInput: Again?\nAnswer: three"
        );
    }
}
