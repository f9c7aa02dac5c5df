//! An open-loop HTTP load generator for the gateway overhead benchmark.
//!
//! Requests are *scheduled* at a fixed rate, independent of responses (open loop), and each
//! latency is measured from its scheduled send time, so a stalled server cannot hide its stall
//! by slowing the client down (no coordinated omission). Prints one JSON line:
//! `{"label","rate","sent","ok","errors","p50_ms","p90_ms","p99_ms","p999_ms","max_ms","achieved_rps"}`.
//!
//! `cargo run --release -p router --example openloop -- URL RATE SECONDS BODY_FILE [LABEL]`
//!
//! Hand-written rather than `oha`: the benchmark alternates three targets in short interleaved
//! rounds and needs raw per-round percentiles from one process with identical client settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: openloop URL RATE SECONDS BODY_FILE [LABEL]");
        std::process::exit(2);
    }
    let url = args[0].clone();
    let rate: f64 = args[1].parse().expect("RATE is requests per second");
    let seconds: f64 = args[2].parse().expect("SECONDS is a number");
    let body = bytes::Bytes::from(std::fs::read(&args[3]).expect("BODY_FILE readable"));
    let label = args.get(4).cloned().unwrap_or_else(|| url.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let total = (rate * seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<f64>>();
    // Warm the connection pool a little so the first requests do not all pay a connect.
    for _ in 0..4 {
        let _ = client
            .post(&url)
            .body(body.clone())
            .header("content-type", "application/json")
            .send()
            .await;
    }
    let start = Instant::now() + Duration::from_millis(20);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let client = client.clone();
        let url = url.clone();
        let body = body.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let ok = match result {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            let latency = scheduled.elapsed().as_secs_f64() * 1e3;
            let _ = tx.send(ok.then_some(latency));
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    while let Some(r) = rx.recv().await {
        match r {
            Some(l) => latencies.push(l),
            None => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let out = serde_json::json!({
        "label": label,
        "rate": rate,
        "sent": total,
        "ok": latencies.len(),
        "errors": errors,
        "p50_ms": percentile(&latencies, 0.50),
        "p90_ms": percentile(&latencies, 0.90),
        "p99_ms": percentile(&latencies, 0.99),
        "p999_ms": percentile(&latencies, 0.999),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "achieved_rps": latencies.len() as f64 / elapsed,
    });
    println!("{out}");
}
