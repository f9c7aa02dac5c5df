//! From chat messages to the prompt text a model was trained on: the model's own chat template
//! from its GGUF metadata (llama.cpp's `llama_chat_apply_template`); for a base model — no chat
//! template, configured or in the GGUF, under `completion_mode: auto`, or `completion_mode: on` —
//! a few-shot completion text ([`super::completion`]); for a model whose template llama.cpp
//! cannot apply, llama.cpp's built-in template of its family (Gemma's turn markers for `gemma*`
//! architectures), else ChatML.
//!
//! A fallback format's turn markers are also stop strings ([`PromptFormat::turn_stops`]): a
//! model that was never tuned on them may still write them out as text, and an answer ends there.
//! Completion text stops at the blank line that ends an answer block.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use super::completion;
use crate::types::{ChatMessage, Role};
use crate::{BackendError, CompletionMode, Result};

/// A piece of a rendered prompt: the format's own text, or one message's text as it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text the prompt format wrote (turn markers, role names); its control-token texts are
    /// control tokens.
    Template(String),
    /// A message's text: always plain text, whatever it holds.
    Content(String),
}

/// How messages become a prompt.
#[derive(Debug, Clone)]
pub enum PromptFormat {
    /// A chat template llama.cpp recognises (from the model or from config).
    Template(String),
    /// A llama.cpp built-in template chosen by architecture, for models without their own.
    Builtin(&'static str),
    /// ChatML, the fallback for chat models without a usable template.
    ChatMl,
    /// Base models: the system prompt as a preamble, then `Input:`/`Answer:` blocks
    /// ([`completion`]).
    Completion,
}

impl PromptFormat {
    /// Pick the format for a model: completion text when `completion_mode` says so (under `auto`:
    /// when there is no chat template, configured or in the GGUF), else a configured template,
    /// else the model's own, else its family's built-in one, else ChatML.
    pub fn for_model(
        model: &LlamaModel,
        configured: Option<&str>,
        completion_mode: CompletionMode,
    ) -> PromptFormat {
        let template = match configured {
            Some(t) => Some(t.to_string()),
            None => model
                .chat_template(None)
                .ok()
                .and_then(|t| t.to_string().ok()),
        };
        if completion_mode.applies(template.is_some()) {
            return PromptFormat::Completion;
        }
        match template {
            Some(t) if template_is_usable(model, &t) => PromptFormat::Template(t),
            _ => {
                let architecture = model
                    .meta_val_str("general.architecture")
                    .unwrap_or_default();
                match builtin_for_architecture(&architecture) {
                    Some(name) if template_is_usable(model, name) => PromptFormat::Builtin(name),
                    _ => PromptFormat::ChatMl,
                }
            }
        }
    }

    /// Stop strings implied by a fallback format's turn markers, or by the end of a completion
    /// block (none for the model's own template: its end-of-turn token ends generation).
    pub fn turn_stops(&self) -> &'static [&'static str] {
        match self {
            PromptFormat::Builtin("gemma") => &["<end_of_turn>", "<start_of_turn>"],
            PromptFormat::ChatMl => &["<|im_end|>", "<|im_start|>"],
            PromptFormat::Completion => completion::STOPS,
            PromptFormat::Template(_) | PromptFormat::Builtin(_) => &[],
        }
    }

    /// Whether an answer starts at its first non-whitespace character (completion text, where the
    /// model writes a space or a newline after `Answer:`).
    pub fn skips_leading_whitespace(&self) -> bool {
        matches!(self, PromptFormat::Completion)
    }

    /// How this format is described to a person (`triage chat`'s summary line).
    pub fn name(&self) -> &'static str {
        match self {
            PromptFormat::Template(_) => "model chat template",
            PromptFormat::Builtin(_) => "built-in template of its family (fallback)",
            PromptFormat::ChatMl => "ChatML (fallback)",
            PromptFormat::Completion => "completion text (base model)",
        }
    }

    /// Render the conversation, ending where the assistant's answer begins.
    pub fn render(&self, model: &LlamaModel, messages: &[ChatMessage]) -> Result<String> {
        self.render_turns(model, messages, true)
    }

    /// The rendered prompt `rendered` (of `messages`, by [`Self::render`]) in pieces: the format's
    /// own text and each message's text. Found by rendering the conversation once more with every
    /// message's text replaced by a mark, then putting the texts back at the marks; `None` when
    /// that does not give `rendered` back (a template that rewrites message text beyond trimming
    /// it, or reorders messages), so a caller never mistakes message text for the template's.
    pub fn render_pieces(
        &self,
        model: &LlamaModel,
        messages: &[ChatMessage],
        rendered: &str,
    ) -> Result<Option<Vec<Piece>>> {
        let marks: Vec<String> = (0..messages.len())
            .map(|i| format!("\u{E000}{i}\u{E001}"))
            .collect();
        let marked: Vec<ChatMessage> = messages
            .iter()
            .zip(&marks)
            .map(|(m, mark)| ChatMessage::new(m.role, mark.clone()))
            .collect();
        let skeleton = self.render(model, &marked)?;
        let texts: Vec<String> = messages.iter().map(ChatMessage::text).collect();
        Ok(pieces_at_marks(&skeleton, &marks, &texts, rendered))
    }

    /// The text this format writes right after an assistant's answer (its end-of-turn marker
    /// first), found by rendering a closed one-turn conversation; `None` for completion text
    /// (whose answers end with [`completion::ANSWER_END`]) or when the template does not show it.
    pub fn text_after_answer(&self, model: &LlamaModel) -> Option<String> {
        const ANSWER: &str = "TRIAGE_ANSWER_MARK";
        if matches!(self, PromptFormat::Completion) {
            return None;
        }
        let turns = [
            ChatMessage::new(Role::User, "Hi"),
            ChatMessage::new(Role::Assistant, ANSWER),
        ];
        let rendered = self.render_turns(model, &turns, false).ok()?;
        let at = rendered.find(ANSWER)? + ANSWER.len();
        Some(rendered[at..].to_string())
    }

    /// Render the turns, with the assistant's turn opened at the end when `open_answer`.
    fn render_turns(
        &self,
        model: &LlamaModel,
        messages: &[ChatMessage],
        open_answer: bool,
    ) -> Result<String> {
        match self {
            PromptFormat::Completion => Ok(completion::render(messages)),
            PromptFormat::ChatMl => Ok(render_chatml(messages, open_answer)),
            PromptFormat::Template(_) | PromptFormat::Builtin(_) => {
                let template = match self {
                    PromptFormat::Template(t) => t.as_str(),
                    PromptFormat::Builtin(name) => name,
                    _ => "chatml",
                };
                let tmpl = LlamaChatTemplate::new(template)
                    .map_err(|e| BackendError::InvalidRequest(format!("chat template: {e}")))?;
                let chat = messages
                    .iter()
                    .map(|m| {
                        let role = match m.role {
                            Role::Developer => "system",
                            other => other.as_str(),
                        };
                        LlamaChatMessage::new(role.to_string(), m.text())
                            .map_err(|e| BackendError::InvalidRequest(format!("message text: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                model
                    .apply_chat_template(&tmpl, &chat, open_answer)
                    .map_err(|e| BackendError::Engine(format!("applying chat template: {e}")))
            }
        }
    }
}

/// llama.cpp's built-in template for a model family without a template of its own.
fn builtin_for_architecture(architecture: &str) -> Option<&'static str> {
    architecture.starts_with("gemma").then_some("gemma")
}

fn template_is_usable(model: &LlamaModel, template: &str) -> bool {
    let Ok(tmpl) = LlamaChatTemplate::new(template) else {
        return false;
    };
    let Ok(probe) = LlamaChatMessage::new("user".into(), "hi".into()) else {
        return false;
    };
    model.apply_chat_template(&tmpl, &[probe], true).is_ok()
}

/// Put each message's text back at its mark in `skeleton` (as given, or trimmed, as some
/// templates do), if that gives `rendered`.
fn pieces_at_marks(
    skeleton: &str,
    marks: &[String],
    texts: &[String],
    rendered: &str,
) -> Option<Vec<Piece>> {
    [false, true].into_iter().find_map(|trim| {
        let mut pieces = Vec::new();
        let mut rest = skeleton;
        for (mark, text) in marks.iter().zip(texts) {
            // A template may leave a message out; a mark out of order stays in the text and the
            // comparison below fails.
            let Some(at) = rest.find(mark.as_str()) else {
                continue;
            };
            pieces.push(Piece::Template(rest[..at].to_string()));
            let text = if trim { text.trim() } else { text.as_str() };
            pieces.push(Piece::Content(text.to_string()));
            rest = &rest[at + mark.len()..];
        }
        pieces.push(Piece::Template(rest.to_string()));
        let joined: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Template(t) | Piece::Content(t) => t.as_str(),
            })
            .collect();
        (joined == rendered).then_some(pieces)
    })
}

fn render_chatml(messages: &[ChatMessage], open_answer: bool) -> String {
    let mut out = String::new();
    for m in messages {
        let role = match m.role {
            Role::Developer => "system",
            other => other.as_str(),
        };
        out.push_str("<|im_start|>");
        out.push_str(role);
        out.push('\n');
        out.push_str(&m.text());
        out.push_str("<|im_end|>\n");
    }
    if open_answer {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_formats_stop_at_their_turn_markers() {
        assert_eq!(builtin_for_architecture("gemma3"), Some("gemma"));
        assert_eq!(builtin_for_architecture("llama"), None);
        assert!(PromptFormat::Builtin("gemma")
            .turn_stops()
            .contains(&"<end_of_turn>"));
        assert!(PromptFormat::ChatMl.turn_stops().contains(&"<|im_end|>"));
        assert!(PromptFormat::Template("{{x}}".into())
            .turn_stops()
            .is_empty());
        assert!(PromptFormat::Completion.turn_stops().contains(&"\n\n"));
        assert!(PromptFormat::Completion.skips_leading_whitespace());
        assert!(!PromptFormat::ChatMl.skips_leading_whitespace());
    }

    #[test]
    fn message_texts_are_found_at_their_marks() {
        let msgs = vec![
            ChatMessage::new(Role::System, "user"),
            ChatMessage::new(Role::User, " <|im_end|> "),
        ];
        let marks = vec![
            "\u{E000}0\u{E001}".to_string(),
            "\u{E000}1\u{E001}".to_string(),
        ];
        let marked: Vec<ChatMessage> = msgs
            .iter()
            .zip(&marks)
            .map(|(m, mark)| ChatMessage::new(m.role, mark.clone()))
            .collect();
        let skeleton = render_chatml(&marked, true);
        let texts: Vec<String> = msgs.iter().map(ChatMessage::text).collect();
        let pieces = pieces_at_marks(&skeleton, &marks, &texts, &render_chatml(&msgs, true));
        assert_eq!(
            pieces,
            Some(vec![
                Piece::Template("<|im_start|>system\n".into()),
                Piece::Content("user".into()),
                Piece::Template("<|im_end|>\n<|im_start|>user\n".into()),
                Piece::Content(" <|im_end|> ".into()),
                Piece::Template("<|im_end|>\n<|im_start|>assistant\n".into()),
            ])
        );
        // A template that trims message text.
        let trimmed = skeleton.replace(&marks[1], "<|im_end|>");
        let pieces = pieces_at_marks(
            &skeleton,
            &marks,
            &texts,
            &trimmed.replace(&marks[0], "user"),
        );
        assert_eq!(
            pieces.as_ref().map(|p| p[3].clone()),
            Some(Piece::Content("<|im_end|>".into()))
        );
        // One that rewrites it.
        assert_eq!(
            pieces_at_marks(&skeleton, &marks, &texts, "something else"),
            None
        );
        // One that reorders messages.
        let swapped = format!("{}{}", marks[1], marks[0]);
        assert_eq!(
            pieces_at_marks(&swapped, &marks, &texts, " <|im_end|> user"),
            None
        );
    }

    #[test]
    fn chatml_ends_with_open_assistant_turn() {
        let msgs = vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Hi"),
        ];
        assert_eq!(
            render_chatml(&msgs, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
