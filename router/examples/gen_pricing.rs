//! Regenerates `router/data/pricing.json`, the pricing table shipped with triage, from LiteLLM's
//! `model_prices_and_context_window_backup.json` (MIT). Keeps chat models of the providers
//! triage users route to most (OpenAI, Anthropic, Google Gemini, Mistral, Groq, Together) and
//! converts USD per token to USD per 1M tokens.
//!
//! `cargo run -p router --example gen_pricing -- [LITELLM_JSON] [OUT_JSON]`
//! (defaults: `../shared/fixtures/pricing/model_prices_and_context_window_backup.json` relative
//! to the repository root, and `router/data/pricing.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "groq",
    "together_ai",
];

fn per_million(per_token: f64) -> f64 {
    (per_token * 1e6 * 1e6).round() / 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let input = args.next().map(PathBuf::from).unwrap_or_else(|| {
        root.join("../shared/fixtures/pricing/model_prices_and_context_window_backup.json")
    });
    let output = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("router/data/pricing.json"));
    let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let sha = Sha256::digest(&bytes);
    let sha_hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let all: BTreeMap<String, Value> = serde_json::from_slice(&bytes)?;
    let mut models = BTreeMap::new();
    for (name, entry) in &all {
        let provider = entry["litellm_provider"].as_str().unwrap_or("");
        if !PROVIDERS.contains(&provider) || entry["mode"].as_str() != Some("chat") {
            continue;
        }
        if name.starts_with("ft:") {
            continue; // fine-tuned model templates, not callable names
        }
        let (Some(input), Some(output)) = (
            entry["input_cost_per_token"].as_f64(),
            entry["output_cost_per_token"].as_f64(),
        ) else {
            continue;
        };
        models.insert(
            name.clone(),
            json!({
                "provider": provider,
                "input": per_million(input),
                "output": per_million(output),
            }),
        );
    }
    let count = models.len();
    let table = json!({
        "unit": "USD per 1M tokens",
        "source": "LiteLLM model_prices_and_context_window_backup.json (litellm 1.109.1 wheel), providers: openai, anthropic, gemini, mistral, groq, together_ai; chat models only",
        "license": "MIT, Copyright (c) 2023 Berri AI (see router/data/SOURCE.md)",
        "source_sha256": sha_hex,
        "models": models,
    });
    let mut text = serde_json::to_string_pretty(&table)?;
    text.push('\n');
    std::fs::write(&output, text).map_err(|e| format!("{}: {e}", output.display()))?;
    println!("wrote {count} models to {}", output.display());
    Ok(())
}
