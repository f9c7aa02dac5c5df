//! Many gateways, one budget (issue 15, "what it must show"): three real `triage serve`
//! processes (the binary) behind no load balancer but the test's own round robin, one private
//! `redis-server` (`store:`), one private Postgres (`server.ledger:`), and an OpenAI-compatible
//! TEST DOUBLE upstream with fixed usage (`bench::soak::upstream::FaultUpstream` without faults:
//! 4 completion tokens per answer).
//!
//! Prices make every remote answer cost exactly its reservation: input free, output $2,500/M,
//! `max_tokens: 4` → $0.01 reserved and $0.01 spent. Checked, arithmetically:
//! - 1,000 concurrent requests of tenant `alice` spread over the replicas against her $1.00
//!   daily budget: exactly 100 admitted, $1.00 spent in Postgres and settled in Redis (0
//!   overspend), every refusal made while spent + reserved left no room for it, exactly one
//!   Postgres row per request (each carries its own task name, `alice-N`);
//! - tenant `bob`'s 30 requests per minute across the three: a burst of 90 admits 30 (± 1), and
//!   a second burst T seconds later admits what refilled, 30·T/60 (± 1);
//! - Redis killed in the middle of tenant `carol`'s burst: `fail_closed` replicas run requests
//!   whose route has a local backend on it (SmolLM2) and answer 503 `store_unavailable` to the
//!   others, `fail_open` replicas admit to the remote; no 5xx but those 503s, no lost row;
//! - Redis restarted empty: the budget windows start again from the spend in the ledger, so
//!   `alice` stays refused (before the fix they restarted from each replica's first reading, 0).
//!
//! Every process started here is stopped when the test ends, passing or not (guards with
//! `Drop`). Needs `redis-server`, Postgres and SmolLM2 (`scripts/setup.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bench::soak::upstream::{FaultPlan, FaultUpstream};
use router::testing::postgres::PgServer;
use router::testing::RedisServer;
use serde_json::{json, Value};
use support::{root, serve, Gateway};

/// A request's reservation and cost: 4 completion tokens at $2,500 per million.
const COST_MICROS: i64 = 10_000;
/// `alice`'s daily budget: exactly 100 requests.
const BUDGET_MICROS: i64 = 1_000_000;
/// `bob`'s requests per minute.
const RATE: u64 = 30;
const KEYS: &str = "alice:sk-alice,bob:sk-bob,carol:sk-carol";

fn config(redis: &RedisServer, pg: &PgServer, upstream: &FaultUpstream, failure: &str) -> String {
    let smollm = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    format!(
        r#"server: {{ ledger: "{pg}", api_keys_env: TRIAGE_KEYS }}
store: {redis}
store_failure: {failure}
backends:
  llm: {{ kind: openai, base_url: "{upstream}", model: mock, retry: {{ max_attempts: 1 }} }}
  slm: {{ kind: llama, model: "{smollm}", slots: 2, threads: 1, context: 512 }}
pricing:
  llm: {{ input: 0.0, output: 2500.0 }}
  slm: {{ machine_usd_per_hour: 0.0 }}
budgets:
  tenants: {{ alice: {{ daily_usd: 1.0 }} }}
  on_exhausted: refuse
rate_limits:
  tenants:
    bob: {{ requests_per_minute: {RATE} }}
    carol: {{ requests_per_minute: 1000000 }}
routes:
  - {{ name: remote-only, when: {{ model: remote-only }}, to: llm }}
  - {{ name: default, to: llm, fallback: [slm] }}
"#,
        pg = pg.url_text(),
        redis = redis.url(),
        upstream = upstream.base_url(),
        smollm = smollm.display(),
    )
}

/// Three `triage serve` processes on one config (killed on drop).
async fn replicas(dir: &Path, name: &str, yaml: String) -> Vec<Gateway> {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    let mut started = Vec::new();
    for _ in 0..3 {
        let path = path.clone();
        started.push(
            tokio::task::spawn_blocking(move || serve(&path, &[("TRIAGE_KEYS", KEYS)]))
                .await
                .unwrap(),
        );
    }
    started
}

/// What one request got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    backend: Option<String>,
    body: String,
}

/// `POST /v1/chat/completions` as `key`, with its own task name `task`.
async fn chat(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    task: &str,
    model: &str,
    stream: bool,
) -> Answer {
    let body = json!({
        "model": model,
        "stream": stream,
        "max_tokens": 4,
        "messages": [{ "role": "user", "content": "Is this review positive? I loved it." }],
    });
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("x-triage-task", task)
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{task}: {e}"));
    let status = r.status().as_u16();
    let backend = r
        .headers()
        .get("x-triage-backend")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.text().await.unwrap_or_else(|e| panic!("{task}: {e}"));
    if status == 200 && stream {
        assert!(body.trim_end().ends_with("data: [DONE]"), "{task}: {body}");
    }
    Answer {
        status,
        backend,
        body,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Every task in the Postgres ledger and how many rows it has, once `expected` rows are there
/// (rows are batched every 20 ms; waits up to 20 s).
fn ledger_tasks(pg: &PgServer, expected: usize) -> HashMap<String, usize> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = pg.psql("SELECT task FROM triage_ledger").unwrap();
        let mut tasks = HashMap::new();
        for t in out.lines().filter(|l| !l.is_empty()) {
            *tasks.entry(t.to_string()).or_insert(0) += 1;
        }
        let rows: usize = tasks.values().sum();
        if rows >= expected || Instant::now() > until {
            return tasks;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Exactly one row for each of `sent`.
fn one_row_each(tasks: &HashMap<String, usize>, sent: &[String]) {
    for t in sent {
        assert_eq!(tasks.get(t), Some(&1), "ledger rows of request {t}");
    }
}

/// `settled, reserved` of a budget window in Redis (`redis-cli`), once nothing is reserved
/// (settlements are sent in the background; waits up to 10 s).
fn redis_window(redis: &RedisServer, key: &str) -> (i64, i64) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port().to_string(), "HMGET", key])
            .args(["settled", "reserved"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<i64> = text
            .lines()
            .map(|l| l.trim().parse().unwrap_or(0))
            .collect();
        let w = (
            v.first().copied().unwrap_or(0),
            v.get(1).copied().unwrap_or(0),
        );
        if w.1 == 0 || Instant::now() > until {
            return w;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn today() -> String {
    let out = Command::new("date").args(["-u", "+%F"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The dollar amounts in a message, in micro-dollars, in order.
fn dollar_amounts(message: &str) -> Vec<i64> {
    message
        .split('$')
        .skip(1)
        .map(|s| {
            let n: String = s
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            (n.trim_end_matches('.').parse::<f64>().unwrap() * 1e6).round() as i64
        })
        .collect()
}

/// Whether a budget refusal was made while outstanding reservations (not settled spend alone)
/// held the room; panics when the refusal's own figures show room for the request.
///
/// Two refusals exist: the policy's guard (`budget exhausted: … $L spent ($S)`, settled spend at
/// the limit) and admission (`$S spent + $R reserved + this request's $A > $L`).
fn refused_for_lack_of_room(message: &str) -> bool {
    let amounts = dollar_amounts(message);
    if !message.contains(" reserved + this request's ") {
        let [limit, settled] = amounts[..] else {
            panic!("{message}")
        };
        assert_eq!(limit, BUDGET_MICROS, "{message}");
        assert!(settled + COST_MICROS > limit, "{message}");
        return false;
    }
    let [settled, reserved, amount, limit] = amounts[..] else {
        panic!("{message}")
    };
    assert_eq!((amount, limit), (COST_MICROS, BUDGET_MICROS), "{message}");
    assert!(settled + reserved + amount > limit, "{message}");
    if settled + amount <= limit {
        assert!(reserved > 0, "{message}");
        return true;
    }
    false
}

/// `n` concurrent requests of `key`, request `i` to replica `i % 3`, tasks `{prefix}-{i}`, half
/// streamed.
async fn burst(
    http: &reqwest::Client,
    gateways: &[Gateway],
    key: &str,
    prefix: &str,
    n: usize,
) -> (Vec<String>, Vec<Answer>) {
    let tasks: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let answers = futures::future::join_all(
        tasks
            .iter()
            .enumerate()
            .map(|(i, t)| chat(http, &gateways[i % 3].url, key, t, "auto", i % 2 == 0)),
    )
    .await;
    (tasks, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_budget_one_rate_limit_and_one_ledger() {
    let started = Instant::now();
    let mut redis = RedisServer::start().unwrap();
    let pg = tokio::task::spawn_blocking(PgServer::start)
        .await
        .unwrap()
        .unwrap();
    let upstream = FaultUpstream::start(FaultPlan::none()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut gateways = replicas(
        dir.path(),
        "closed.yaml",
        config(&redis, &pg, &upstream, "fail_closed"),
    )
    .await;
    let http = client();
    let mut sent: Vec<String> = Vec::new();

    // 1. The budget: 1,000 concurrent requests, $0.01 each, against $1.00.
    let t0 = Instant::now();
    let (tasks, answers) = burst(&http, &gateways, "sk-alice", "alice", 1000).await;
    let burst_time = t0.elapsed();
    sent.extend(tasks);
    let (mut admitted, mut held) = (0, 0);
    for a in &answers {
        match a.status {
            200 => {
                assert_eq!(a.backend.as_deref(), Some("llm"));
                admitted += 1;
            }
            429 => {
                let err: Value = serde_json::from_str(&a.body).unwrap();
                let msg = err["error"]["message"].as_str().unwrap();
                assert!(msg.contains("tenant alice daily budget"), "{msg}");
                // Refused only when spent + reserved left no room for this request.
                if refused_for_lack_of_room(msg) {
                    held += 1;
                }
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert_eq!(admitted, BUDGET_MICROS / COST_MICROS, "admitted");
    let window = format!("triage:budget:alice:day:{}", today());
    let (settled, reserved) = redis_window(&redis, &window);
    assert_eq!((settled, reserved), (BUDGET_MICROS, 0), "Redis {window}");
    let tasks = ledger_tasks(&pg, sent.len());
    one_row_each(&tasks, &sent);
    let spent = pg
        .psql("SELECT round(sum(cost_usd) * 1e6) FROM triage_ledger WHERE key = 'alice'")
        .unwrap();
    let spent: i64 = spent.parse().unwrap();
    assert_eq!(spent, BUDGET_MICROS, "spent in the Postgres ledger");
    println!(
        "three replicas, one Redis, one Postgres: 1000 concurrent, $1.00 budget, $0.01 each: \
         admitted {admitted}, spent ${:.6}, overspend {:.2}%, refused {} ({held} while \
         reservations held the room), burst {:.2} s",
        spent as f64 / 1e6,
        (spent - BUDGET_MICROS).max(0) as f64 / BUDGET_MICROS as f64 * 100.0,
        1000 - admitted,
        burst_time.as_secs_f64()
    );

    // 2. The rate limit: 30 per minute for bob, across the three.
    let (tasks, answers) = burst(&http, &gateways, "sk-bob", "bob-a", 90).await;
    let rested = Instant::now();
    sent.extend(tasks);
    let first = answers.iter().filter(|a| a.status == 200).count() as u64;
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429, "{}", a.body);
        assert!(a.body.contains("rate_limit_exceeded"), "{}", a.body);
    }
    assert!(first.abs_diff(RATE) <= 1, "first burst admitted {first}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waited = rested.elapsed().as_secs_f64();
    let (tasks, answers) = burst(&http, &gateways, "sk-bob", "bob-b", 30).await;
    sent.extend(tasks);
    let second = answers.iter().filter(|a| a.status == 200).count() as f64;
    let refilled = RATE as f64 * waited / 60.0;
    assert!(
        (second - refilled).abs() <= 1.0 + 1e-9,
        "second burst after {waited:.2} s admitted {second}, refilled {refilled:.2}"
    );
    println!(
        "rate limit {RATE}/min across three replicas: burst of 90 admitted {first}; \
         {waited:.2} s later a burst of 30 admitted {second} (refilled {refilled:.2})"
    );

    // 3. Redis killed during carol's burst (fail_closed): local route or 503, no row lost.
    let n = 150;
    let carol = futures::future::join_all((0..n).map(|i| {
        let (http, gateways) = (&http, &gateways);
        async move {
            tokio::time::sleep(Duration::from_millis(i as u64 * 4)).await;
            let task = format!("carol-{i}");
            let model = if i % 3 == 0 { "remote-only" } else { "auto" };
            let a = chat(
                http,
                &gateways[i % 3].url,
                "sk-carol",
                &task,
                model,
                i % 2 == 0,
            )
            .await;
            (task, model, a)
        }
    }));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        redis.stop();
    };
    let (answers, ()) = tokio::join!(carol, kill);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (task, model, a) in &answers {
        let outcome = match (a.status, a.backend.as_deref()) {
            (200, Some("llm")) => "remote",
            (200, Some("slm")) => {
                assert_eq!(*model, "auto", "{task}: a remote-only route ran locally");
                "local"
            }
            (503, _) => {
                assert_eq!(*model, "remote-only", "{task}: {}", a.body);
                assert!(a.body.contains("store_unavailable"), "{}", a.body);
                "503"
            }
            (status, backend) => panic!("{task}: unexpected {status} from {backend:?}: {}", a.body),
        };
        *outcomes.entry(outcome.to_string()).or_insert(0) += 1;
        sent.push(task.clone());
    }
    assert!(
        outcomes.contains_key("local") && outcomes.contains_key("503"),
        "{outcomes:?}"
    );
    for g in &mut gateways {
        assert!(g.is_running(), "a replica died");
    }
    let tasks = ledger_tasks(&pg, sent.len());
    one_row_each(&tasks, &sent);
    println!("Redis killed mid-burst, fail_closed: {outcomes:?}");

    // 4. Redis back, empty: the windows restart from the ledger's spend, not from 0. Each
    //    replica notices on its own (until then, under fail_closed, it serves `auto` locally),
    //    so wait until every one of them admits a remote-only request again.
    redis.restart().unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    for g in &gateways {
        loop {
            let task = format!("carol-back-{i}");
            let a = chat(&http, &g.url, "sk-carol", &task, "remote-only", false).await;
            sent.push(task);
            i += 1;
            if a.status == 200 {
                break;
            }
            assert_eq!(a.status, 503, "{}", a.body);
            assert!(Instant::now() < until, "Redis back, but not used again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (tasks, answers) = burst(&http, &gateways, "sk-alice", "alice-after", 30).await;
    sent.extend(tasks);
    for a in &answers {
        assert_eq!(
            a.status, 429,
            "alice's spent budget after a Redis restart: {}",
            a.body
        );
    }
    let tasks = ledger_tasks(&pg, sent.len());
    one_row_each(&tasks, &sent);
    assert_eq!(
        tasks.values().sum::<usize>(),
        sent.len(),
        "no row but these"
    );
    let spent: i64 = pg
        .psql("SELECT round(sum(cost_usd) * 1e6) FROM triage_ledger WHERE key = 'alice'")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(spent, BUDGET_MICROS);
    let before_stop = started.elapsed();
    for g in gateways {
        g.stop();
    }
    println!(
        "whole test: {:.1} s ({:.1} s before stopping the replicas)",
        started.elapsed().as_secs_f64(),
        before_stop.as_secs_f64()
    );
}

/// `store_failure: fail_open` on three replicas: with Redis killed mid-burst every request is
/// admitted to its remote route (logged and counted), none refused, every row in Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_replicas_admit_while_redis_is_down() {
    let mut redis = RedisServer::start().unwrap();
    let pg = tokio::task::spawn_blocking(PgServer::start)
        .await
        .unwrap()
        .unwrap();
    let upstream = FaultUpstream::start(FaultPlan::none()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateways = replicas(
        dir.path(),
        "open.yaml",
        config(&redis, &pg, &upstream, "fail_open"),
    )
    .await;
    let http = client();
    let n = 120;
    let carol = futures::future::join_all((0..n).map(|i| {
        let (http, gateways) = (&http, &gateways);
        async move {
            tokio::time::sleep(Duration::from_millis(i as u64 * 4)).await;
            let task = format!("open-{i}");
            let model = if i % 3 == 0 { "remote-only" } else { "auto" };
            let a = chat(
                http,
                &gateways[i % 3].url,
                "sk-carol",
                &task,
                model,
                i % 2 == 0,
            )
            .await;
            (task, a)
        }
    }));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.stop();
    };
    let (answers, ()) = tokio::join!(carol, kill);
    let mut sent = Vec::new();
    for (task, a) in answers {
        assert_eq!(a.status, 200, "{task}: {}", a.body);
        assert_eq!(a.backend.as_deref(), Some("llm"), "{task}");
        sent.push(task);
    }
    let metrics = http
        .get(format!("{}/metrics", gateways[0].url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"triage_store_up{store="redis"} 0"#),
        "{metrics}"
    );
    let tasks = ledger_tasks(&pg, sent.len());
    one_row_each(&tasks, &sent);
    for g in gateways {
        g.stop();
    }
}
