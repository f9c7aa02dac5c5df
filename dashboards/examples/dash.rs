//! `triage dash` without building the `triage` binary (whose local engine builds llama.cpp):
//!
//! ```text
//! cargo run -p dashboards --example dash -- RUN_DIR... [--live URL] [--hw FILE.json] [--print]
//! ```
//!
//! It includes the binary's own `src/cli_dash.rs`, so the arguments are exactly the same.

#[path = "../../src/cli_dash.rs"]
mod cli_dash;

use clap::Parser;

#[derive(Parser)]
#[command(name = "dash")]
struct Cli {
    #[command(flatten)]
    args: cli_dash::DashArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli_dash::run(Cli::parse().args).await
}
