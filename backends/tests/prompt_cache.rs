//! The engine's prompt cache on the real SmolLM2-135M-Instruct model (fetched by `make setup`):
//! a request reuses the KV cells of the prefix it shares with an earlier one, reports how many
//! prompt tokens that saved, and answers exactly as a fresh engine does — after generation,
//! scoring, a context filled to its end, and cancellation.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use backends::llama::{LlamaEngine, LlamaEngineConfig};
use backends::{
    Backend, BackendError, ChatEvent, ChatMessage, ChatRequest, ChatResponse, FinishReason, Role,
};
use futures::StreamExt;

fn smollm2() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh) first",
        path.display()
    );
    path
}

fn engine(slots: usize, prompt_cache: bool, score_lanes: usize) -> LlamaEngine {
    engine_with_context(slots, prompt_cache, score_lanes, 1024)
}

fn engine_with_context(
    slots: usize,
    prompt_cache: bool,
    score_lanes: usize,
    context: u32,
) -> LlamaEngine {
    let mut config = LlamaEngineConfig::new(smollm2());
    config.slots = slots;
    config.queue_capacity = 16;
    config.context_per_slot = context;
    config.prompt_cache = prompt_cache;
    config.score_lanes = score_lanes;
    LlamaEngine::load(config).expect("SmolLM2 loads")
}

/// A long system prompt, as scenarios have: instructions, a label list, examples.
const SYSTEM: &str = "You are the support assistant of a bank. Read the customer's message \
    carefully and answer briefly and politely. Never ask for a PIN or a password. If the \
    customer reports a lost or stolen card, tell them to block it in the app at once. If a \
    transfer has not arrived, explain that transfers can take up to three working days. If a \
    card payment was declined, suggest checking the balance and the card's limits. Known \
    topics: card_arrival, lost_or_stolen_card, exchange_rate, top_up_failed, pin_blocked, \
    transfer_not_received_by_recipient, cash_withdrawal_charge, change_pin, \
    refund_not_showing_up, declined_card_payment. Example: 'Where is my card?' is about \
    card_arrival. Example: 'My PIN is blocked' is about pin_blocked.";

const QUESTIONS: [&str; 4] = [
    "My card was stolen yesterday, what do I do?",
    "Why was my payment at the supermarket declined?",
    "The money I sent to my friend never arrived.",
    "How much do you charge for taking cash out abroad?",
];

fn with_system(system: &str, question: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, system),
            ChatMessage::new(Role::User, question),
        ],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::user("local", question)
    }
}

fn cached(response: &ChatResponse) -> u32 {
    response
        .usage
        .as_ref()
        .and_then(|u| u.cached_tokens())
        .expect("the engine reports cached tokens when the prompt cache is on")
}

/// Tokens two requests' prompts share from the start.
fn shared_prefix(engine: &LlamaEngine, a: &ChatRequest, b: &ChatRequest) -> usize {
    let (a, b) = (
        engine.prompt_tokens(a).unwrap(),
        engine.prompt_tokens(b).unwrap(),
    );
    a.iter().zip(&b).take_while(|(x, y)| x == y).count()
}

#[tokio::test]
async fn a_shared_system_prompt_is_evaluated_once_and_reported_as_cached() {
    let engine = engine(1, true, 0);
    let first = with_system(SYSTEM, QUESTIONS[0], 8);
    let second = with_system(SYSTEM, QUESTIONS[1], 8);
    let a = engine.chat(first.clone()).await.unwrap();
    assert_eq!(cached(&a), 0, "nothing was cached before the first request");
    let b = engine.chat(second.clone()).await.unwrap();
    let shared = shared_prefix(&engine, &first, &second);
    assert!(shared > 150, "the system prompt is long ({shared} tokens)");
    assert_eq!(cached(&b) as usize, shared);
    // Usage still counts the whole prompt.
    let usage = b.usage.clone().unwrap();
    assert_eq!(
        usage.prompt_tokens as usize,
        engine.count_tokens(&second).unwrap()
    );
    assert!(b.timings.engine_busy_secs > 0.0);
    // The same request again reuses everything but its last prompt token, whose logits row the
    // answer starts from.
    let again = engine.chat(second.clone()).await.unwrap();
    assert_eq!(cached(&again), usage.prompt_tokens - 1);
    assert_eq!(again.text(), b.text());
}

#[tokio::test]
async fn a_request_goes_to_the_slot_holding_its_prefix() {
    let engine = engine(2, true, 0);
    let other_system = "You are a poet. Answer every question with a short rhyme about the sea, \
        the wind and the gulls, whatever the question is about.";
    let a = with_system(SYSTEM, QUESTIONS[0], 4);
    let b = with_system(other_system, QUESTIONS[1], 4);
    let c = with_system(SYSTEM, QUESTIONS[2], 4);
    engine.chat(a.clone()).await.unwrap();
    // `b` shares little with `a`, so it takes the other (never used) slot and `a`'s cells stay.
    let b_response = engine.chat(b.clone()).await.unwrap();
    assert_eq!(
        cached(&b_response),
        0,
        "b went to the unused slot, not over a's cells"
    );
    let c_response = engine.chat(c.clone()).await.unwrap();
    let with_a = shared_prefix(&engine, &a, &c);
    assert!(with_a > shared_prefix(&engine, &b, &c) + 100);
    assert_eq!(cached(&c_response) as usize, with_a);
}

#[tokio::test]
async fn greedy_answers_are_the_same_with_and_without_the_cache() {
    let fresh = engine(2, false, 0);
    let cached_engine = engine(2, true, 0);
    let requests: Vec<ChatRequest> = QUESTIONS
        .iter()
        .map(|q| with_system(SYSTEM, q, 24))
        .chain([
            with_system("Answer in one short sentence.", "What is the capital of France?", 16),
            with_system("Answer in one short sentence.", "What does a CPU do?", 16),
        ])
        .collect();
    let mut expected = Vec::new();
    for request in &requests {
        let response = fresh.chat(request.clone()).await.unwrap();
        assert!(response.usage.as_ref().unwrap().cached_tokens().is_none());
        expected.push(response);
    }
    // Sequentially (each after a prefix-sharing one), then again all at once.
    let mut reused = 0;
    for (request, want) in requests.iter().zip(&expected) {
        let got = cached_engine.chat(request.clone()).await.unwrap();
        reused += cached(&got);
        assert_same_answer(&got, want);
    }
    assert!(reused > 0);
    let together =
        futures::future::join_all(requests.iter().map(|r| cached_engine.chat(r.clone()))).await;
    for (got, want) in together.into_iter().zip(&expected) {
        let got = got.unwrap();
        assert!(cached(&got) > 0);
        assert_same_answer(&got, want);
    }
}

fn assert_same_answer(got: &ChatResponse, want: &ChatResponse) {
    assert_eq!(got.text(), want.text(), "cached and fresh answers differ");
    assert_eq!(got.finish_reason(), want.finish_reason());
    assert_eq!(got.token_logprobs.len(), want.token_logprobs.len());
    for (g, w) in got.token_logprobs.iter().zip(&want.token_logprobs) {
        assert!((g - w).abs() < 1e-4, "log-probability {g} cached vs {w} fresh");
    }
}

const INTENTS: [&str; 4] = [
    "card_arrival",
    "lost_or_stolen_card",
    "transfer_not_received_by_recipient",
    "declined_card_payment",
];

fn intent_request(message: &str) -> ChatRequest {
    ChatRequest {
        choices: Some(INTENTS.iter().map(|s| s.to_string()).collect()),
        ..with_system(
            SYSTEM,
            &format!("Which intent does this message have?\nMessage: {message}\nIntent:"),
            12,
        )
    }
}

fn choice_probs(response: &ChatResponse) -> Vec<(String, f64)> {
    response
        .signals
        .as_ref()
        .and_then(|s| s.choice_probs.clone())
        .unwrap()
}

/// Scored `choices` read the prompt's last logits row and copy the slot's cells into lanes: both
/// must be the same whether the prompt's prefix came from the cache or not.
async fn scoring_is_unchanged_by_the_cache(score_lanes: usize) {
    let fresh = engine(1, false, score_lanes);
    let cached_engine = engine(1, true, score_lanes);
    for message in QUESTIONS {
        let want = fresh.chat(intent_request(message)).await.unwrap();
        let got = cached_engine.chat(intent_request(message)).await.unwrap();
        assert_eq!(got.text(), want.text(), "{message}");
        for ((cg, pg), (cw, pw)) in choice_probs(&got).iter().zip(&choice_probs(&want)) {
            assert_eq!(cg, cw);
            assert!(
                (pg - pw).abs() < 1e-4,
                "{message}: p({cg}) {pg} cached vs {pw} fresh (lanes {score_lanes})"
            );
        }
        assert_eq!(
            got.usage.as_ref().map(|u| u.completion_tokens),
            want.usage.as_ref().map(|u| u.completion_tokens)
        );
    }
    // Every request after the first found the system prompt in the slot.
    let last = cached_engine
        .chat(intent_request(QUESTIONS[0]))
        .await
        .unwrap();
    assert!(cached(&last) > 150);
}

#[tokio::test]
async fn choice_probabilities_are_the_same_with_and_without_the_cache() {
    scoring_is_unchanged_by_the_cache(0).await;
}

#[tokio::test]
async fn choice_probabilities_in_scoring_lanes_are_the_same_with_and_without_the_cache() {
    scoring_is_unchanged_by_the_cache(8).await;
}

#[tokio::test]
async fn a_request_after_one_that_filled_its_context_window_is_answered_correctly() {
    let context = 320;
    let fresh = engine_with_context(1, false, 0, context);
    let cached_engine = engine_with_context(1, true, 0, context);
    // No `max_tokens`: the answer runs until the slot's context is full.
    let filler = ChatRequest {
        max_tokens: None,
        ..with_system(
            SYSTEM,
            "Write a very long story about a bank card that travels around the world.",
            1,
        )
    };
    let filled = cached_engine.chat(filler).await.unwrap();
    if filled.finish_reason() == Some(&FinishReason::Length) {
        let usage = filled.usage.as_ref().unwrap();
        assert_eq!(usage.prompt_tokens + usage.completion_tokens, context);
    }
    for question in QUESTIONS {
        let request = with_system(SYSTEM, question, 24);
        let want = fresh.chat(request.clone()).await.unwrap();
        let got = cached_engine.chat(request).await.unwrap();
        assert!(cached(&got) > 150);
        assert_same_answer(&got, &want);
    }
    // A prompt longer than the window is still refused before it is queued.
    let too_long = with_system(&SYSTEM.repeat(3), QUESTIONS[0], 4);
    match cached_engine.chat(too_long).await {
        Err(BackendError::PromptTooLong { context_tokens, .. }) => {
            assert_eq!(context_tokens, context as usize)
        }
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
}

/// Read a stream until `tokens` tokens arrived, then drop it (the client went away).
async fn cancel_after(engine: &LlamaEngine, request: &ChatRequest, tokens: usize) {
    let mut stream = engine.chat_stream(request.clone()).await.unwrap();
    let mut seen = 0;
    while seen < tokens {
        match stream.next().await {
            Some(Ok(ChatEvent::Token { .. })) => seen += 1,
            Some(Ok(_)) => {}
            other => panic!("expected tokens, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn cancelled_requests_leave_cells_the_next_request_can_trust() {
    let fresh = engine(1, false, 0);
    let cached_engine = engine(1, true, 0);
    let long = with_system(SYSTEM, "Tell me everything about bank cards.", 200);
    for question in QUESTIONS {
        // A generating request cancelled mid-answer, and a scored one cancelled as soon as it
        // was admitted (its variants may be in the slot's own sequence when it is dropped).
        cancel_after(&cached_engine, &long, 5).await;
        let request = with_system(SYSTEM, question, 24);
        let want = fresh.chat(request.clone()).await.unwrap();
        let got = cached_engine.chat(request).await.unwrap();
        assert!(cached(&got) > 150);
        assert_same_answer(&got, &want);

        let mut scored = cached_engine
            .chat_stream(intent_request(question))
            .await
            .unwrap();
        let first = scored.next().await;
        assert!(matches!(first, Some(Ok(ChatEvent::FirstByte { .. }))));
        drop(scored);
        let want = fresh.chat(intent_request(question)).await.unwrap();
        let got = cached_engine.chat(intent_request(question)).await.unwrap();
        assert_eq!(got.text(), want.text());
        for ((_, pg), (_, pw)) in choice_probs(&got).iter().zip(&choice_probs(&want)) {
            assert!((pg - pw).abs() < 1e-4, "{question}: {pg} vs {pw}");
        }
    }
}
