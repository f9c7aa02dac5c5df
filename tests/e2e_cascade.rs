//! The cascade on real models: gateway A answers with the real SmolLM2 first and escalates to
//! gateway B (a second `triage serve` with Gemma-3-270M, reached over real HTTP as an
//! OpenAI-compatible backend with `extensions: triage`, so `choices` reach it) when the signal its route names is below the route's threshold.
//!
//! Routes pin the outcome with thresholds no answer can miss (p ≥ 0 always holds; p_chosen ≥ 1
//! and mean_logprob ≥ 0 never do for a real model's answer), plus one real threshold (0.5) where
//! the test checks that the decision follows the signal value the gateway reports. It checks what
//! a client sees (the `x-triage-*` headers, one answer per request, a stream that never carries
//! the held-back SLM text) and what the ledger keeps (the escalation, both backends, both bills).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use router::ledger::LedgerRow;
use router::store::{SqliteStore, Store};
use serde_json::{json, Value};
use support::{root, serve};

const SMOL_TEMPLATE_CHOICES: [&str; 3] = ["positive", "negative", "neutral"];
/// Price of the LLM's tokens in gateway A ($ per 1M): large, so its share of a bill is plain.
const LLM_PRICE: f64 = 1000.0;

struct Reply {
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

async fn post(base: &str, task: &str, body: Value) -> Reply {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-triage-task", task)
        .body(body.to_string())
        .send()
        .await
        .expect("gateway answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.text().await.expect("a body");
    assert_eq!(status, 200, "{task}: {body}");
    Reply { headers, body }
}

fn sentiment(stream: bool) -> Value {
    json!({
        "model": "auto",
        "temperature": 0,
        "max_tokens": 8,
        "stream": stream,
        "choices": SMOL_TEMPLATE_CHOICES,
        "messages": [
            {"role": "system", "content": "Classify the sentiment of the review. Answer with one word."},
            {"role": "user", "content": "The battery died after two days and support never answered."}
        ]
    })
}

fn free_text(stream: bool) -> Value {
    json!({
        "model": "auto",
        "temperature": 0,
        "max_tokens": 12,
        "stream": stream,
        "messages": [{"role": "user", "content": "Name the capital city of France."}]
    })
}

/// `name=value` from `x-triage-signal`.
fn signal(reply: &Reply) -> (String, Option<f64>) {
    let h = reply.header("x-triage-signal").expect("x-triage-signal");
    let (name, value) = h.split_once('=').expect("NAME=VALUE");
    (name.to_string(), value.parse().ok())
}

fn escalated(reply: &Reply) -> bool {
    reply.header("x-triage-escalated").as_deref() == Some("true")
}

fn content(reply: &Reply) -> String {
    let v: Value = serde_json::from_str(&reply.body).unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A streamed answer's text, checked for shape: one role, one finish reason, one `[DONE]`.
fn streamed_text(reply: &Reply) -> String {
    let mut text = String::new();
    let (mut roles, mut finishes, mut dones) = (0, 0, 0);
    for line in reply.body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data.trim() == "[DONE]" {
            dones += 1;
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(v.get("error").is_none(), "error event: {data}");
        for c in v["choices"].as_array().into_iter().flatten() {
            if c["delta"].get("role").is_some() {
                roles += 1;
            }
            if let Some(t) = c["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if !c["finish_reason"].is_null() {
                finishes += 1;
            }
        }
    }
    assert_eq!(
        (roles, finishes, dones),
        (1, 1, 1),
        "one answer per stream: {}",
        reply.body
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_on_real_models_escalates_by_signal_and_bills_both_calls() {
    let dir = std::env::temp_dir().join(format!("triage-e2e-cascade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let models = root().join("models");
    let b_config = dir.join("b.yaml");
    std::fs::write(
        &b_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n  gemma: {{ kind: llama, model: {}, slots: 1, threads: 1, context: 1024 }}\n\
             routes:\n  - {{ name: default, to: gemma }}\n",
            dir.join("b.sqlite").display(),
            models.join("gemma-3-270m-q4_k_m.gguf").display()
        ),
    )
    .unwrap();
    let b = serve(&b_config, &[]);
    let a_ledger = dir.join("a.sqlite");
    let a_config = dir.join("a.yaml");
    let cascade = |signal: &str, threshold: &str| {
        format!("{{ first: slm, escalate_to: llm, signal: {signal}, threshold: {threshold} }}")
    };
    std::fs::write(
        &a_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n\
             \x20 slm: {{ kind: llama, model: {}, slots: 1, threads: 1, context: 1024 }}\n\
             \x20 llm: {{ kind: openai, base_url: \"{}/v1\", model: gemma, extensions: triage, retry: {{ max_attempts: 1 }} }}\n\
             pricing:\n  llm: {{ input: {LLM_PRICE}, output: {LLM_PRICE} }}\n  slm: {{ machine_usd_per_hour: 0.05 }}\n\
             routes:\n\
             \x20 - {{ name: keep, when: {{ task: [keep] }}, cascade: {} }}\n\
             \x20 - {{ name: strict, when: {{ task: [strict] }}, cascade: {} }}\n\
             \x20 - {{ name: half, when: {{ task: [half] }}, cascade: {} }}\n\
             \x20 - {{ name: free, when: {{ task: [free] }}, cascade: {} }}\n\
             \x20 - {{ name: remote-first, when: {{ task: [remote-first] }}, cascade: {{ first: llm, escalate_to: slm, signal: mean_logprob, threshold: -50.0 }} }}\n\
             \x20 - {{ name: default, to: slm }}\n",
            a_ledger.display(),
            models.join("SmolLM2-135M-Instruct.Q4_1.gguf").display(),
            b.url,
            cascade("p_chosen", "0.0"),
            cascade("p_chosen", "1.0"),
            cascade("p_chosen", "0.5"),
            cascade("mean_logprob", "0.0"),
        ),
    )
    .unwrap();
    let a = serve(&a_config, &[]);

    // A confident-enough answer is kept: the SLM's, one of the choices, no escalation.
    let kept = post(&a.url, "keep", sentiment(false)).await;
    assert_eq!(kept.header("x-triage-backend").as_deref(), Some("slm"));
    assert!(!escalated(&kept));
    let (name, p) = signal(&kept);
    assert_eq!(name, "p_chosen");
    let p = p.expect("a scored choices answer has p_chosen");
    assert!((0.0..=1.0).contains(&p), "{p}");
    assert!(SMOL_TEMPLATE_CHOICES.contains(&content(&kept).trim()));

    // Below the threshold: escalated to gateway B, which answers.
    let strict = post(&a.url, "strict", sentiment(false)).await;
    assert_eq!(strict.header("x-triage-backend").as_deref(), Some("llm"));
    assert!(escalated(&strict));
    assert_eq!(signal(&strict), ("p_chosen".to_string(), Some(p)));
    // The same question reached B: `choices` travel as the triage extension.
    assert!(
        SMOL_TEMPLATE_CHOICES.contains(&content(&strict).trim()),
        "{}",
        strict.body
    );

    // A real threshold: the decision follows the reported value.
    let half = post(&a.url, "half", sentiment(false)).await;
    let (_, v) = signal(&half);
    assert_eq!(
        escalated(&half),
        v.expect("p_chosen") < 0.5,
        "{half:?}",
        half = half.body
    );

    // Free text judged on the mean free-token log-prob: escalates (no real answer is certain of
    // every token); whole and streamed give B's answer, and the stream carries only that answer.
    let whole = post(&a.url, "free", free_text(false)).await;
    assert!(escalated(&whole));
    let (name, lp) = signal(&whole);
    assert_eq!(name, "mean_logprob");
    assert!(lp.expect("a free-text answer has mean_logprob") < 0.0);
    let direct = {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", b.url))
            .header("content-type", "application/json")
            .body(free_text(false).to_string())
            .send()
            .await
            .unwrap();
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(content(&whole), direct, "A returned B's answer");
    let streamed = post(&a.url, "free", free_text(true)).await;
    assert!(escalated(&streamed));
    assert_eq!(
        streamed_text(&streamed),
        direct,
        "the stream is B's answer only"
    );

    // B answers with its local model, so its answers carry OpenAI `logprobs` when asked: whole
    // and streamed, each token's log-probability with its alternatives, most likely first.
    let mut asked = free_text(false);
    asked["logprobs"] = json!(true);
    asked["top_logprobs"] = json!(3);
    let direct = post(&b.url, "free", asked.clone()).await;
    let v: Value = serde_json::from_str(&direct.body).unwrap();
    let tokens = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!tokens.is_empty(), "{}", direct.body);
    for t in tokens {
        let lp = t["logprob"].as_f64().unwrap();
        assert!(lp <= 0.0, "{t}");
        let top: Vec<f64> = t["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["logprob"].as_f64().unwrap())
            .collect();
        assert_eq!(top.len(), 3, "{t}");
        assert!(top.windows(2).all(|w| w[0] >= w[1]), "{t}");
        assert!(t["bytes"].is_array(), "{t}");
    }
    asked["stream"] = json!(true);
    let streamed = post(&b.url, "free", asked).await;
    let streamed_tokens: usize = streamed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["logprobs"]["content"]
                .as_array()
                .map(Vec::len)
        })
        .sum();
    assert_eq!(streamed_tokens, tokens.len(), "{}", streamed.body);
    // So B can be a cascade's first step: A reads its confidence from those log-probabilities.
    let remote_first = post(&a.url, "remote-first", free_text(false)).await;
    assert_eq!(
        remote_first.header("x-triage-backend").as_deref(),
        Some("llm")
    );
    assert!(!escalated(&remote_first), "{}", remote_first.body);
    let (name, lp) = signal(&remote_first);
    assert_eq!(name, "mean_logprob");
    let lp = lp.expect("B's logprobs give a mean_logprob");
    assert!(lp < 0.0 && lp > -50.0, "{lp}");
    let v: Value = serde_json::from_str(&remote_first.body).unwrap();
    assert!(
        v["choices"][0]["logprobs"].is_null(),
        "logprobs the client did not ask for are not sent: {}",
        remote_first.body
    );

    // The ledger: one row per request; escalations list both backends and bill both calls.
    // Stopped, not killed: its last ledger rows are written before it exits.
    a.stop();
    let rows: Vec<LedgerRow> = SqliteStore::open(&a_ledger).unwrap().recent(100).unwrap();
    assert_eq!(rows.len(), 6, "{rows:#?}");
    let by_route =
        |route: &str| -> Vec<&LedgerRow> { rows.iter().filter(|r| r.route == route).collect() };
    let keep_row = by_route("keep")[0];
    assert_eq!(keep_row.backends, ["slm"]);
    assert!(!keep_row.escalated);
    assert!(keep_row.cost_usd > 0.0, "the SLM's engine time is billed");
    for row in by_route("strict").into_iter().chain(by_route("free")) {
        assert_eq!(row.backends, ["slm", "llm"], "{row:?}");
        assert!(row.escalated);
        assert_eq!(row.status, 200);
        // B's tokens at A's LLM price, plus the rejected SLM answer's engine time.
        let llm_part = (row.tokens_in + row.tokens_out) as f64 * LLM_PRICE / 1e6;
        assert!(llm_part > 0.0, "{row:?}");
        assert!(row.cost_usd > llm_part, "both calls billed: {row:?}");
    }
    drop(b);
    std::fs::remove_dir_all(&dir).ok();
}
