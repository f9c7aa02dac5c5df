//! From chat messages to the prompt text a model was trained on: the model's own chat template
//! from its GGUF metadata (llama.cpp's `llama_chat_apply_template`), ChatML when the model has
//! none or llama.cpp does not recognise it, and plain completion for base models.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use crate::types::{ChatMessage, Role};
use crate::{BackendError, Result};

/// How messages become a prompt.
#[derive(Debug, Clone)]
pub enum PromptFormat {
    /// A chat template llama.cpp recognises (from the model or from config).
    Template(String),
    /// ChatML, the fallback for chat models without a usable template.
    ChatMl,
    /// Base models: the messages' text joined, no roles.
    Completion,
}

impl PromptFormat {
    /// Pick the format for a model: a configured template, else the model's own, else ChatML.
    pub fn for_model(
        model: &LlamaModel,
        configured: Option<&str>,
        completion_mode: bool,
    ) -> PromptFormat {
        if completion_mode {
            return PromptFormat::Completion;
        }
        let template = match configured {
            Some(t) => Some(t.to_string()),
            None => model
                .chat_template(None)
                .ok()
                .and_then(|t| t.to_string().ok()),
        };
        match template {
            Some(t) if template_is_usable(model, &t) => PromptFormat::Template(t),
            _ => PromptFormat::ChatMl,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PromptFormat::Template(_) => "model chat template",
            PromptFormat::ChatMl => "ChatML (fallback)",
            PromptFormat::Completion => "plain completion",
        }
    }

    /// Render the conversation, ending where the assistant's answer begins.
    pub fn render(&self, model: &LlamaModel, messages: &[ChatMessage]) -> Result<String> {
        match self {
            PromptFormat::Completion => Ok(messages
                .iter()
                .map(ChatMessage::text)
                .collect::<Vec<_>>()
                .join("\n\n")),
            PromptFormat::ChatMl => Ok(render_chatml(messages)),
            PromptFormat::Template(template) => {
                let tmpl = LlamaChatTemplate::new(template)
                    .map_err(|e| BackendError::InvalidRequest(format!("chat template: {e}")))?;
                let chat = messages
                    .iter()
                    .map(|m| {
                        let role = match m.role {
                            Role::Developer => "system",
                            other => other.as_str(),
                        };
                        LlamaChatMessage::new(role.to_string(), m.text()).map_err(|e| {
                            BackendError::InvalidRequest(format!("message text: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                model
                    .apply_chat_template(&tmpl, &chat, true)
                    .map_err(|e| BackendError::Engine(format!("applying chat template: {e}")))
            }
        }
    }
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

fn render_chatml(messages: &[ChatMessage]) -> String {
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
    out.push_str("<|im_start|>assistant\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_ends_with_open_assistant_turn() {
        let msgs = vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Hi"),
        ];
        assert_eq!(
            render_chatml(&msgs),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
