//! What `store: redis://…` adds to a request: the admission round trip (one `EVALSHA`: rate
//! limits + 4 budget windows) against the in-process ledger, and a whole in-process chat
//! request through the gateway (mock backend) with each ledger — paired, interleaved rounds in
//! one run, on a private `redis-server` on loopback (needs `redis-server`, see setup.sh).
//!
//! `cargo run --release --locked -p router --example redis_admission -- [rounds] [per_round]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use router::gateway::Locality;
use router::ledger::{budget_periods, now_unix_ms};
use router::reserve::{
    Ask, Claim, Hold, LocalLedger, RateAsk, RateLimit, RedisLedger, ReservationLedger, StoreUrl,
    WindowKey,
};
use router::testing::{RedisServer, TestGateway};

fn claims() -> Vec<Claim> {
    let (day, month) = budget_periods(now_unix_ms());
    let mut out = Vec::new();
    for scope in ["*", "alice"] {
        for period in [&day, &month] {
            out.push(Claim {
                key: WindowKey {
                    scope: scope.into(),
                    period: period.clone(),
                },
                limit: i64::MAX / 4,
            });
        }
    }
    out
}

fn ask(claims: &[Claim]) -> Ask {
    Ask {
        claims: claims.to_vec(),
        amount: 1_000,
        expires: Instant::now() + Duration::from_secs(60),
        rate: Some(RateAsk {
            scope: "alice".into(),
            limit: RateLimit {
                requests_per_minute: Some(u64::MAX / 4),
                tokens_per_minute: Some(u64::MAX / 4),
            },
            tokens: 100,
        }),
    }
}

/// `n` admissions on `ledger`, each settled: the time each admission took.
async fn admissions(ledger: &Arc<dyn ReservationLedger>, claims: &[Claim], n: usize) -> Vec<f64> {
    let keys: Vec<WindowKey> = claims.iter().map(|c| c.key.clone()).collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let a = ask(claims);
        let rate = a.rate.clone();
        let t = Instant::now();
        let id = ledger.reserve(a).await;
        out.push(t.elapsed().as_secs_f64() * 1e3);
        match id {
            Ok(id) => {
                let hold = Hold::new(ledger.clone(), Some(id), keys.clone(), 1_000);
                let hold = match rate {
                    Some(r) => hold.with_tokens(r),
                    None => hold,
                };
                hold.settle(0.0005, 50);
            }
            Err(e) => eprintln!("admission refused: {e}"),
        }
    }
    out
}

/// `n` whole chat requests through `gw`: the time each took.
async fn requests(gw: &TestGateway, n: usize) -> Vec<f64> {
    let body = serde_json::json!({
        "model": "auto", "max_tokens": 5,
        "messages": [{"role": "user", "content": "one two three four five"}],
    });
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        match gw.chat(body.clone(), None).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => eprintln!("request failed: {} {}", r.status, r.body),
            Err(e) => eprintln!("request failed: {e}"),
        }
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, local: &mut [f64], redis: &mut [f64]) {
    local.sort_by(f64::total_cmp);
    redis.sort_by(f64::total_cmp);
    let (l50, l99, r50, r99) = (
        pct(local, 0.5),
        pct(local, 0.99),
        pct(redis, 0.5),
        pct(redis, 0.99),
    );
    println!(
        "{what}: local p50 {l50:.3} ms p99 {l99:.3} ms | redis p50 {r50:.3} ms p99 {r99:.3} ms | added p50 {:.3} ms p99 {:.3} ms | ratio p50 {:.1}x (n = {} each)",
        r50 - l50,
        r99 - l99,
        r50 / l50,
        local.len()
    );
}

fn config(store: Option<&str>) -> String {
    let store = store.map_or(String::new(), |u| format!("store: {u}\n"));
    format!(
        r#"{store}
backends:
  slm: {{ kind: llama, model: models/test.gguf, slots: 2 }}
  llm: {{ kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }}
pricing:
  llm: {{ input: 0.15, output: 0.60 }}
  slm: {{ machine_usd_per_hour: 0.0 }}
budgets: {{ daily_usd: 1000000.0, monthly_usd: 1000000.0 }}
routes:
  - {{ name: default, to: llm }}
"#
    )
}

fn gateway(yaml: &str) -> Result<TestGateway, Box<dyn std::error::Error>> {
    Ok(TestGateway::from_yaml(yaml)
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let per_round: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let server = RedisServer::start()?;
    let url = StoreUrl::parse(&server.url())?;
    let local: Arc<dyn ReservationLedger> = Arc::new(LocalLedger::new());
    let redis: Arc<dyn ReservationLedger> = Arc::new(RedisLedger::new(&url)?);
    let claims = claims();
    // Warm-up: connect, load the scripts.
    admissions(&redis, &claims, 50).await;
    admissions(&local, &claims, 50).await;
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Interleaved, order alternating per round, so drift in the machine's load hits both.
        if round % 2 == 0 {
            l.extend(admissions(&local, &claims, per_round).await);
            r.extend(admissions(&redis, &claims, per_round).await);
        } else {
            r.extend(admissions(&redis, &claims, per_round).await);
            l.extend(admissions(&local, &claims, per_round).await);
        }
    }
    report("admission (4 windows + rate limit)", &mut l, &mut r);

    let gw_local = gateway(&config(None))?;
    let gw_redis = gateway(&config(Some(&server.url())))?;
    requests(&gw_local, 50).await;
    requests(&gw_redis, 50).await;
    let (mut l, mut r) = (Vec::new(), Vec::new());
    let per = (per_round / 2).max(1);
    for round in 0..rounds {
        if round % 2 == 0 {
            l.extend(requests(&gw_local, per).await);
            r.extend(requests(&gw_redis, per).await);
        } else {
            r.extend(requests(&gw_redis, per).await);
            l.extend(requests(&gw_local, per).await);
        }
    }
    report(
        "whole request (gateway in process, mock backend)",
        &mut l,
        &mut r,
    );
    Ok(())
}
