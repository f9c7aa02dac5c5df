#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The routing policy: table-driven cases for every condition and action, and properties
//! (determinism; PII never reaches a remote backend when a privacy rule is on).

use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use router::config::Config;
use router::pii::PiiDetector;
use router::policy::{
    decide, decide_pinned, Action, LocalLoad, Policy, RequestFacts, Spend, StateSnapshot,
};

const BACKENDS: &str = "\
backends:
  slm: { kind: llama, model: m.gguf }
  slm2: { kind: llama, model: m2.gguf }
  llm: { kind: openai, model: gpt-4o-mini }
  claude: { kind: anthropic, model: claude-haiku-4-5 }
reference_backend: llm
";

const ROUTES: &str = r#"
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: vip, when: { tenant: [vip] }, to: claude, fallback: [llm, slm] }
  - { name: tools, when: { tools: true }, to: llm }
  - { name: big-prompts, when: { prompt_tokens: { min: 2000 } }, to: llm }
  - { name: code, when: { content: "```|\\bfn\\b" }, to: claude }
  - { name: cheap, when: { model: [cheap] }, to: slm }
  - name: small-tasks
    when: { task: [sentiment, intent] }
    to: slm
    spill: { to: llm, queue_depth: 8, predicted_ttft_ms: 1500 }
    fallback: [llm]
  - { name: streaming-qa, when: { task: qa, stream: true, prompt_tokens: { max: 100 } }, to: slm2 }
  - name: qa
    when: { task: qa }
    cascade: { first: slm, escalate_to: llm, min_confidence: 0.6 }
    spill: { to: slm2, queue_depth: 4 }
  - { name: default, to: llm, fallback: [slm] }
"#;

/// The same rules with the privacy rule placed after rules that send remote.
const ROUTES_PRIVACY_LATE: &str = r#"
routes:
  - { name: vip, when: { tenant: [vip] }, to: claude, fallback: [llm, slm] }
  - { name: tools, when: { tools: true }, to: llm, fallback: [slm2] }
  - { name: qa, when: { task: qa }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.6 } }
  - { name: small-tasks, when: { task: [sentiment] }, to: slm, spill: { to: llm, queue_depth: 2 } }
  - { name: private, when: { pii: true }, to: slm }
  - { name: default, to: llm, fallback: [slm] }
"#;

fn policy(routes: &str, budgets: &str) -> Policy {
    let text = format!("{BACKENDS}{routes}{budgets}");
    Config::parse(&text, "test.yaml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

const BUDGETS: &str = "budgets: { daily_usd: 10, monthly_usd: 100, per_key: { daily_usd: 1 }, tenants: { vip: { daily_usd: 50 } }, on_exhausted: slm }\n";
const BUDGETS_REFUSE: &str = "budgets: { daily_usd: 10, on_exhausted: refuse }\n";

fn facts(task: &str) -> RequestFacts {
    RequestFacts {
        task: task.into(),
        prompt_tokens: 50,
        text: "hello there".into(),
        requested_model: "auto".into(),
        ..RequestFacts::default()
    }
}

fn backend(b: &str) -> Action {
    Action::Backend(b.into())
}

fn busy(backend: &str, queue_depth: usize, ttft: Option<f64>) -> StateSnapshot {
    let mut s = StateSnapshot::default();
    s.local.insert(
        backend.into(),
        LocalLoad {
            queue_depth,
            busy_slots: 4,
            slots: 4,
            predicted_ttft_ms: ttft,
        },
    );
    s
}

fn spent(day: f64, tenant_day: f64) -> StateSnapshot {
    StateSnapshot {
        spend: Spend {
            global_day_usd: day,
            global_month_usd: day,
            tenant_day_usd: tenant_day,
            tenant_month_usd: tenant_day,
        },
        ..StateSnapshot::default()
    }
}

struct Case {
    name: &'static str,
    facts: RequestFacts,
    state: StateSnapshot,
    route: &'static str,
    action: Action,
    fallback: &'static [&'static str],
}

#[test]
fn decision_table() {
    let p = policy(ROUTES, BUDGETS);
    let qa_cascade = match &p.rules()[8].action {
        router::policy::RuleAction::Cascade(c) => Action::Cascade(c.clone()),
        other => panic!("{other:?}"),
    };
    let cases = vec![
        Case {
            name: "catch-all",
            facts: facts("unknown"),
            state: StateSnapshot::default(),
            route: "default",
            action: backend("llm"),
            fallback: &["slm"],
        },
        Case {
            name: "pii goes local",
            facts: RequestFacts {
                pii: true,
                tenant: Some("vip".into()),
                ..facts("qa")
            },
            state: StateSnapshot::default(),
            route: "private",
            action: backend("slm"),
            fallback: &[],
        },
        Case {
            name: "tenant",
            facts: RequestFacts {
                tenant: Some("vip".into()),
                ..facts("sentiment")
            },
            state: StateSnapshot::default(),
            route: "vip",
            action: backend("claude"),
            fallback: &["llm", "slm"],
        },
        Case {
            name: "other tenant",
            facts: RequestFacts {
                tenant: Some("joe".into()),
                ..facts("unknown")
            },
            state: StateSnapshot::default(),
            route: "default",
            action: backend("llm"),
            fallback: &["slm"],
        },
        Case {
            name: "tools",
            facts: RequestFacts {
                has_tools: true,
                ..facts("sentiment")
            },
            state: StateSnapshot::default(),
            route: "tools",
            action: backend("llm"),
            fallback: &[],
        },
        Case {
            name: "token range min",
            facts: RequestFacts {
                prompt_tokens: 2000,
                ..facts("sentiment")
            },
            state: StateSnapshot::default(),
            route: "big-prompts",
            action: backend("llm"),
            fallback: &[],
        },
        Case {
            name: "below token range",
            facts: RequestFacts {
                prompt_tokens: 1999,
                ..facts("sentiment")
            },
            state: StateSnapshot::default(),
            route: "small-tasks",
            action: backend("slm"),
            fallback: &["llm"],
        },
        Case {
            name: "content regex",
            facts: RequestFacts {
                text: "why does this fn not compile".into(),
                ..facts("unknown")
            },
            state: StateSnapshot::default(),
            route: "code",
            action: backend("claude"),
            fallback: &[],
        },
        Case {
            name: "requested model",
            facts: RequestFacts {
                requested_model: "cheap".into(),
                ..facts("unknown")
            },
            state: StateSnapshot::default(),
            route: "cheap",
            action: backend("slm"),
            fallback: &[],
        },
        Case {
            name: "task set",
            facts: facts("intent"),
            state: StateSnapshot::default(),
            route: "small-tasks",
            action: backend("slm"),
            fallback: &["llm"],
        },
        Case {
            name: "spill on queue depth",
            facts: facts("sentiment"),
            state: busy("slm", 8, None),
            route: "small-tasks",
            action: backend("llm"),
            fallback: &[],
        },
        Case {
            name: "no spill just below",
            facts: facts("sentiment"),
            state: busy("slm", 7, Some(1499.0)),
            route: "small-tasks",
            action: backend("slm"),
            fallback: &["llm"],
        },
        Case {
            name: "spill on predicted ttft",
            facts: facts("sentiment"),
            state: busy("slm", 0, Some(1500.0)),
            route: "small-tasks",
            action: backend("llm"),
            fallback: &[],
        },
        Case {
            name: "stream + task + range",
            facts: RequestFacts {
                stream: true,
                ..facts("qa")
            },
            state: StateSnapshot::default(),
            route: "streaming-qa",
            action: backend("slm2"),
            fallback: &[],
        },
        Case {
            name: "stream but too long",
            facts: RequestFacts {
                stream: true,
                prompt_tokens: 101,
                ..facts("qa")
            },
            state: StateSnapshot::default(),
            route: "qa",
            action: qa_cascade.clone(),
            fallback: &[],
        },
        Case {
            name: "cascade",
            facts: facts("qa"),
            state: StateSnapshot::default(),
            route: "qa",
            action: qa_cascade,
            fallback: &[],
        },
        Case {
            name: "cascade spills to another local",
            facts: facts("qa"),
            state: busy("slm", 4, None),
            route: "qa",
            action: backend("slm2"),
            fallback: &[],
        },
        Case {
            name: "global budget spent → slm",
            facts: facts("unknown"),
            state: spent(10.0, 0.0),
            route: "budget",
            action: backend("slm"),
            fallback: &[],
        },
        Case {
            name: "budget spent, local rule unaffected",
            facts: facts("sentiment"),
            state: spent(10.0, 0.0),
            route: "small-tasks",
            action: backend("slm"),
            fallback: &[],
        },
        Case {
            name: "budget spent, no remote spill",
            facts: facts("sentiment"),
            state: StateSnapshot {
                spend: spent(10.0, 0.0).spend,
                ..busy("slm", 100, None)
            },
            route: "small-tasks",
            action: backend("slm"),
            fallback: &[],
        },
        Case {
            name: "per-key budget",
            facts: RequestFacts {
                tenant: Some("joe".into()),
                ..facts("unknown")
            },
            state: spent(2.0, 1.0),
            route: "budget",
            action: backend("slm"),
            fallback: &[],
        },
        Case {
            name: "tenant override budget",
            facts: RequestFacts {
                tenant: Some("vip".into()),
                ..facts("unknown")
            },
            state: spent(2.0, 1.0),
            route: "vip",
            action: backend("claude"),
            fallback: &["llm", "slm"],
        },
    ];
    let mut failures = Vec::new();
    for c in cases {
        let d = decide(&p, &c.facts, &c.state);
        let fallback: Vec<String> = c.fallback.iter().map(|s| s.to_string()).collect();
        if d.route != c.route || d.action != c.action || d.fallback != fallback {
            failures.push(format!(
                "{}: got route {} action {:?} fallback {:?}\n  want route {} action {:?} fallback {:?}\n  trace: {:#?}",
                c.name, d.route, d.action, d.fallback, c.route, c.action, fallback, d.trace
            ));
        }
        assert!(!d.reason.is_empty(), "{}: empty reason", c.name);
        assert!(!d.trace.is_empty(), "{}: empty trace", c.name);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn trace_lists_every_rule_checked_and_reason_names_the_match() {
    let p = policy(ROUTES, "");
    let d = decide(&p, &facts("intent"), &StateSnapshot::default());
    let checked: Vec<&str> = d
        .trace
        .iter()
        .filter(|t| t.starts_with("rule "))
        .map(String::as_str)
        .collect();
    assert_eq!(checked.len(), 7, "{checked:#?}");
    assert!(
        checked[0].contains("\"private\": no (pii is false)"),
        "{}",
        checked[0]
    );
    assert!(
        checked[6].contains("\"small-tasks\": match (task intent)"),
        "{}",
        checked[6]
    );
    assert!(
        d.reason.contains("task intent") && d.reason.contains("slm"),
        "{}",
        d.reason
    );
}

#[test]
fn budget_refuse_is_429() {
    let p = policy(ROUTES, BUDGETS_REFUSE);
    let d = decide(&p, &facts("unknown"), &spent(10.0, 0.0));
    match d.action {
        Action::Refuse { status, message } => {
            assert_eq!(status, 429);
            assert!(message.contains("daily budget"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Local routes still answer.
    let d = decide(&p, &facts("sentiment"), &spent(10.0, 0.0));
    assert_eq!(d.action, backend("slm"));
}

#[test]
fn privacy_guard_skips_remote_rules_placed_before_the_privacy_rule() {
    let p = policy(ROUTES_PRIVACY_LATE, "");
    let f = RequestFacts {
        pii: true,
        tenant: Some("vip".into()),
        has_tools: true,
        ..facts("qa")
    };
    let d = decide(&p, &f, &StateSnapshot::default());
    assert_eq!((d.route.as_str(), &d.action), ("private", &backend("slm")));
    assert!(
        d.trace
            .iter()
            .any(|t| t.contains("\"vip\": matched") && t.contains("skipped")),
        "{:#?}",
        d.trace
    );
    // A local rule before the privacy rule still wins, but loses its remote spill.
    let f = RequestFacts {
        pii: true,
        ..facts("sentiment")
    };
    let d = decide(&p, &f, &busy("slm", 50, None));
    assert_eq!(
        (d.route.as_str(), &d.action),
        ("small-tasks", &backend("slm"))
    );
}

#[test]
fn pinned_requests_keep_privacy_and_budgets() {
    let p = policy(ROUTES, BUDGETS_REFUSE);
    let pii = RequestFacts {
        pii: true,
        ..facts("qa")
    };
    let d = decide_pinned(&p, &pii, &StateSnapshot::default(), "llm");
    assert!(
        matches!(d.action, Action::Refuse { status: 403, .. }),
        "{d:?}"
    );
    assert_eq!(
        decide_pinned(&p, &pii, &StateSnapshot::default(), "slm").action,
        backend("slm")
    );
    let d = decide_pinned(&p, &facts("qa"), &spent(11.0, 0.0), "llm");
    assert!(
        matches!(d.action, Action::Refuse { status: 429, .. }),
        "{d:?}"
    );
    assert_eq!(
        decide_pinned(&p, &facts("qa"), &spent(1.0, 0.0), "llm").action,
        backend("llm")
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn text_strategy() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "please classify",
        "the review",
        "```rust",
        "fn main",
        "hello",
        "write to ann@example.com",
        "card 4111 1111 1111 1111",
        "ssn 123-45-6789",
        "ip 10.1.2.3",
        "call +1 415 555 0132",
        "GB82 WEST 1234 5698 7654 32",
        "2001:db8::1",
        "12345",
        "and then",
        "EMP-123456",
    ]);
    prop::collection::vec(pieces, 0..6).prop_map(|v| v.join(" "))
}

fn facts_strategy() -> impl Strategy<Value = RequestFacts> {
    (
        prop::sample::select(vec!["sentiment", "intent", "qa", "unknown", "math"]),
        0usize..4000,
        text_strategy(),
        prop::sample::select(vec!["auto", "cheap", "gpt-4o"]),
        prop::option::of(prop::sample::select(vec!["vip", "joe"])),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(task, prompt_tokens, text, model, tenant, has_tools, stream)| {
                let pii = DETECTOR.contains_pii(&text);
                RequestFacts {
                    task: task.into(),
                    pii,
                    non_text: false,
                    prompt_tokens,
                    text,
                    requested_model: model.into(),
                    tenant: tenant.map(str::to_string),
                    has_tools,
                    stream,
                }
            },
        )
}

fn state_strategy() -> impl Strategy<Value = StateSnapshot> {
    (
        0usize..20,
        prop::option::of(0.0f64..3000.0),
        0.0f64..20.0,
        0.0f64..3.0,
    )
        .prop_map(|(queue_depth, ttft, day, tenant_day)| {
            let mut s = busy("slm", queue_depth, ttft);
            s.spend = spent(day, tenant_day).spend;
            s
        })
}

static DETECTOR: LazyLock<PiiDetector> = LazyLock::new(PiiDetector::new);
/// (privacy rule late?, refuse when spent?) → policy, built once for all cases.
static POLICIES: LazyLock<[[Policy; 2]; 2]> = LazyLock::new(|| {
    [
        [policy(ROUTES, BUDGETS), policy(ROUTES, BUDGETS_REFUSE)],
        [
            policy(ROUTES_PRIVACY_LATE, BUDGETS),
            policy(ROUTES_PRIVACY_LATE, BUDGETS_REFUSE),
        ],
    ]
});

fn remote_backends(p: &Policy, d: &router::policy::Decision) -> Vec<String> {
    let mut reached: Vec<&str> = d.fallback.iter().map(String::as_str).collect();
    match &d.action {
        Action::Backend(b) => reached.push(b),
        Action::Cascade(c) => {
            reached.push(&c.first);
            reached.push(&c.escalate_to);
        }
        Action::Refuse { .. } => {}
    }
    reached
        .into_iter()
        .filter(|b| p.is_remote(b))
        .map(str::to_string)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn same_request_and_state_same_decision(f in facts_strategy(), s in state_strategy(), late in any::<bool>(), refuse in any::<bool>()) {
        let p = &POLICIES[usize::from(late)][usize::from(refuse)];
        let a = decide(p, &f, &s);
        let b = decide(p, &f.clone(), &s.clone());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn detected_pii_never_reaches_a_remote_backend(f in facts_strategy(), s in state_strategy(), late in any::<bool>()) {
        let p = &POLICIES[usize::from(late)][0];
        let d = decide(p, &f, &s);
        if f.pii {
            prop_assert!(remote_backends(p, &d).is_empty(), "PII request reached {:?}: {:#?}", remote_backends(p, &d), d);
        }
        for b in ["llm", "claude"] {
            let d = decide_pinned(p, &f, &s, b);
            if f.pii {
                prop_assert!(remote_backends(p, &d).is_empty());
            }
        }
    }

    #[test]
    fn spent_budget_never_reaches_a_remote_backend(f in facts_strategy(), s in state_strategy()) {
        let p = &POLICIES[0][0];
        let d = decide(p, &f, &s);
        let over = s.spend.global_day_usd >= 10.0
            || (f.tenant.as_deref() == Some("joe") && s.spend.tenant_day_usd >= 1.0);
        if over {
            prop_assert!(remote_backends(p, &d).is_empty(), "{:#?}", d);
        }
    }
}
