#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! No panic reachable from input (issue 14, item 1): property tests over arbitrary Unicode for
//! every router function that reads request text — the PII detector (a string, and a whole
//! `ChatRequest` through `explain::gather_facts`), the task classifier (rules and a learned
//! model), request parsing (`gateway::chat::parse_request` on arbitrary bytes and on arbitrary
//! JSON values) and the config loader (`Config::parse` on arbitrary text and on mutated valid
//! configs). Each property only asks for an answer or a typed error, never a panic, plus the
//! invariants that make the answer usable (spans on character boundaries, probabilities that sum
//! to one, errors that say something).
//!
//! Case counts are chosen so each property runs in about a second in the release profile (`make
//! test`); `PROPTEST_CASES=100000 cargo test --release -p router --test no_panic` runs more.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use backends::{ChatMessage, ChatRequest, Role};
use proptest::prelude::*;
use router::classifier::{train, Classifier, Example, TaskRule, TrainOptions};
use router::config::Config;
use router::explain::gather_facts;
use router::gateway::chat::parse_request;
use router::pii::{PiiDetector, PiiSpan};

/// `cases` per property unless `PROPTEST_CASES` asks for another number ("more on demand").
fn cases(cases: u32) -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(cases)
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Pieces of hostile text: CJK, combining marks, right-to-left text and controls, emoji with
/// ZWJ sequences, fullwidth and other Unicode digits, zero-width and format characters, case
/// folding oddities, control characters, and the ASCII shapes PII candidates are made of.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "中", "文字", "日本語", "한국어", "e\u{301}", "\u{301}", "\u{308}\u{308}", "é",
            "\u{0627}\u{0644}\u{0639}\u{0631}\u{0628}\u{064A}\u{0629}", "עברית", "\u{200F}",
            "\u{200E}", "\u{202E}", "\u{202C}", "\u{2067}", "😀", "👩‍👩‍👧", "🇩🇪", "\u{FE0F}",
            "１２３", "٣٤٥", "\u{FF20}", "\u{200B}", "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{00A0}",
            "\u{2011}", "ſ", "\u{212A}", "İ", "ß", "\u{0}", "\u{7}", "\u{1B}[31m", "\r\n", "\t",
            "\u{FFFD}", "\u{E000}0\u{E001}", "\u{10FFFF}",
            "AB12", "GB82", "de89", "WEST", "4111", "123-45-6789", "+1 (415) ", "555-0132",
            "192.168.", "2001:db8::", "::", "@", "a@b.io", " ", "-", ".", ":", "+", "(", ")",
            "x", "ext. ", "\n", "{{", "}}", "<|im_end|>", "<|im_start|>", "sentiment", "review",
        ])
        .prop_map(String::from),
        2 => "[0-9]{1,8}",
        2 => any::<char>().prop_map(String::from),
        1 => "\\PC{0,6}",
    ]
}

/// Hostile text made of up to `max` pieces.
fn hostile(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..max).prop_map(|p| p.concat())
}

/// Arbitrary text: proptest's whole-Unicode strings, or hostile pieces.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), hostile(40)]
}

/// Every span lies inside the text on character boundaries, sorted and without overlaps.
fn check_spans(text: &str, spans: &[PiiSpan]) -> Result<(), TestCaseError> {
    for s in spans {
        prop_assert!(s.start < s.end && s.end <= text.len(), "{s:?} in {text:?}");
        prop_assert!(
            text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
            "{s:?} cuts a character in {text:?}"
        );
    }
    for pair in spans.windows(2) {
        prop_assert!(pair[0].end <= pair[1].start, "{spans:?} in {text:?}");
    }
    Ok(())
}

/// Every built-in kind (built once: compiling the patterns costs more than a scan).
fn detector() -> &'static PiiDetector {
    static DETECTOR: OnceLock<PiiDetector> = OnceLock::new();
    DETECTOR.get_or_init(PiiDetector::new)
}

/// Every built-in kind and two custom patterns, one of which can match the empty string.
fn custom_detector() -> &'static PiiDetector {
    static DETECTOR: OnceLock<PiiDetector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let custom = vec![
            PiiDetector::custom_pattern("employee", r"EMP-\d{3,6}").unwrap(),
            PiiDetector::custom_pattern("maybe_empty", r"\p{Han}*").unwrap(),
        ];
        PiiDetector::with_kinds(&router::pii::PiiKind::BUILT_IN, custom)
    })
}

/// The shipped config (`triage.yaml`): its classifier rules and model (when `make build` has
/// trained it) and every PII kind.
fn shipped() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::load(&repo_root().join("triage.yaml")).unwrap())
}

/// A classifier with config rules and a model trained here on a handful of examples, so the
/// learned path is exercised whether or not the shipped model file exists.
fn classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| {
        let examples: Vec<Example> = [
            (
                "Is this review positive or negative? Great phone.",
                "sentiment",
            ),
            (
                "Classify the sentiment: terrible service, never again",
                "sentiment",
            ),
            ("What is the capital of France?", "qa"),
            ("Who wrote Hamlet?", "qa"),
            ("Extract the name and date from: Ann, 3 May", "extraction"),
            ("Pull out the e-mail address in this text", "extraction"),
            ("Translate to German: good morning", "translation"),
            ("将这句话翻译成英文：早上好", "translation"),
        ]
        .into_iter()
        .map(|(text, task)| Example {
            text: text.into(),
            task: task.into(),
        })
        .collect();
        let model = train(&examples, &TrainOptions::default()).unwrap();
        let rules = vec![
            TaskRule::new(
                "sentiment#1",
                "sentiment",
                &["sentiment".into(), "感情".into()],
                Some(r"(?i)\b(positive|negative)\b.*\breview\b"),
            )
            .unwrap(),
            TaskRule::new("extraction#1", "extraction", &["extract".into()], None).unwrap(),
        ];
        Classifier {
            rules,
            model: Some(router::classifier::LearnedModel::Ngram(model)),
            threshold: 0.5,
            missing_model: None,
        }
    })
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(vec![
        Role::System,
        Role::Developer,
        Role::User,
        Role::Assistant,
        Role::Tool,
        Role::Function,
    ])
}

/// A request of 1–4 messages of arbitrary text, with an arbitrary `metadata.task` sometimes.
fn request() -> impl Strategy<Value = ChatRequest> {
    (
        prop::collection::vec((role(), text()), 1..4),
        prop::option::of(text()),
        text(),
    )
        .prop_map(|(messages, task, model)| {
            let mut request = ChatRequest::user(model, "");
            request.messages = messages
                .into_iter()
                .map(|(role, text)| ChatMessage::new(role, text))
                .collect();
            request.metadata = task.map(|t| {
                let mut m = serde_json::Map::new();
                m.insert("task".into(), serde_json::Value::String(t));
                m
            });
            request
        })
}

/// Arbitrary JSON values, strings drawn from hostile text.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![1e300, -1e300, 1e30, -0.0, 4294967296.0, 1e-300])
            .prop_map(Value::from),
        hostile(8).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Object keys: mostly the fields a chat request has, so values reach the typed fields.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "model", "messages", "role", "content", "type", "text", "image_url", "url",
            "tool_calls", "function", "name", "arguments", "tools", "tool_choice", "max_tokens",
            "max_completion_tokens", "temperature", "top_p", "n", "stop", "stream",
            "stream_options", "include_usage", "seed", "logprobs", "top_logprobs",
            "response_format", "json_schema", "schema", "strict", "choices", "metadata", "task",
            "user", "logit_bias", "presence_penalty", "frequency_penalty", "tool_call_id",
        ])
        .prop_map(String::from),
        1 => hostile(3),
    ]
}

/// A JSON object shaped like a chat request whose fields hold arbitrary values.
fn chat_like() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let message = (
        prop::sample::select(vec![
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "x",
        ]),
        prop_oneof![
            text().prop_map(Value::String),
            prop::collection::vec(
                text().prop_map(|t| json!({"type": "text", "text": t})),
                0..3
            )
            .prop_map(Value::Array),
            json(),
        ],
        prop::collection::vec((key(), json()), 0..3),
    )
        .prop_map(|(role, content, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("role".into(), Value::from(role));
            m.insert("content".into(), content);
            m.extend(extra);
            Value::Object(m)
        });
    (
        prop_oneof![Just("auto".to_string()), text()],
        prop::collection::vec(message, 0..4),
        prop::collection::vec((key(), json()), 0..4),
    )
        .prop_map(|(model, messages, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("model".into(), Value::String(model));
            m.insert("messages".into(), Value::Array(messages));
            m.extend(extra);
            Value::Object(m)
        })
}

/// What the gateway does with a parsed request before routing: its text, PII and task.
fn gather(request: &ChatRequest, header: Option<&str>) -> Result<(), TestCaseError> {
    let config = shipped();
    let facts = gather_facts(config, request, header, Some("tenant"), None, None);
    // A finding's span (in its field's own string) is a forward range. (A field's path may be
    // empty: an unmodelled key `""` at the top level.)
    for f in &facts.pii {
        prop_assert!(f.span.is_none_or(|(a, b)| a < b), "{f:?}");
    }
    prop_assert!(!facts.facts.task.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(cases(4000))]

    #[test]
    fn pii_detect_any_text(text in text()) {
        let detector = detector();
        let spans = detector.detect(&text);
        check_spans(&text, &spans)?;
        prop_assert_eq!(detector.contains_pii(&text), !spans.is_empty());
    }

    #[test]
    fn pii_detect_with_custom_patterns(text in text()) {
        check_spans(&text, &custom_detector().detect(&text))?;
    }

    #[test]
    fn classifier_any_text(text in text()) {
        let c = classifier();
        let verdict = c.classify(&text);
        prop_assert!((0.0..=1.0).contains(&verdict.confidence), "{verdict:?}");
        prop_assert!(!verdict.task.is_empty() && !verdict.explanation.is_empty());
        let Some(router::classifier::LearnedModel::Ngram(model)) = c.model.as_ref() else {
            panic!("the test classifier is an n-gram model");
        };
        let p = model.probabilities(&text);
        prop_assert!(p.iter().all(|x| x.is_finite()), "{p:?}");
        prop_assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-3, "{p:?}");
        let (task, prob) = model.predict(&text);
        prop_assert!(!task.is_empty() && prob.is_finite());
        let _ = model.top_features(&text, 0, 5);
        let _ = shipped().classifier.classify(&text);
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn facts_of_any_request(request in request(), header in prop::option::of(text())) {
        gather(&request, header.as_deref())?;
    }
}

proptest! {
    #![proptest_config(cases(4000))]

    #[test]
    fn parse_request_any_bytes(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        // Valid JSON with a byte that is not UTF-8 (a lone high byte, a cut sequence) inside.
        (chat_like(), any::<prop::sample::Index>(), prop::sample::select(vec![
            vec![0xff], vec![0x80], vec![0xc3], vec![0xe4, 0xb8], vec![0xf0, 0x9f, 0x98], vec![0xed, 0xa0, 0x80],
        ])).prop_map(|(v, at, bad)| {
            let mut b = serde_json::to_vec(&v).unwrap();
            let at = at.index(b.len() + 1);
            b.splice(at..at, bad);
            b
        }),
    ]) {
        match parse_request(&bytes) {
            Ok(request) => gather(&request, None)?,
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn parse_request_any_json(value in prop_oneof![json(), chat_like(), chat_like()]) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Ok(request) = parse_request(&bytes) {
            gather(&request, None)?;
            // What the gateway forwards must serialize again.
            serde_json::to_vec(&request).unwrap();
        }
    }
}

/// The shipped and example configs, as text.
fn valid_configs() -> &'static [String] {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let root = repo_root();
        let mut out = vec![std::fs::read_to_string(root.join("triage.yaml")).unwrap()];
        for entry in std::fs::read_dir(root.join("examples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                out.push(std::fs::read_to_string(path).unwrap());
            }
        }
        out
    })
}

/// The nearest character boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One edit of a config's text: delete a range, insert hostile text or a hostile YAML scalar,
/// or replace a range.
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    Replace(prop::sample::Index, usize, String),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e30",
            "-1",
            "0",
            "-0.0",
            ".nan",
            ".inf",
            "-.inf",
            "18446744073709551616",
            "4294967296",
            "9999999999999999999999",
            "1e-30",
            "0s",
            "1e30s",
            "-5s",
            "99999999999999999999h",
            "1.5ms",
            "~",
            "null",
            "[]",
            "{}",
            "''",
            "\"\"",
            "*a",
            "&a x",
            "!!binary AAAA",
            "? x",
            "- ",
            ": ",
            "|",
            ">",
            "%",
            "@",
            "`",
            "\t",
            "\"\\u0000\"",
            "[[[[[[[[[[",
            "{{{{{{",
            "::",
            "0.0.0.0:99999",
            "[::1]:0",
            "llama",
            "openai",
            "anthropic",
            "slm",
            "llm",
            "pii",
            "task",
            "cascade",
            "spill",
            "fallback",
        ])
        .prop_map(String::from),
        hostile(4),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<prop::sample::Index>(), scalar()).prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<prop::sample::Index>(), 0usize..24, scalar())
            .prop_map(|(i, n, s)| Edit::Replace(i, n, s)),
    ]
}

fn apply(text: &mut String, edit: &Edit) {
    let len = text.len() + 1;
    match edit {
        Edit::Delete(at, n) => {
            let start = boundary(text, at.index(len));
            let end = boundary(text, start + n);
            text.replace_range(start..end, "");
        }
        Edit::Insert(at, s) => {
            let at = boundary(text, at.index(len));
            text.insert_str(at, s);
        }
        Edit::Replace(at, n, s) => {
            let start = boundary(text, at.index(len));
            let end = boundary(text, start + n);
            text.replace_range(start..end, s);
        }
    }
}

/// Replace the `pick`-th leaf of a YAML value (mappings and sequences walked in order) with
/// `with`; returns whether a leaf was replaced.
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

/// Parse a config relative to a directory that holds no model files, so every case does not
/// read the classifier model (a missing one is a warning, not an error).
fn parse_config(text: &str) {
    if let Err(e) = Config::parse(text, "triage.yaml", Path::new("/nonexistent/triage")) {
        assert!(!e.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn config_parse_any_text(text in prop_oneof![any::<String>(), hostile(30)]) {
        parse_config(&text);
    }
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn config_parse_mutated_text(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let configs = valid_configs();
        let mut text = configs[pick.index(configs.len())].clone();
        for e in &edits {
            apply(&mut text, e);
        }
        parse_config(&text);
    }

}

proptest! {
    #![proptest_config(cases(600))]

    #[test]
    fn config_parse_mutated_values(
        pick in any::<prop::sample::Index>(),
        leaves in prop::collection::vec((0usize..200, scalar()), 1..4),
    ) {
        let configs = valid_configs();
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(&configs[pick.index(configs.len())]).unwrap();
        for (mut at, with) in leaves {
            let with = serde_yaml::from_str(&with)
                .unwrap_or(serde_yaml::Value::String(with));
            replace_leaf(&mut value, &mut at, &with);
        }
        // serde_yaml cannot write every value it reads (a mapping as a mapping key).
        if let Ok(text) = serde_yaml::to_string(&value) {
            parse_config(&text);
        }
    }
}
