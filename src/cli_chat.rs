//! `triage chat`: one streamed answer from a local model, with its timings.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use backends::llama::{LlamaEngine, LlamaEngineConfig};
use backends::{ChatEvent, ChatMessage, ChatRequest, Role};
use futures::StreamExt;

#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    /// Path of a GGUF model file.
    #[arg(long)]
    model: PathBuf,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// 0 is greedy (deterministic).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop strings (repeatable); never part of the output.
    #[arg(long)]
    stop: Vec<String>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Render the prompt as a base model's completion text (`Input: …` / `Answer:`) instead of
    /// chat turns: auto (when the model has no chat template), on (`--completion` alone) or off.
    #[arg(long, value_name = "MODE", default_value = "auto", num_args = 0..=1, default_missing_value = "on")]
    completion: backends::CompletionMode,
    /// The user's message.
    prompt: String,
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let mut config = LlamaEngineConfig::new(&args.model);
    config.slots = 1;
    config.completion_mode = args.completion;
    if let Some(t) = args.threads {
        config.threads = t;
        config.threads_batch = t;
    }
    let load_started = Instant::now();
    let engine = tokio::task::spawn_blocking(move || LlamaEngine::load(config))
        .await
        .context("model loading task failed")??;
    let load_secs = load_started.elapsed().as_secs_f64();

    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(ChatMessage::new(Role::System, system));
    }
    messages.push(ChatMessage::new(Role::User, args.prompt));
    let request = ChatRequest {
        model: engine.model_name(),
        messages,
        max_tokens: Some(args.max_tokens),
        temperature: Some(args.temperature),
        seed: args.seed,
        stop: (!args.stop.is_empty()).then(|| backends::StopSequences::Many(args.stop.clone())),
        ..ChatRequest::default()
    };

    let sent = Instant::now();
    let mut stream = engine.submit(&request)?;
    let mut first_token = None;
    let mut last_token = sent;
    let mut usage = None;
    let mut finish = None;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = stream.next().await {
        match event? {
            ChatEvent::Token { text, at, .. } => {
                first_token.get_or_insert(at);
                last_token = at;
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            ChatEvent::Usage { usage: u, .. } => usage = Some(u),
            ChatEvent::Done { finish_reason, .. } => finish = Some(finish_reason),
            _ => {}
        }
    }
    writeln!(stdout)?;
    drop(stdout);

    let usage = usage.context("the engine ended the stream without usage")?;
    let ttft = first_token.map(|t| t.duration_since(sent).as_secs_f64());
    let prompt_tps = ttft.map(|t| usage.prompt_tokens as f64 / t);
    let gen_secs = first_token.map(|t| last_token.duration_since(t).as_secs_f64());
    let gen_tps = gen_secs
        .filter(|s| *s > 0.0 && usage.completion_tokens > 1)
        .map(|s| (usage.completion_tokens - 1) as f64 / s);
    let fmt = |v: Option<f64>, unit: &str, scale: f64| {
        v.map(|x| format!("{:.1}{unit}", x * scale))
            .unwrap_or_else(|| "n/a".into())
    };
    eprintln!(
        "\n— {} ({}) | load {:.2}s | prompt {} tok, completion {} tok | finish: {} | TTFT {} | prompt {} | generation {}",
        engine.model_name(),
        engine.prompt_format().name(),
        load_secs,
        usage.prompt_tokens,
        usage.completion_tokens,
        finish.as_ref().map(|f| f.as_str()).unwrap_or("none"),
        fmt(ttft, " ms", 1000.0),
        fmt(prompt_tps, " tok/s", 1.0),
        fmt(gen_tps, " tok/s", 1.0),
    );
    Ok(())
}
