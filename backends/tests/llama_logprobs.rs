//! `logprobs` / `top_logprobs` on local answers, with the real SmolLM2-135M-Instruct: OpenAI's
//! shape, numbers that are log-probabilities, the same tokens whole and streamed, and tokens held
//! back by a stop-string prefix reported with the text that releases them.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use backends::llama::{LlamaEngine, LlamaEngineConfig};
use backends::{
    content_of, Backend, BackendError, ChatEvent, ChatRequest, StopSequences, TokenLogprob,
};
use futures::StreamExt;

fn engine() -> LlamaEngine {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make setup`",
        path.display()
    );
    let mut config = LlamaEngineConfig::new(path);
    config.slots = 2;
    config.context_per_slot = 1024;
    LlamaEngine::load(config).expect("SmolLM2 loads")
}

fn asking(prompt: &str, top: u32, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        logprobs: Some(true),
        top_logprobs: Some(top),
        ..ChatRequest::user("local", prompt)
    }
}

fn check_entry(t: &TokenLogprob, top: usize) {
    assert!(t.logprob <= 0.0 && t.logprob.is_finite(), "{t:?}");
    assert_eq!(t.bytes.as_deref(), Some(t.token.as_bytes()), "{t:?}");
    assert_eq!(t.top_logprobs.len(), top, "{t:?}");
    assert!(
        t.top_logprobs
            .windows(2)
            .all(|w| w[0].logprob >= w[1].logprob),
        "top_logprobs sorted: {t:?}"
    );
    let mass: f32 = t.top_logprobs.iter().map(|a| a.logprob.exp()).sum();
    assert!(mass <= 1.0 + 1e-4, "{mass}");
    if top > 0 {
        // Greedy without a grammar: the chosen token is the most likely one.
        assert_eq!(t.top_logprobs[0].token, t.token, "{t:?}");
        assert!(
            (t.top_logprobs[0].logprob - t.logprob).abs() < 1e-5,
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn whole_and_streamed_answers_carry_openai_logprobs() {
    let engine = engine();
    let request = asking("Name three fruits.", 5, 16);
    let whole = engine.chat(request.clone()).await.unwrap();
    let object = whole.choices[0]
        .logprobs
        .clone()
        .expect("a logprobs object");
    assert!(object["refusal"].is_null());
    let tokens = content_of(&object);
    let usage = whole.usage.clone().unwrap();
    assert_eq!(tokens.len(), usage.completion_tokens as usize);
    for t in &tokens {
        check_entry(t, 5);
    }
    let text: String = tokens.iter().map(|t| t.token.as_str()).collect();
    assert_eq!(text, whole.text());
    let numbers: Vec<f32> = tokens.iter().map(|t| t.logprob).collect();
    assert_eq!(whole.token_logprobs, numbers);

    // Streamed: every token's entry arrives with its text, the same entries as the whole answer.
    let mut stream = engine.chat_stream(request).await.unwrap();
    let mut streamed = Vec::new();
    while let Some(event) = stream.next().await {
        if let ChatEvent::Token { text, logprobs, .. } = event.unwrap() {
            let covered: String = logprobs.iter().map(|t| t.token.as_str()).collect();
            assert_eq!(covered, text);
            streamed.extend(logprobs);
        }
    }
    assert_eq!(streamed, tokens);
}

#[tokio::test]
async fn tokens_held_back_by_a_stop_prefix_come_with_the_text_they_release() {
    let engine = engine();
    let mut free = asking("Name three fruits and say why you like them.", 0, 24);
    let first = engine.chat(free.clone()).await.unwrap();
    let answer = first.text().to_string();
    // A stop string from the middle of the answer: its first characters are held back as they
    // arrive, until the whole of it ends the answer (the stop string itself never shows).
    let chars: Vec<char> = answer.chars().collect();
    assert!(chars.len() > 12, "{answer}");
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 4].iter().collect();
    let expected = &answer[..answer.find(&stop).unwrap()];
    free.stop = Some(StopSequences::One(stop.clone()));
    let mut stream = engine.chat_stream(free).await.unwrap();
    let (mut text, mut entries) = (String::new(), Vec::new());
    while let Some(event) = stream.next().await {
        if let ChatEvent::Token {
            text: t, logprobs, ..
        } = event.unwrap()
        {
            assert!(!logprobs.is_empty(), "text {t:?} came without its tokens");
            text.push_str(&t);
            entries.extend(logprobs);
        }
    }
    assert_eq!(text, expected);
    let covered: String = entries
        .iter()
        .map(|t: &TokenLogprob| t.token.as_str())
        .collect();
    assert!(covered.starts_with(&text), "{covered:?} vs {text:?}");
    for t in &entries {
        check_entry(t, 0);
    }
}

#[tokio::test]
async fn top_logprobs_is_checked() {
    let engine = engine();
    let err = engine.chat(asking("hi", 21, 4)).await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(ref m) if m.contains("between 0 and 20")));
    let mut without = asking("hi", 2, 4);
    without.logprobs = None;
    let err = engine.chat(without).await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(ref m) if m.contains("logprobs: true")));
    // Not asked: the engine still knows the numbers (cascades read them) with no alternatives.
    let plain = engine
        .chat(ChatRequest {
            max_tokens: Some(4),
            temperature: Some(0.0),
            ..ChatRequest::user("local", "hi")
        })
        .await
        .unwrap();
    let generated = plain.usage.clone().unwrap().completion_tokens as usize;
    assert_eq!(plain.token_logprobs.len(), generated);
    assert!(generated > 0);
}
