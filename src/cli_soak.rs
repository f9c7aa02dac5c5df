//! `triage bench soak`: clap struct and printing only; the soak itself is `bench::soak`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use bench::soak::{self, SoakOptions};

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// How long to send requests (`30s`, `10m`).
    #[arg(long, value_parser = soak::parse_duration)]
    pub duration: Duration,
    /// Requests per second (half of them streamed).
    #[arg(long)]
    pub rate: f64,
    /// Share of upstream requests given a fault (resets, HTTP 500s, stalls, cut bodies).
    #[arg(long, default_value_t = 0.05)]
    pub faults: f64,
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How long a stalled upstream answer waits; must exceed the gateway's first-byte timeout
    /// (2 s in the generated config).
    #[arg(long, value_parser = soak::parse_duration, default_value = "4s")]
    pub stall: Duration,
    /// A triage.yaml template to soak instead of the generated remote-only config: `${UPSTREAM}`
    /// is replaced by the fault upstream's base URL, `${LEDGER}` (required) by the soak's ledger
    /// file and `${CONFIG_DIR}` by the template's directory.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Largest allowed growth of the gateway's resident memory after warm-up (0.05 = 5%).
    #[arg(long, default_value_t = 0.05)]
    pub max_rss_drift: f64,
    /// Load before the first RSS window (default: 40% of the duration, at least 5 s): bounded
    /// caches such as SQLite's 2 MiB page cache fill first (4 minutes at 100 req/s).
    #[arg(long, value_parser = soak::parse_duration)]
    pub warmup: Option<Duration>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let bin = std::env::current_exe().context("cannot find the triage binary to soak")?;
    let mut opts = SoakOptions::new(bin, args.duration, args.rate);
    opts.faults = args.faults;
    opts.seed = args.seed;
    opts.stall = args.stall;
    opts.config_template = args.config;
    opts.max_rss_drift = args.max_rss_drift;
    opts.warmup = args.warmup;
    let (report, dir) = soak::run(&opts).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    if !report.passed() {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        bail!(
            "soak failed: {} (config, ledger and gateway log kept in {})",
            failed.join(", "),
            dir.display()
        );
    }
    Ok(())
}
