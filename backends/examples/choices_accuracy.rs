//! Accuracy of `choices` answers from the local engine, two ways, on shipped scenarios: the old
//! grammar-constrained generation (`root ::= "a" | "b"`, greedy) against the engine's scoring of
//! every choice (the arg-max of the choice probabilities), with free answers (no `choices`, the
//! first choice the answer names) for context. A measurement, not a test: it prints n, the
//! accuracy of each way, and how well the scored answer's p(chosen) separates right from wrong
//! answers (AUROC).
//!
//! ```text
//! cargo run --release --example choices_accuracy -- models/SmolLM2-135M-Instruct.Q4_1.gguf \
//!     scenarios/sentiment.yaml scenarios/intent.yaml scenarios/financial_sentiment.yaml
//! ```
//!
//! The request is built as the harness builds it (system prompt, few-shot turns, the prompt
//! with `{{field}}`s filled from the dataset row) from the scenario's `system`, `prompt`,
//! `few_shot`, `expected` and `choices`; only JSONL datasets are read. `--verbose` prints every
//! item's answers and choice probabilities on stderr.

use std::error::Error;
use std::path::{Path, PathBuf};

use backends::llama::{grammar, LlamaEngine, LlamaEngineConfig};
use backends::{Backend, ChatMessage, ChatRequest, Role};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};

type Item = Map<String, Value>;

/// The parts of a scenario file this measurement needs.
#[derive(Deserialize)]
struct Scenario {
    name: String,
    dataset: Dataset,
    #[serde(default)]
    system: Option<String>,
    prompt: String,
    #[serde(default)]
    few_shot: Vec<Item>,
    expected: String,
    choices: Vec<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Dataset {
    path: String,
}

/// Items answered at once: the engine batches their decode steps (greedy answers do not depend
/// on what shares the batch, a tested property), so the measurement takes fewer steps.
const CONCURRENT: usize = 4;

/// One item's three answers.
struct Answers {
    expected: String,
    grammar: String,
    scored: String,
    p_chosen: f64,
    probs: Vec<(String, f64)>,
    free: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1).peekable();
    // `--verbose`: one line per item on stderr (expected, the answers, the probabilities).
    let verbose = args.next_if(|a| a == "--verbose").is_some();
    let model = args
        .next()
        .ok_or("usage: choices_accuracy [--verbose] MODEL.gguf SCENARIO.yaml...")?;
    let mut config = LlamaEngineConfig::new(model);
    config.slots = CONCURRENT;
    let engine = LlamaEngine::load(config)?;
    println!("scenario\tn\tgrammar\tscored\tfree\tAUROC p(chosen)");
    for path in args {
        let path = PathBuf::from(path);
        let scenario: Scenario = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
        let items = read_jsonl(
            &path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&scenario.dataset.path),
        )?;
        let mut answers = Vec::new();
        for chunk in items.chunks(CONCURRENT) {
            let batch = futures::future::join_all(
                chunk.iter().map(|item| answer(&engine, &scenario, item)),
            )
            .await;
            for a in batch {
                answers.push(a?);
            }
        }
        let (mut grammar_right, mut scored_right, mut free_right) = (0usize, 0usize, 0usize);
        let mut confidence = Vec::new();
        for a in &answers {
            grammar_right += usize::from(same(&a.grammar, &a.expected));
            let right = same(&a.scored, &a.expected);
            scored_right += usize::from(right);
            free_right += usize::from(
                first_mentioned(&a.free, &scenario.choices).is_some_and(|c| same(c, &a.expected)),
            );
            confidence.push((a.p_chosen, right));
            if verbose {
                let probs: Vec<String> =
                    a.probs.iter().map(|(c, p)| format!("{c}={p:.3}")).collect();
                eprintln!(
                    "expected {:?}\tgrammar {:?}\tscored {:?}\tfree {:?}\t{}",
                    a.expected,
                    a.grammar,
                    a.scored,
                    a.free,
                    probs.join(" ")
                );
            }
        }
        let n = answers.len();
        let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
        let auroc = auroc(&confidence).map_or("n/a".to_string(), |a| format!("{a:.3}"));
        println!(
            "{}\t{n}\t{:.1}%\t{:.1}%\t{:.1}%\t{auroc}",
            scenario.name,
            pct(grammar_right),
            pct(scored_right),
            pct(free_right)
        );
    }
    Ok(())
}

/// Grammar-constrained, scored, and free (no `choices`: the first choice the answer mentions).
async fn answer(
    engine: &LlamaEngine,
    scenario: &Scenario,
    item: &Item,
) -> Result<Answers, Box<dyn Error>> {
    let request = request(scenario, item)?;
    let expected = render(&scenario.expected, item)?;
    let grammar = by_grammar(engine, &request, &scenario.choices).await?;
    let free = engine
        .chat(ChatRequest {
            choices: None,
            ..request.clone()
        })
        .await?
        .text()
        .to_string();
    let scored = engine.chat(request).await?;
    let signals = scored
        .signals
        .clone()
        .ok_or("a scored answer without signals")?;
    Ok(Answers {
        expected,
        grammar,
        scored: scored.text().to_string(),
        p_chosen: signals.p_chosen().ok_or("no choice probabilities")?,
        probs: signals.choice_probs.unwrap_or_default(),
        free,
    })
}

/// The choice a free answer names first (case-insensitive), as the harness's choice scorer
/// reads a label out of a sentence; a longer choice wins at the same position.
fn first_mentioned<'a>(answer: &str, choices: &'a [String]) -> Option<&'a str> {
    let answer = answer.to_lowercase();
    choices
        .iter()
        .filter_map(|c| {
            answer
                .find(&c.to_lowercase())
                .map(|at| (at, std::cmp::Reverse(c.len()), c.as_str()))
        })
        .min()
        .map(|(_, _, c)| c)
}

/// The old way: greedy generation under the choices grammar, through the public token API.
async fn by_grammar(
    engine: &LlamaEngine,
    request: &ChatRequest,
    choices: &[String],
) -> Result<String, Box<dyn Error>> {
    let tokens = engine.prompt_tokens(request)?;
    let mut params = engine.sampling_params(request, tokens.len())?;
    params.grammar = Some(grammar::choices_grammar(choices)?);
    let mut stream = engine.submit_tokens(tokens, params)?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        if let backends::ChatEvent::Token { text: t, .. } = event? {
            text.push_str(&t);
        }
    }
    Ok(text)
}

fn same(answer: &str, expected: &str) -> bool {
    answer.trim().eq_ignore_ascii_case(expected.trim())
}

/// The chat request for one item, as the harness builds it.
fn request(scenario: &Scenario, item: &Item) -> Result<ChatRequest, Box<dyn Error>> {
    let mut messages = Vec::new();
    if let Some(system) = &scenario.system {
        messages.push(ChatMessage::new(Role::System, render(system, item)?));
    }
    for example in &scenario.few_shot {
        messages.push(ChatMessage::new(
            Role::User,
            render(&scenario.prompt, example)?,
        ));
        messages.push(ChatMessage::new(
            Role::Assistant,
            render(&scenario.expected, example)?,
        ));
    }
    messages.push(ChatMessage::new(
        Role::User,
        render(&scenario.prompt, item)?,
    ));
    Ok(ChatRequest {
        messages,
        max_tokens: scenario.max_tokens,
        temperature: Some(0.0),
        choices: Some(scenario.choices.clone()),
        ..ChatRequest::default()
    })
}

/// Fill `{{field}}` (spaces allowed inside the braces) from the item.
fn render(template: &str, item: &Item) -> Result<String, Box<dyn Error>> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = rest[open + 2..open + 2 + close].trim();
        match item.get(name) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Null) => {}
            Some(other) => out.push_str(&other.to_string()),
            None => return Err(format!("item has no field `{name}`").into()),
        }
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_jsonl(path: &Path) -> Result<Vec<Item>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Probability that a right answer has a higher p(chosen) than a wrong one (ties count half);
/// `None` when all answers are right or all wrong.
fn auroc(scored: &[(f64, bool)]) -> Option<f64> {
    let right: Vec<f64> = scored.iter().filter(|s| s.1).map(|s| s.0).collect();
    let wrong: Vec<f64> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
    if right.is_empty() || wrong.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for r in &right {
        for w in &wrong {
            wins += if r > w {
                1.0
            } else if r == w {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (right.len() * wrong.len()) as f64)
}
