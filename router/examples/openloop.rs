//! An open-loop HTTP load generator for the gateway overhead benchmark.
//!
//! Requests are *scheduled* at a fixed rate, independent of responses (open loop), and each
//! latency is measured from its scheduled send time, so a stalled server cannot hide its stall
//! by slowing the client down (no coordinated omission). Prints one JSON line:
//! `{"label","rate","sent","warmup","ok","errors","p50_ms","p90_ms","p99_ms","p999_ms","max_ms",
//! "achieved_rps","stages_us"}` — `warmup` requests were sent before the measured ones (a
//! gateway's ledger has a row for them too); `stages_us` is the mean of each stage a triage
//! gateway reported in its `Server-Timing` header (empty for other targets).
//!
//! `cargo run --release -p router --example openloop -- URL RATE SECONDS BODY_FILE [LABEL]`
//!
//! Hand-written rather than `oha`: the benchmark alternates three targets in short interleaved
//! rounds and needs raw per-round percentiles from one process with identical client settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Requests sent before the measured ones, to open connections.
const WARMUP: u64 = 4;

/// The `Server-Timing` header's `name;dur=MS` entries.
fn server_timing(headers: &reqwest::header::HeaderMap) -> Vec<(String, f64)> {
    let Some(value) = headers.get("server-timing").and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    value
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.trim().split(';');
            let name = parts.next()?.trim().to_string();
            let dur = parts.find_map(|p| p.trim().strip_prefix("dur="))?;
            Some((name, dur.parse().ok()?))
        })
        .collect()
}

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
    let (tx, mut rx) = mpsc::unbounded_channel::<(Option<f64>, Vec<(String, f64)>)>();
    // Warm the connection pool a little so the first requests do not all pay a connect.
    for _ in 0..WARMUP {
        let _ = client
            .post(&url)
            .body(body.clone())
            .header("content-type", "application/json")
            .send()
            .await;
    }
    // The schedule is kept by a thread of its own with the OS's high-resolution sleep: tokio's
    // timer wheel has 1 ms granularity, which at light load would add up to 1 ms of the
    // client's own lateness to every latency (measured from the scheduled time).
    let start = Instant::now() + Duration::from_millis(20);
    let (due_tx, mut due_rx) = mpsc::unbounded_channel::<Instant>();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let scheduled = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            if due_tx.send(scheduled).is_err() {
                break;
            }
        }
    });
    while let Some(scheduled) = due_rx.recv().await {
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
            let (ok, stages) = match result {
                Ok(r) if r.status().is_success() => {
                    let stages = server_timing(r.headers());
                    (r.bytes().await.is_ok(), stages)
                }
                _ => (false, Vec::new()),
            };
            let latency = scheduled.elapsed().as_secs_f64() * 1e3;
            let _ = tx.send((ok.then_some(latency), stages));
        });
    }
    pacer.join().unwrap();
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    let mut stage_sums: std::collections::BTreeMap<String, (f64, u64)> = Default::default();
    while let Some((r, stages)) = rx.recv().await {
        match r {
            Some(l) => latencies.push(l),
            None => errors += 1,
        }
        for (name, ms) in stages {
            let e = stage_sums.entry(name).or_default();
            e.0 += ms;
            e.1 += 1;
        }
    }
    let stages_us: serde_json::Map<String, serde_json::Value> = stage_sums
        .into_iter()
        .map(|(k, (sum, n))| (k, serde_json::json!(sum / n as f64 * 1e3)))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let out = serde_json::json!({
        "label": label,
        "rate": rate,
        "sent": total,
        "warmup": WARMUP,
        "ok": latencies.len(),
        "errors": errors,
        "p50_ms": percentile(&latencies, 0.50),
        "p90_ms": percentile(&latencies, 0.90),
        "p99_ms": percentile(&latencies, 0.99),
        "p999_ms": percentile(&latencies, 0.999),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "achieved_rps": latencies.len() as f64 / elapsed,
        "stages_us": stages_us,
    });
    println!("{out}");
}
