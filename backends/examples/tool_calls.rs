//! Local tool-call validity on triage's small tool-use set (`scenarios/data/tool_use.json`: 24
//! requests, each offered 2–4 tools, with the tool that should be called). A measurement, not a
//! test: for `tool_choice: required` and `auto` it prints how many answers were a complete call,
//! valid JSON arguments, arguments matching the called tool's schema, and the right tool.
//!
//! ```text
//! cargo run --release --example tool_calls -- models/SmolLM2-135M-Instruct.Q4_1.gguf \
//!     scenarios/data/tool_use.json
//! ```
//!
//! Greedy (temperature 0), `max_tokens` 128, all items submitted at once to a 4-slot engine.
//! `--verbose` prints every answer on stderr.

use std::error::Error;
use std::path::PathBuf;

use backends::llama::{LlamaEngine, LlamaEngineConfig};
use backends::{Backend, ChatRequest, ChatResponse, FinishReason};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct Set {
    tools: Map<String, Value>,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    prompt: String,
    tools: Vec<String>,
    expected: String,
}

#[derive(Default)]
struct Tally {
    n: usize,
    called: usize,
    complete: usize,
    json: usize,
    schema: usize,
    right: usize,
}

fn request(set: &Set, item: &Item, choice: &str) -> Result<ChatRequest, Box<dyn Error>> {
    let mut tools = Vec::new();
    for name in &item.tools {
        let spec = set
            .tools
            .get(name)
            .ok_or_else(|| format!("item {:?} offers unknown tool `{name}`", item.prompt))?;
        tools.push(json!({"type": "function", "function": {"name": name,
            "description": spec["description"], "parameters": spec["parameters"]}}));
    }
    Ok(serde_json::from_value(json!({
        "model": "local", "temperature": 0, "max_tokens": 128,
        "messages": [{"role": "user", "content": item.prompt}],
        "tools": tools, "tool_choice": choice,
    }))?)
}

fn score(set: &Set, item: &Item, response: &ChatResponse, tally: &mut Tally, verbose: bool) {
    tally.n += 1;
    let call = response.choices[0]
        .message
        .tool_calls
        .as_ref()
        .and_then(|c| c.first());
    if verbose {
        eprintln!(
            "{:?} -> {:?} {:?}",
            item.prompt,
            response.finish_reason(),
            call.map(|c| (&c.function.name, &c.function.arguments))
                .ok_or(response.text())
        );
    }
    let Some(call) = call else { return };
    tally.called += 1;
    if response.finish_reason() == Some(&FinishReason::ToolCalls) {
        tally.complete += 1;
    }
    if call.function.name == item.expected {
        tally.right += 1;
    }
    let Ok(arguments) = serde_json::from_str::<Value>(&call.function.arguments) else {
        return;
    };
    tally.json += 1;
    let valid = set
        .tools
        .get(&call.function.name)
        .and_then(|spec| jsonschema::validator_for(&spec["parameters"]).ok())
        .is_some_and(|v| v.is_valid(&arguments));
    if valid {
        tally.schema += 1;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "--verbose");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [model, data] = paths.as_slice() else {
        return Err("usage: tool_calls MODEL.gguf TOOL_USE.json [--verbose]".into());
    };
    let set: Set = serde_json::from_str(&std::fs::read_to_string(data)?)?;
    let mut config = LlamaEngineConfig::new(PathBuf::from(model));
    config.slots = 4;
    config.context_per_slot = 1024;
    let engine = LlamaEngine::load(config)?;
    println!("model {model}, {} items", set.items.len());
    for choice in ["required", "auto"] {
        let requests = set
            .items
            .iter()
            .map(|item| request(&set, item, choice))
            .collect::<Result<Vec<_>, _>>()?;
        let answers = futures::future::join_all(requests.into_iter().map(|r| engine.chat(r))).await;
        let mut tally = Tally::default();
        for (item, answer) in set.items.iter().zip(answers) {
            score(&set, item, &answer?, &mut tally, verbose);
        }
        let pct = |k: usize| 100.0 * k as f64 / tally.n.max(1) as f64;
        println!(
            "tool_choice {choice:8}: called {}/{n} ({:.0}%), complete {:.0}%, JSON arguments \
             {:.0}%, schema-valid {:.0}%, right tool {:.0}%",
            tally.called,
            pct(tally.called),
            pct(tally.complete),
            pct(tally.json),
            pct(tally.schema),
            pct(tally.right),
            n = tally.n,
        );
    }
    Ok(())
}
