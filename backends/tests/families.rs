//! Every named SLM family loads, generates and applies its own chat template.
//!
//! `tests/data/tiny_families.py` writes a tiny GGUF per family (LLaMA 3, Phi-3, Mixtral,
//! Gemma 2, Gemma 3, OpenELM, Qwen2) with random weights but the family's real architecture
//! metadata and tensor layout, tokenizer kind and publisher's chat template. For each one the
//! engine loads the file, runs four concurrent greedy sequences of 8 tokens, each equal to the
//! same prompt run alone (batch invariance), and renders a fixed conversation to exactly the text
//! the publisher's template gives (written out by hand below; the template's leading
//! `bos_token` is the tokenizer's BOS, which llama.cpp adds when tokenizing, not template text).
//!
//! The generator needs python3 with the `gguf` package (`make setup` installs it); without it
//! the tests print a loud SKIPPED line and pass.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use backends::llama::{LlamaEngine, LlamaEngineConfig, PromptFormat};
use backends::{Backend, ChatMessage, ChatRequest, FinishReason, Role};

/// A temporary directory removed on drop (also when a test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "triage-families-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn generator() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_families.py")
}

/// Write the family's tiny GGUF into `dir`; `None` (after a loud message) when python3 or its
/// `gguf` package is missing.
fn tiny_model(dir: &Path, family: &str) -> Option<PathBuf> {
    let probe = Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .output();
    if !matches!(&probe, Ok(out) if out.status.success()) {
        eprintln!(
            "\n*** SKIPPED {family}: python3 with the `gguf` and `numpy` packages is needed to \
             write the tiny models (run `make setup`) ***\n"
        );
        return None;
    }
    let out = Command::new("python3")
        .arg(generator())
        .arg(dir)
        .arg(family)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tiny_families.py {family} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("{family}.gguf"));
    assert!(path.is_file(), "{} was not written", path.display());
    Some(path)
}

fn engine(path: PathBuf) -> LlamaEngine {
    let mut config = LlamaEngineConfig::new(path);
    config.slots = 4;
    config.context_per_slot = 256;
    config.queue_capacity = 16;
    LlamaEngine::load(config).expect("the tiny model loads")
}

fn greedy(prompt: &str) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(8),
        temperature: Some(0.0),
        ..ChatRequest::user("local", prompt)
    }
}

const PROMPTS: [&str; 4] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three colours.",
    "Explain what a CPU does in one sentence.",
];

/// Four greedy sequences of 8 tokens, alone and then concurrently: the same text.
async fn assert_batch_invariant(engine: &LlamaEngine, family: &str) {
    let mut alone = Vec::new();
    for p in PROMPTS {
        let response = engine.chat(greedy(p)).await.unwrap();
        assert_eq!(
            response.finish_reason(),
            Some(&FinishReason::Length),
            "{family}: a sequence ended before 8 tokens"
        );
        assert_eq!(response.usage.clone().unwrap().completion_tokens, 8);
        alone.push(response.text().to_string());
    }
    assert!(
        alone.iter().all(|t| !t.is_empty()),
        "{family}: empty output {alone:?}"
    );
    let together = futures::future::join_all(PROMPTS.iter().map(|p| engine.chat(greedy(p))))
        .await
        .into_iter()
        .map(|r| r.unwrap().text().to_string())
        .collect::<Vec<_>>();
    assert_eq!(together, alone, "{family}: batching changed greedy output");
}

/// A conversation with a system prompt, for templates that take one.
fn with_system() -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new(
        Role::System,
        "You are a helpful assistant",
    )];
    messages.extend(without_system());
    messages
}

/// The same conversation without it, for templates that reject or drop system messages.
fn without_system() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(Role::User, "Hello"),
        ChatMessage::new(Role::Assistant, "Hi there"),
        ChatMessage::new(Role::User, "Who are you"),
    ]
}

fn conversation(messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        messages,
        ..ChatRequest::user("local", "unused")
    }
}

/// The model's own template renders `messages` to `expected`, and the prompt's tokens start with
/// the BOS token exactly once when the model adds one (`bos`).
fn assert_template(engine: &LlamaEngine, messages: Vec<ChatMessage>, expected: &str, bos: bool) {
    assert!(
        matches!(engine.prompt_format(), PromptFormat::Template(_)),
        "the model's own template is used, not {}",
        engine.prompt_format().name()
    );
    let request = conversation(messages);
    assert_eq!(engine.render_prompt(&request).unwrap(), expected);
    let tokens = engine.prompt_tokens(&request).unwrap();
    let bos_tokens = engine.tokenize("");
    if bos {
        assert_eq!(bos_tokens.len(), 1, "the model adds a BOS token");
        assert_eq!(tokens[0], bos_tokens[0], "the prompt starts with BOS");
        assert_ne!(tokens[1], bos_tokens[0], "BOS is added once");
    } else {
        assert!(bos_tokens.is_empty(), "the model adds no BOS token");
    }
}

async fn family(name: &str, check_template: impl FnOnce(&LlamaEngine)) {
    let dir = TempDir::new(name);
    let Some(path) = tiny_model(&dir.0, name) else {
        return;
    };
    let engine = engine(path);
    check_template(&engine);
    assert_batch_invariant(&engine, name).await;
}

#[tokio::test]
async fn llama3_gqa_with_rope_scaling() {
    family("llama3", |engine| {
        assert_eq!(engine.model_info().architecture, "llama");
        assert_template(
            engine,
            with_system(),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n",
            true,
        );
    })
    .await;
}

#[tokio::test]
async fn phi3_fused_qkv() {
    family("phi3", |engine| {
        assert_eq!(engine.model_info().architecture, "phi3");
        assert_template(
            engine,
            without_system(),
            "<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n\
             <|user|>\nWho are you<|end|>\n<|assistant|>\n",
            true,
        );
    })
    .await;
}

#[tokio::test]
async fn mixtral_mixture_of_experts() {
    family("mixtral", |engine| {
        assert_eq!(engine.model_info().architecture, "llama");
        assert_template(
            engine,
            without_system(),
            "[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]",
            true,
        );
    })
    .await;
}

#[tokio::test]
async fn gemma2_soft_capping_and_post_norms() {
    family("gemma2", |engine| {
        assert_eq!(engine.model_info().architecture, "gemma2");
        assert_template(
            engine,
            without_system(),
            "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n\
             <start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\n",
            true,
        );
    })
    .await;
}

#[tokio::test]
async fn gemma3_sliding_window_and_qk_norms() {
    family("gemma3", |engine| {
        assert_eq!(engine.model_info().architecture, "gemma3");
        // Gemma 3's template puts the system prompt at the start of the first user turn.
        assert_template(
            engine,
            with_system(),
            "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n\
             <start_of_turn>model\nHi there<end_of_turn>\n\
             <start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\n",
            true,
        );
    })
    .await;
}

#[tokio::test]
async fn openelm_per_layer_heads() {
    family("openelm", |engine| {
        assert_eq!(engine.model_info().architecture, "openelm");
        // Apple ships OpenELM without a chat template: the engine treats it as a base model and
        // writes completion text.
        assert!(
            matches!(engine.prompt_format(), PromptFormat::Completion),
            "OpenELM renders as completion text, not {}",
            engine.prompt_format().name()
        );
        let request = conversation(with_system());
        assert_eq!(
            engine.render_prompt(&request).unwrap(),
            "You are a helpful assistant\n\nInput: Hello\nAnswer: Hi there\n\n\
             Input: Who are you\nAnswer:"
        );
    })
    .await;
}

#[tokio::test]
async fn qwen2_qkv_bias() {
    family("qwen2", |engine| {
        assert_eq!(engine.model_info().architecture, "qwen2");
        assert_template(
            engine,
            with_system(),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n\
             <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n\
             <|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n",
            false,
        );
    })
    .await;
}
