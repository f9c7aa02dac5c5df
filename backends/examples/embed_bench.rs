//! Throughput and latency of the local embedding engine (all-MiniLM-L6-v2), for BENCHMARKS.md:
//! sentences/s with one sentence per request (sequential), 32 per request, and 32 concurrent
//! one-sentence requests (which the engine packs into shared passes); p50/p99 of one sentence
//! alone. Rounds interleave the three ways so load from other processes hits them alike.
//!
//!     cargo run --release --example embed_bench -- [MODEL] [ROUNDS] [THREADS]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use backends::embed::{EmbeddingEngine, EmbeddingEngineConfig};

const SUBJECTS: [&str; 8] = [
    "The invoice",
    "My order",
    "The weather",
    "This movie",
    "Our meeting",
    "The new phone",
    "A small model",
    "The train",
];
const PREDICATES: [&str; 8] = [
    "arrived two days later than promised",
    "was better than anything I have seen this year",
    "needs to be moved to Thursday afternoon",
    "keeps crashing whenever I open the camera app",
    "answers most support questions without help",
    "is cold and rainy again in the north",
    "cost far more than the quote we were given",
    "left the station on time for once",
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "models/all-MiniLM-L6-v2.gguf".into());
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let threads: i32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);
    let mut config = EmbeddingEngineConfig::new(&model);
    config.threads = threads;
    let engine = EmbeddingEngine::load(config).unwrap();
    let sentences: Vec<String> = (0..64)
        .map(|i| format!("{} {}.", SUBJECTS[i % 8], PREDICATES[(i / 8 + i) % 8]))
        .collect();
    let tokens: usize = sentences.iter().map(|s| engine.tokenize(s).len()).sum();
    println!(
        "model {model}, {threads} threads, {} sentences of {:.1} tokens on average, {rounds} rounds",
        sentences.len(),
        tokens as f64 / sentences.len() as f64
    );
    // Warm-up.
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    engine.embed(&refs[..32]).await.unwrap();

    let (mut one, mut batch, mut concurrent, mut latencies) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let part = &refs[(round % 2) * 32..(round % 2) * 32 + 32];
        let started = Instant::now();
        for s in part {
            let t = Instant::now();
            engine.embed(&[s]).await.unwrap();
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
        one.push(32.0 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        engine.embed(part).await.unwrap();
        batch.push(32.0 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let tasks: Vec<_> = part
            .iter()
            .map(|s| {
                let engine = engine.clone();
                let s = s.to_string();
                tokio::spawn(async move { engine.embed(&[s.as_str()]).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        concurrent.push(32.0 / started.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let (b1, b32, c32) = (median(one), median(batch), median(concurrent));
    println!("sentences/s, batch 1 (sequential requests): {b1:.0}");
    println!(
        "sentences/s, batch 32 (one request):        {b32:.0}  ({:.1}x batch 1)",
        b32 / b1
    );
    println!(
        "sentences/s, 32 concurrent requests:        {c32:.0}  ({:.1}x batch 1)",
        c32 / b1
    );
    println!(
        "one sentence alone: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
}
