//! Overload and cancellation on the real SmolLM2-135M-Instruct engine (fetched by `make setup`):
//! the admission queue's bound is the configured one, a request beyond it is `Overloaded` at
//! once, and the queue-depth and busy-slot gauges are exact while requests wait, run and are
//! abandoned — without another request arriving to bring them up to date.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use backends::llama::{LlamaEngine, LlamaEngineConfig, SamplingParams};
use backends::{BackendError, ChatEvent, EventStream};
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

const CONTEXT: u32 = 2048;

fn engine(slots: usize, queue: usize) -> LlamaEngine {
    let mut config = LlamaEngineConfig::new(smollm2());
    config.slots = slots;
    config.queue_capacity = queue;
    config.context_per_slot = CONTEXT;
    LlamaEngine::load(config).expect("SmolLM2 loads")
}

/// A request that keeps its slot far longer than any test step takes: it generates until the
/// context is full, past end-of-generation tokens.
fn long_job(engine: &LlamaEngine) -> backends::Result<EventStream> {
    let tokens = engine.tokenize("Write a very long essay about rivers.");
    let room = CONTEXT - tokens.len() as u32 - 1;
    engine.submit_tokens(tokens, SamplingParams::greedy_exact(room))
}

/// (queue depth, busy slots) right now.
fn gauges(engine: &LlamaEngine) -> (usize, usize) {
    let s = engine.stats();
    (s.queue_depth, s.busy_slots)
}

/// Poll the gauges until they read `want`; a generous bound for a busy machine, since the
/// engine updates them within one decode step.
async fn gauges_become(engine: &LlamaEngine, want: (usize, usize)) -> Duration {
    let started = std::time::Instant::now();
    let limit = Duration::from_secs(10);
    while gauges(engine) != want {
        assert!(
            started.elapsed() < limit,
            "gauges (queue depth, busy slots) stayed at {:?}, expected {want:?}",
            gauges(engine)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Read events until the request holds a slot and has produced a token.
async fn until_decoding(stream: &mut EventStream) {
    let first = stream.next().await;
    assert!(
        matches!(first, Some(Ok(ChatEvent::FirstByte { .. }))),
        "admission to a slot comes first, got {first:?}"
    );
    loop {
        match stream.next().await {
            Some(Ok(ChatEvent::Token { .. })) => return,
            Some(Ok(_)) => {}
            other => panic!("expected tokens, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_queue_bound_counts_waiting_requests_and_gauges_are_exact() {
    let engine = engine(1, 2);
    assert_eq!(gauges(&engine), (0, 0));
    let mut running = long_job(&engine).unwrap();
    until_decoding(&mut running).await;
    assert_eq!(gauges(&engine), (0, 1));

    // Two wait: the bound is 2, and both count however long they wait.
    let second = long_job(&engine).unwrap();
    let mut third = long_job(&engine).unwrap();
    assert_eq!(gauges(&engine), (2, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        gauges(&engine),
        (2, 1),
        "waiting requests never leave the count"
    );

    // The fourth is refused at once.
    match long_job(&engine) {
        Err(BackendError::Overloaded { capacity }) => assert_eq!(capacity, 2),
        Err(other) => panic!("expected Overloaded, got {other}"),
        Ok(_) => panic!("expected Overloaded, got a stream"),
    }
    assert_eq!(gauges(&engine), (2, 1));

    // A waiting request whose client went away stops counting and frees room in the queue.
    drop(second);
    gauges_become(&engine, (1, 1)).await;
    let fourth = long_job(&engine).expect("room after a waiting request was cancelled");
    assert_eq!(gauges(&engine), (2, 1));

    // Cancelling the running request hands its slot to the oldest waiting one.
    drop(running);
    gauges_become(&engine, (1, 1)).await;
    until_decoding(&mut third).await;
    assert_eq!(gauges(&engine), (1, 1));

    drop(third);
    drop(fourth);
    gauges_become(&engine, (0, 0)).await;
}

#[tokio::test]
async fn dropped_streams_return_the_gauges_to_idle_without_another_request() {
    let engine = engine(4, 4);
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(long_job(&engine).unwrap());
    }
    for stream in &mut streams {
        until_decoding(stream).await;
    }
    assert_eq!(gauges(&engine), (0, 4));
    let steps = engine.stats().time.decode_steps;
    drop(streams);
    let took = gauges_become(&engine, (0, 0)).await;
    eprintln!("gauges idle {took:?} after 4 streams were dropped");
    // Idle means idle: no more decode steps once nothing runs.
    let idle_steps = engine.stats().time.decode_steps;
    assert!(idle_steps >= steps);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.stats().time.decode_steps, idle_steps);
    assert_eq!(gauges(&engine), (0, 0));

    // The freed slots serve again.
    let mut again = long_job(&engine).unwrap();
    until_decoding(&mut again).await;
    assert_eq!(gauges(&engine), (0, 1));
}
