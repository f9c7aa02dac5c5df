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
