#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! No panic reachable from input (issue 14, item 1): property tests over arbitrary Unicode for
//! the harness's readers of user-written and model-written text — the scenario loader
//! (`scenario::parse_yaml` then `Scenario::from_file`) and the suite loader (`Suite::load`) on
//! arbitrary text and on mutated valid files, `{{field}}` templates, and every scorer on an
//! arbitrary model answer. Errors are fine (and must say something); panics are not.
//!
//! Case counts are chosen so each property runs in about a second in the release profile (`make
//! test`); `PROPTEST_CASES=100000 cargo test --release -p bench --test no_panic` runs more.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bench::scenario::{parse_yaml, Scenario, ScenarioFile, Suite, SuiteFile};
use bench::score::{ScoreInput, Scorer, ScorerSpec};
use bench::template::{Item, Template};
use proptest::prelude::*;
use serde_json::{json, Value};

/// `cases` per property unless `PROPTEST_CASES` asks for another number ("more on demand").
fn cases(cases: u32) -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(cases)
    }
}

/// Pieces of hostile text: CJK, combining marks, right-to-left text and controls, emoji with
/// ZWJ sequences, zero-width characters, control characters, and template and YAML syntax.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "中", "文字", "e\u{301}", "\u{301}", "é", "\u{0627}\u{0644}", "עברית", "\u{200F}",
            "\u{202E}", "😀", "👩‍👩‍👧", "\u{FE0F}", "１２", "\u{200B}", "\u{FEFF}", "\u{0}",
            "\u{1B}[31m", "\r\n", "\n", "\t", " ", "{{", "}}", "{{ x }}", "{{a.b}}", "{{label}}",
            "{{text}}", "{", "}", "[", "]", ":", "- ", "#", "&a", "*a", "!!", "|", ">", "\"", "'",
            "positive", "negative", "42", "-3.5e7", "1e999", "NaN", "{\"a\": 1}", "null",
        ])
        .prop_map(String::from),
        2 => any::<char>().prop_map(String::from),
        1 => "\\PC{0,6}",
    ]
}

fn hostile(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..max).prop_map(|p| p.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), hostile(30)]
}

/// A directory with one valid scenario (`s.yaml`) for suites to name; scenario paths in
/// arbitrary text resolve under it and mostly do not exist.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.yaml"), SCENARIOS[0]).unwrap();
        dir
    })
    .path()
}

/// Valid scenario files with inline items, one per scorer family.
const SCENARIOS: [&str; 4] = [
    "name: sent\ntask: sentiment\nsystem: \"Answer {{lang}}\"\nprompt: \"Review: {{text}}\"\nexpected: \"{{label}}\"\nscorer: {kind: choice, choices: [positive, negative]}\nmax_tokens: 8\ntemperature: 0\nstop: [\"\\n\"]\ndataset:\n  items:\n    - {text: \"great 😀\", label: positive, lang: en}\n    - {text: \"糟糕\", label: negative, lang: zh}\n",
    "name: ex\ntask: extraction\nprompt: \"Extract from {{ doc }}\"\nexpected: \"{{answer}}\"\nscorers:\n  - {kind: json_match, fields: [name], pass_at: 0.5}\n  - {kind: json_valid, schema: {type: object, properties: {name: {type: string}}}}\njson_schema: {type: object, properties: {name: {type: string}}, required: [name]}\nfew_shot:\n  - {doc: \"Ann\", answer: \"{\\\"name\\\": \\\"Ann\\\"}\"}\ndataset:\n  items:\n    - {doc: \"Bob wrote\", answer: \"{\\\"name\\\": \\\"Bob\\\"}\"}\n  limit: 5\n  seed: 3\n",
    "name: qa\ntask: qa\nprompt: \"{{q}}\"\nexpected: \"{{a}}\"\nscorers:\n  - {kind: numeric, tolerance: 0.5, relative: 0.01}\n  - {kind: token_f1, pass_at: 0.5}\n  - {kind: rouge_l}\n  - {kind: chrf, pass_at: 0.3}\n  - {kind: normalized_exact}\n  - {kind: contains, case_sensitive: true}\n  - {kind: regex, pattern: \"^[0-9]+$\"}\nchoices: [\"1\", \"2\"]\nslo: {ttft_ms: 500, e2e_ms: 2000}\ndataset:\n  items:\n    - {q: \"1+1?\", a: \"2\"}\n    - {q: \"x\", a: 3}\n",
    "name: pii\ntask: pii_redaction\nprompt: \"Redact: {{text}}\"\nscorer: {kind: pii_leak, field: pii, detector: true}\ndataset:\n  items:\n    - {text: \"mail a@b.io\", pii: [\"a@b.io\"]}\n",
];

const SUITE: &str = "name: s\ndescription: a suite\nscenarios:\n  - s.yaml\n  - {path: s.yaml, limit: 1, max_tokens: 4, few_shot_from_items: 0}\ntargets: [slm, {name: llm}]\nload: {mode: sequential, warmup: 1, timeout_s: 120}\n";

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// YAML scalars and syntax that break assumptions: huge, negative and odd numbers, empty
/// values, anchors and aliases, tags, flow openers.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e30",
            "-1",
            "0",
            "-0.0",
            ".nan",
            ".inf",
            "18446744073709551616",
            "4294967296",
            "1e-30",
            "~",
            "null",
            "[]",
            "{}",
            "''",
            "*a",
            "&a x",
            "!!binary AAAA",
            "? x",
            "- ",
            ": ",
            "|",
            ">",
            "[[[[[[",
            "{{{{",
            "{kind: exact}",
            "{kind: judge}",
            "{kind: choice}",
            "{kind: regex, pattern: \"(\"}",
            "sequential",
            "closed",
            "open",
            "poisson",
            "{mode: open, rate: 1e30}",
            "{mode: closed, concurrency: 0}",
            "s.yaml",
            "../s.yaml",
            "/dev/null",
            "{{",
            "}}",
        ])
        .prop_map(String::from),
        hostile(4),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
    ]
}

/// Apply up to a few edits — delete a range, insert a scalar, replace a range — at character
/// boundaries.
fn mutate(mut text: String, edits: &[(prop::sample::Index, usize, u8, String)]) -> String {
    for (at, n, kind, s) in edits {
        let start = boundary(&text, at.index(text.len() + 1));
        let end = boundary(&text, start + n);
        match kind % 3 {
            0 => text.replace_range(start..end, ""),
            1 => text.insert_str(start, s),
            _ => text.replace_range(start..end, s),
        }
    }
    text
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, usize, u8, String)>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0usize..30,
            any::<u8>(),
            scalar(),
        ),
        1..4,
    )
}

/// Replace the `pick`-th leaf of a YAML value with `with`.
fn replace_leaf(value: &mut serde_yaml::Value, pick: &mut usize, with: &serde_yaml::Value) -> bool {
    use serde_yaml::Value;
    match value {
        Value::Mapping(m) => m.iter_mut().any(|(_, v)| replace_leaf(v, pick, with)),
        Value::Sequence(s) => s.iter_mut().any(|v| replace_leaf(v, pick, with)),
        Value::Tagged(t) => replace_leaf(&mut t.value, pick, with),
        leaf => {
            if *pick == 0 {
                *leaf = with.clone();
                true
            } else {
                *pick -= 1;
                false
            }
        }
    }
}

fn mutate_values(text: &str, leaves: Vec<(usize, String)>) -> String {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    for (mut at, with) in leaves {
        let with = serde_yaml::from_str(&with).unwrap_or(serde_yaml::Value::String(with));
        replace_leaf(&mut value, &mut at, &with);
    }
    // serde_yaml cannot write every value it reads (a mapping as a mapping key): such a
    // mutation is simply not made.
    serde_yaml::to_string(&value).unwrap_or_else(|_| text.to_string())
}

fn leaves() -> impl Strategy<Value = Vec<(usize, String)>> {
    prop::collection::vec((0usize..40, scalar()), 1..4)
}

/// Load a scenario from text as `bench run` does; when it loads, build every item's request.
fn load_scenario(text: &str) -> Result<(), TestCaseError> {
    let path = dir().join("scenario.yaml");
    let loaded = parse_yaml::<ScenarioFile>(text, &path)
        .and_then(|raw| Scenario::from_file(raw, &path, None));
    match loaded {
        Ok(scenario) => {
            for item in &scenario.items {
                let _ = scenario.request(item);
            }
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// Load a suite from text as `bench run --suite` does (written next to `s.yaml`).
fn load_suite(text: &str, name: &str) -> Result<(), TestCaseError> {
    let path: PathBuf = dir().join(name);
    let _ = parse_yaml::<SuiteFile>(text, &path);
    std::fs::write(&path, text).unwrap();
    if let Err(e) = Suite::load(&path) {
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn scenario_any_text(text in prop_oneof![any::<String>(), hostile(40)]) {
        load_scenario(&text)?;
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn scenario_mutated_text(pick in any::<prop::sample::Index>(), edits in edits()) {
        load_scenario(&mutate(SCENARIOS[pick.index(SCENARIOS.len())].to_string(), &edits))?;
    }

    #[test]
    fn scenario_mutated_values(pick in any::<prop::sample::Index>(), leaves in leaves()) {
        load_scenario(&mutate_values(SCENARIOS[pick.index(SCENARIOS.len())], leaves))?;
    }
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn suite_any_or_mutated_text(
        text in prop_oneof![any::<String>(), hostile(30)],
        edits in edits(),
        leaves in leaves(),
    ) {
        load_suite(&text, "any.yaml")?;
        load_suite(&mutate(SUITE.to_string(), &edits), "edited.yaml")?;
        load_suite(&mutate_values(SUITE, leaves), "values.yaml")?;
    }
}

/// Items whose values are arbitrary JSON with hostile strings.
fn item() -> impl Strategy<Value = Item> {
    let value = prop_oneof![
        text().prop_map(Value::String),
        any::<f64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        prop::collection::vec(text().prop_map(Value::String), 0..3).prop_map(Value::Array),
    ];
    let key = prop_oneof![
        prop::sample::select(vec!["text", "label", "x", "a.b", "pii", "answer"])
            .prop_map(String::from),
        hostile(2),
    ];
    prop::collection::vec((key, value), 0..5).prop_map(|kv| kv.into_iter().collect())
}

/// One scorer of every kind but the judge (which needs a model to ask).
fn scorers() -> &'static [Scorer] {
    static SCORERS: OnceLock<Vec<Scorer>> = OnceLock::new();
    SCORERS.get_or_init(|| {
        [
            json!({"kind": "exact"}),
            json!({"kind": "normalized_exact"}),
            json!({"kind": "choice", "choices": ["positive", "negative", "中立", "e\u{301}"]}),
            json!({"kind": "contains"}),
            json!({"kind": "contains", "case_sensitive": true}),
            json!({"kind": "regex", "pattern": "(?i)^\\p{Han}+|[0-9]+$"}),
            json!({"kind": "numeric"}),
            json!({"kind": "numeric", "tolerance": 0.5, "relative": 0.1}),
            json!({"kind": "token_f1", "pass_at": 0.5}),
            json!({"kind": "rouge_l"}),
            json!({"kind": "chrf"}),
            json!({"kind": "json_valid"}),
            json!({"kind": "json_valid", "schema": {"type": "object", "required": ["name"]}}),
            json!({"kind": "json_match"}),
            json!({"kind": "json_match", "fields": ["name", "a.b"]}),
            json!({"kind": "pii_leak", "field": "pii"}),
            json!({"kind": "pii_leak", "field": "pii", "detector": true}),
        ]
        .into_iter()
        .map(|v| Scorer::new(&serde_json::from_value::<ScorerSpec>(v).unwrap()).unwrap())
        .collect()
    })
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn template_any_text(template in text(), item in item()) {
        let t = Template::parse(&template);
        let _ = t.fields().count();
        let _ = t.render(&item);
        // Text without `{{` is its own rendering.
        if !template.contains("{{") {
            prop_assert_eq!(t.render(&Item::new()).unwrap(), template);
        }
    }

    #[test]
    fn scorers_any_answer(
        output in text(),
        expected in prop::option::of(text()),
        item in item(),
        json_output in any::<bool>(),
    ) {
        let output = if json_output {
            json!({"name": output, "a": {"b": expected}}).to_string()
        } else {
            output
        };
        for scorer in scorers() {
            let _ = scorer.check_item(&item, expected.as_deref());
            let input = ScoreInput {
                output: &output,
                expected: expected.as_deref(),
                item: &item,
                prompt: "p",
            };
            let result = futures::executor::block_on(scorer.score(&input, None));
            prop_assert!(
                (0.0..=1.0).contains(&result.score),
                "{} gave {} for {:?}", scorer.kind(), result.score, output
            );
        }
    }
}
