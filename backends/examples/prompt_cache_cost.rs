//! Engine busy seconds per item with the prompt cache off and on, on shipped `choices`
//! scenarios: a measurement, not a test. Two engines (1 slot, `score_lanes: 8`, the shipped
//! setting) answer every item of each scenario sequentially, in interleaved rounds (off, on, on,
//! off, …, the order flipped every round so drift favours neither); it prints, per scenario and
//! round, the mean busy seconds per item (`ChatResponse::timings.engine_busy_secs`, what a local
//! request is billed by), the mean cached prompt tokens, the ratio on/off within the round, and
//! how many answers differ between the two engines.
//!
//! ```text
//! cargo run --release -p backends --example prompt_cache_cost -- ROUNDS \
//!     models/SmolLM2-135M-Instruct.Q4_1.gguf scenarios/intent.yaml scenarios/sentiment.yaml
//! ```
//!
//! Requests are built as the harness builds them (system prompt, few-shot turns, the prompt with
//! `{{field}}`s filled from the JSONL dataset row), as in the `choices_accuracy` example.

use std::error::Error;
use std::path::{Path, PathBuf};

use backends::llama::{LlamaEngine, LlamaEngineConfig};
use backends::{Backend, ChatMessage, ChatRequest, Role};
use serde::Deserialize;
use serde_json::{Map, Value};

type Item = Map<String, Value>;

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

/// One pass over a scenario's items: mean busy seconds and cached tokens per item, the answers.
struct Pass {
    busy_per_item: f64,
    cached_per_item: f64,
    prompt_per_item: f64,
    answers: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: prompt_cache_cost ROUNDS MODEL.gguf SCENARIO.yaml...";
    let rounds: usize = args.next().ok_or(usage)?.parse()?;
    let model = PathBuf::from(args.next().ok_or(usage)?);
    let load = |cache: bool| {
        let mut config = LlamaEngineConfig::new(&model);
        config.slots = 1;
        config.score_lanes = 8;
        config.prompt_cache = cache;
        LlamaEngine::load(config)
    };
    let (off, on) = (load(false)?, load(true)?);
    println!("scenario\tround\toff s/item\ton s/item\ton/off\tprompt tok/item\tcached tok/item\tanswers differing");
    for path in args {
        let path = PathBuf::from(path);
        let scenario: Scenario = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
        let items = read_jsonl(
            &path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&scenario.dataset.path),
        )?;
        let requests = items
            .iter()
            .map(|item| request(&scenario, item))
            .collect::<Result<Vec<_>, _>>()?;
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = pass(&off, &requests).await?;
                (a, pass(&on, &requests).await?)
            } else {
                let b = pass(&on, &requests).await?;
                (pass(&off, &requests).await?, b)
            };
            let differing = a
                .answers
                .iter()
                .zip(&b.answers)
                .filter(|(x, y)| x != y)
                .count();
            println!(
                "{}\t{}\t{:.4}\t{:.4}\t{:.3}\t{:.1}\t{:.1}\t{}",
                scenario.name,
                round + 1,
                a.busy_per_item,
                b.busy_per_item,
                b.busy_per_item / a.busy_per_item,
                b.prompt_per_item,
                b.cached_per_item,
                differing
            );
        }
    }
    Ok(())
}

async fn pass(engine: &LlamaEngine, requests: &[ChatRequest]) -> Result<Pass, Box<dyn Error>> {
    let (mut busy, mut cached, mut prompt) = (0.0, 0.0, 0.0);
    let mut answers = Vec::new();
    for request in requests {
        let response = engine.chat(request.clone()).await?;
        busy += response.timings.engine_busy_secs;
        if let Some(usage) = &response.usage {
            cached += f64::from(usage.cached_tokens().unwrap_or(0));
            prompt += f64::from(usage.prompt_tokens);
        }
        answers.push(response.text().to_string());
    }
    let n = requests.len().max(1) as f64;
    Ok(Pass {
        busy_per_item: busy / n,
        cached_per_item: cached / n,
        prompt_per_item: prompt / n,
        answers,
    })
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
