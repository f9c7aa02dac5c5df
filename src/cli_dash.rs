//! `triage dash`: the terminal dashboard (crate `dashboards`). This file only parses the
//! arguments and calls [`dashboards::run`]; everything else lives in the library.

use std::path::PathBuf;

/// Compare benchmark runs, browse their requests, watch a live gateway, show a `triage hw`
/// report. Without a terminal on stdout (or with `--print`) it prints the compare tables.
#[derive(Debug, clap::Args)]
pub struct DashArgs {
    /// Benchmark run directories (as written by `triage bench`) to compare side by side.
    #[arg(value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Watch a running gateway: its base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub live: Option<String>,
    /// Show a hardware report written by `triage hw` (JSON).
    #[arg(long, value_name = "FILE.json")]
    pub hw: Option<PathBuf>,
    /// Print the compare tables as plain text instead of starting the dashboard
    /// (the default when stdout is not a terminal).
    #[arg(long)]
    pub print: bool,
    /// Name of the environment variable holding the gateway's API key, when it requires one.
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
}

pub async fn run(args: DashArgs) -> anyhow::Result<()> {
    let api_key = match &args.api_key_env {
        Some(name) => Some(std::env::var(name).map_err(|_| {
            anyhow::anyhow!("--api-key-env {name}: environment variable `{name}` is not set")
        })?),
        None => None,
    };
    dashboards::run(dashboards::DashOptions {
        runs: args.runs,
        live: args.live,
        hw: args.hw,
        print: args.print,
        api_key,
    })
    .await?;
    Ok(())
}
