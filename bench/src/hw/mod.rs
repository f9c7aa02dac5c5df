//! `triage hw`: what this machine can do with a local model.
//!
//! Definitions follow llama-bench so the numbers compare directly: `pp N` is prompt processing
//! of N tokens (tokens/s of the prompt decode), `tg N` is generation of N tokens one at a time
//! after a one-token prompt. Both run through triage's own engine (`backends::llama`), from the
//! moment a request takes its slot, so the figures include everything the gateway pays for. A
//! concurrency sweep measures continuous batching; a STREAM-style memory test gives the
//! bandwidth roofline for generation.

mod measure;
mod report;
mod roofline;
mod system;

pub use measure::{run_concurrency, run_speed, ConcurrencyRow, SpeedRow};
pub use report::{
    compare_reports, markdown_table, speed_csv, HwReport, ModelSummary, HWREPORT_SCHEMA,
};
pub use roofline::{measure_bandwidth, Bandwidth, Roofline};
pub use system::{system_facts, SystemFacts};

use std::path::PathBuf;

/// What to measure.
#[derive(Debug, Clone)]
pub struct HwConfig {
    /// The GGUF model file to measure.
    pub model: PathBuf,
    /// Thread counts to run the speed tests at (default: the available cores); the concurrency
    /// sweep and the roofline use the largest.
    pub threads: Vec<i32>,
    /// Prompt lengths for `pp N` tests, in tokens (default 512).
    pub prompt_lengths: Vec<u32>,
    /// Generation lengths for `tg N` tests, in tokens (default 128).
    pub gen_lengths: Vec<u32>,
    /// Logical batch sizes to run the speed tests at (default 512); the concurrency sweep uses the
    /// first.
    pub batch_sizes: Vec<u32>,
    /// Stream counts of the concurrency sweep (default 1, 2, 4, 8).
    pub concurrency: Vec<usize>,
    /// Random prompt tokens of each stream in the concurrency sweep (default 128).
    pub concurrency_prompt: u32,
    /// Tokens each stream generates in the concurrency sweep (default 128).
    pub concurrency_gen: u32,
    /// Measured repetitions per test and per concurrency level, after one warm-up (default 3).
    pub repetitions: u32,
    /// Size of each STREAM array in MiB (0: skip the roofline).
    pub bandwidth_mib: usize,
    /// llama.cpp's flash-attention kernels, as the engine would run them.
    pub flash_attention: backends::FlashAttention,
}

impl HwConfig {
    /// The default measurements of `model`: pp512 and tg128 at all available cores, concurrency
    /// 1–8, 3 repetitions, a 512 MiB bandwidth test.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2);
        Self {
            model: model.into(),
            threads: vec![cores],
            prompt_lengths: vec![512],
            gen_lengths: vec![128],
            batch_sizes: vec![512],
            concurrency: vec![1, 2, 4, 8],
            concurrency_prompt: 128,
            concurrency_gen: 128,
            repetitions: 3,
            bandwidth_mib: 512,
            flash_attention: backends::FlashAttention::default(),
        }
    }
}

/// Errors of the hardware benchmark.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HwError {
    /// The engine failed to load the model or to answer.
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
    /// A measurement produced no usable result (e.g. no token came back); the message says which.
    #[error("{0}")]
    Measurement(String),
    /// A saved `triage hw` report could not be read or parsed.
    #[error("reading {path}: {reason}")]
    Report {
        /// The report file.
        path: PathBuf,
        /// The I/O or JSON error.
        reason: String,
    },
}

/// Run every measurement the config asks for.
pub async fn run(config: &HwConfig) -> Result<HwReport, HwError> {
    let model = backends::llama::read_model_info(&config.model)?;
    let system = system_facts();
    let mut speed = Vec::new();
    for &threads in &config.threads {
        for &batch in &config.batch_sizes {
            speed.extend(run_speed(config, threads, batch).await?);
        }
    }
    let max_threads = config.threads.iter().copied().max().unwrap_or(1);
    let concurrency = run_concurrency(config, max_threads).await?;
    let roofline = if config.bandwidth_mib > 0 {
        let bandwidth = measure_bandwidth(config.bandwidth_mib, max_threads.max(1) as usize);
        let best_tg = speed
            .iter()
            .filter(|r| r.kind == "tg" && r.threads == max_threads)
            .map(|r| r.tokens_per_sec_mean)
            .fold(0.0, f64::max);
        Some(Roofline::new(bandwidth, model.size_bytes, best_tg))
    } else {
        None
    };
    Ok(HwReport {
        schema_version: 1,
        created_unix: backends::unix_now(),
        system,
        model: model.into(),
        speed,
        concurrency,
        roofline,
        remote: Vec::new(),
    })
}
