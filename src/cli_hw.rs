//! `triage hw`: hardware benchmarking of local models.

use std::path::PathBuf;

use anyhow::Context;
use bench::hw::{self, HwConfig, HwReport};
use bench::probe::{self, ProbeConfig};
use bench::spec::{SpecKind, TargetSpec};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HwArgs {
    #[command(subcommand)]
    command: Option<HwCommand>,
    #[command(flatten)]
    run: HwRunArgs,
}

#[derive(clap::Subcommand, Debug)]
enum HwCommand {
    /// Compare two reports (two machines or two builds), with ratios b ÷ a.
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(clap::Args, Debug)]
struct HwRunArgs {
    /// GGUF model file.
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    model: PathBuf,
    /// Thread counts (comma-separated).
    #[arg(short = 't', long, value_delimiter = ',', default_value = "2")]
    threads: Vec<i32>,
    /// Prompt lengths for `pp N` (comma-separated; empty to skip).
    #[arg(short = 'p', long, value_parser = parse_list::<u32>, default_value = "512")]
    prompt: List<u32>,
    /// Generation lengths for `tg N` (comma-separated; empty to skip).
    #[arg(short = 'n', long = "gen", value_parser = parse_list::<u32>, default_value = "128")]
    gen: List<u32>,
    /// Batch sizes (comma-separated).
    #[arg(short = 'b', long, value_delimiter = ',', default_value = "512")]
    batch: Vec<u32>,
    /// Concurrency levels (comma-separated; empty to skip).
    #[arg(short = 'c', long, value_parser = parse_list::<usize>, default_value = "1,2,4,8")]
    concurrency: List<usize>,
    /// Prompt and generation tokens of each stream in the concurrency sweep.
    #[arg(long, default_value_t = 128)]
    concurrency_prompt: u32,
    #[arg(long, default_value_t = 128)]
    concurrency_gen: u32,
    /// Repetitions of each test (after one warm-up run).
    #[arg(short = 'r', long, default_value_t = 3)]
    reps: u32,
    /// llama.cpp flash attention: auto (the engine's default), on or off (faster on CPU at depth).
    #[arg(long = "flash-attn", default_value = "auto")]
    flash_attn: backends::FlashAttention,
    /// STREAM array size in MiB (0 skips the roofline).
    #[arg(long, default_value_t = 512)]
    bandwidth_mib: usize,
    /// Also probe a remote endpoint's TTFT and inter-token latency, as `NAME=SPEC` with the
    /// spec of `triage bench --target` (e.g. `llm=openai:https://api.openai.com/v1#gpt-4o-mini;key_env=OPENAI_API_KEY`).
    /// Repeatable.
    #[arg(long = "remote", value_name = "NAME=SPEC")]
    remote: Vec<String>,
    /// Concurrency levels of the remote probe (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    remote_concurrency: Vec<usize>,
    /// Recorded requests per level of the remote probe (after one warm-up request).
    #[arg(long, default_value_t = 10)]
    remote_requests: usize,
    /// Maximum tokens of each remote probe answer.
    #[arg(long, default_value_t = 64)]
    remote_max_tokens: u32,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write CSV rows here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

pub async fn run(args: HwArgs) -> anyhow::Result<()> {
    if let Some(HwCommand::Compare { a, b }) = args.command {
        let a = HwReport::read(&a)?;
        let b = HwReport::read(&b)?;
        print!("{}", hw::compare_reports(&a, &b));
        return Ok(());
    }
    let r = args.run;
    let config = HwConfig {
        model: r.model,
        threads: r.threads,
        prompt_lengths: r.prompt.0,
        gen_lengths: r.gen.0,
        batch_sizes: r.batch,
        concurrency: r.concurrency.0,
        concurrency_prompt: r.concurrency_prompt,
        concurrency_gen: r.concurrency_gen,
        repetitions: r.reps.max(1),
        bandwidth_mib: r.bandwidth_mib,
        flash_attention: r.flash_attn,
    };
    // Parse the remote specs before minutes of local measurement, so a typo fails at once.
    let remote_specs = r
        .remote
        .iter()
        .map(|text| TargetSpec::parse_assignment(text))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(local) = remote_specs.iter().find(|s| {
        matches!(
            s.kind,
            SpecKind::Llama { .. }
                | SpecKind::Classifier { .. }
                | SpecKind::Replay { .. }
                | SpecKind::Router { .. }
        )
    }) {
        anyhow::bail!(
            "--remote {}: the probe measures remote endpoints (openai: or anthropic:); local models are measured by the sweep itself",
            local.name
        );
    }
    let mut report = hw::run(&config).await?;
    let probe_config = ProbeConfig {
        concurrency: r.remote_concurrency,
        requests: r.remote_requests.max(1),
        max_tokens: r.remote_max_tokens.max(1),
        ..ProbeConfig::default()
    };
    for spec in &remote_specs {
        let model = match &spec.kind {
            SpecKind::OpenAi { model, .. } | SpecKind::Anthropic { model, .. } => model.clone(),
            SpecKind::Llama { .. }
            | SpecKind::Classifier { .. }
            | SpecKind::Replay { .. }
            | SpecKind::Router { .. } => continue,
        };
        let target = spec.build(std::path::Path::new("."), None).await?;
        report
            .remote
            .extend(probe::probe(target, &model, &probe_config).await);
    }
    for w in &report.system.warnings {
        eprintln!("WARNING: {w}");
    }
    println!(
        "{} | {} logical CPUs | ggml: {}\n",
        report.system.cpu_model,
        report.system.logical_cpus,
        report.system.ggml_simd.join(" ")
    );
    print!("{}", hw::markdown_table(&report));
    if let Some(path) = r.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = r.csv {
        std::fs::write(&path, hw::speed_csv(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A comma-separated list where the empty string is the empty list (`-p ""` skips `pp`).
#[derive(Clone, Debug)]
struct List<T>(Vec<T>);

fn parse_list<T: std::str::FromStr>(text: &str) -> Result<List<T>, String>
where
    T::Err: std::fmt::Display,
{
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| item.parse::<T>().map_err(|e| format!("`{item}`: {e}")))
        .collect::<Result<Vec<T>, String>>()
        .map(List)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_skips_and_bad_items_are_named() {
        assert!(parse_list::<u32>("")
            .map(|l| l.0.is_empty())
            .unwrap_or(false));
        assert_eq!(
            parse_list::<u32>("1, 2,4").map(|l| l.0).ok(),
            Some(vec![1, 2, 4])
        );
        let err = parse_list::<usize>("1,x").err().unwrap_or_default();
        assert!(err.contains("`x`"), "{err}");
    }
}
