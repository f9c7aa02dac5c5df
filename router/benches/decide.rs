//! Routing-decision latency: `decide` on rules only, and PII scan + `decide` on a 4 KB prompt
//! (goals: p99 ≤ 10 µs and ≤ 50 µs). Criterion reports means with confidence intervals; a
//! short per-call sampling pass afterwards prints p50/p99, which is what the goals are about.
//!
//! `cargo bench -p router --bench decide -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use router::config::Config;
use router::policy::{decide, LocalLoad, RequestFacts, Spend, StateSnapshot};

const CONFIG: &str = r#"
backends:
  slm: { kind: llama, model: m.gguf }
  llm: { kind: openai, model: gpt-4o-mini }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: vip, when: { tenant: [vip, gold] }, to: llm }
  - { name: tools, when: { tools: true }, to: llm }
  - { name: code, when: { content: "```|\\bfn\\b|\\bdef\\b" }, to: llm }
  - name: small-tasks
    when: { task: [sentiment, intent, extraction], prompt_tokens: { max: 2048 } }
    to: slm
    spill: { to: llm, queue_depth: 16, predicted_ttft_ms: 1500 }
    fallback: [llm]
  - { name: qa, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.62 } }
  - { name: default, to: llm, fallback: [slm] }
budgets: { daily_usd: 5.0, per_key: { daily_usd: 1.0 }, on_exhausted: slm }
"#;

/// A ~4 KB prompt of ordinary prose with digits and punctuation, and no PII (the worst case
/// for the scan: every pattern runs to the end).
fn prompt_4k() -> String {
    let para = "Please summarise the following meeting notes. The team met on Tuesday at 10:30 \
                to review the Q3 roadmap; 14 items were discussed, 3 were deferred to version 2.1 \
                and the budget of 45,000 was approved. Next steps: draft the plan, share it by \
                Friday, and collect feedback from all 7 reviewers before the release. ";
    let mut s = String::new();
    while s.len() < 4096 {
        s.push_str(para);
    }
    s.truncate(4096);
    s
}

fn setup() -> (Config, RequestFacts, StateSnapshot) {
    let config = Config::parse(CONFIG, "bench.yaml", Path::new(".")).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let text = prompt_4k();
    let facts = RequestFacts {
        task: "sentiment".into(),
        pii: false,
        non_text: false,
        prompt_tokens: text.len() / 4,
        text,
        requested_model: "auto".into(),
        tenant: Some("alice".into()),
        has_tools: false,
        stream: true,
    };
    let mut state = StateSnapshot {
        spend: Spend {
            global_day_usd: 1.0,
            global_month_usd: 10.0,
            tenant_day_usd: 0.1,
            tenant_month_usd: 1.0,
        },
        ..StateSnapshot::default()
    };
    state.local.insert(
        "slm".into(),
        LocalLoad {
            queue_depth: 3,
            busy_slots: 4,
            slots: 4,
            predicted_ttft_ms: Some(400.0),
        },
    );
    (config, facts, state)
}

/// The facts with `pii` false and true, so the timed loop scans without cloning the prompt.
fn pii_variants(facts: &RequestFacts) -> [RequestFacts; 2] {
    let mut with = facts.clone();
    with.pii = true;
    [facts.clone(), with]
}

fn scan_and_decide(
    config: &Config,
    variants: &[RequestFacts; 2],
    state: &StateSnapshot,
) -> router::policy::Decision {
    let pii = config.pii.contains_pii(black_box(&variants[0].text));
    decide(&config.policy, &variants[usize::from(pii)], state)
}

fn benches(c: &mut Criterion) {
    let (config, facts, state) = setup();
    let variants = pii_variants(&facts);
    c.bench_function("decide/rules_only", |b| {
        b.iter(|| {
            decide(
                black_box(&config.policy),
                black_box(&facts),
                black_box(&state),
            )
        })
    });
    c.bench_function("decide/pii_scan_4k_plus_rules", |b| {
        b.iter(|| scan_and_decide(&config, &variants, black_box(&state)))
    });
}

/// Per-call latency percentiles (each call timed on its own; `Instant` costs ~20–40 ns).
fn percentiles(name: &str, mut f: impl FnMut()) {
    for _ in 0..2_000 {
        f();
    }
    let mut samples: Vec<u64> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "{name}: p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, max {:.2} µs ({} calls)",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        samples.len()
    );
}

criterion_group!(decide_benches, benches);

fn main() {
    decide_benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    // `cargo test --benches` runs this binary in test mode: skip the sampling pass there.
    if std::env::args().any(|a| a == "--bench") {
        let (config, facts, state) = setup();
        percentiles("decide/rules_only", || {
            black_box(decide(&config.policy, black_box(&facts), &state));
        });
        let variants = pii_variants(&facts);
        percentiles("decide/pii_scan_4k_plus_rules", || {
            black_box(scan_and_decide(&config, &variants, black_box(&state)));
        });
    }
}
