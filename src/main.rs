//! `triage`: know, then enforce, which LLM requests a small local model can answer.
//!
//! This binary only parses arguments and dispatches; every subcommand's work lives in the
//! library crates (`backends`, `router`, `bench`, `dashboards`).

mod cli_bench;
#[cfg(feature = "llama")]
mod cli_chat;
mod cli_config;
mod cli_dash;
#[cfg(feature = "llama")]
mod cli_hw;
#[cfg(feature = "llama")]
mod cli_models;
mod cli_route;
mod cli_serve;
mod cli_soak;
mod fit_report;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "triage",
    version,
    about = "Route LLM requests between a local small model and remote APIs, and measure what it costs you."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the OpenAI-compatible gateway described by a triage.yaml.
    Serve(cli_serve::ServeArgs),
    /// Check a triage.yaml and print what it resolves to; print its JSON schema.
    #[command(subcommand)]
    Config(cli_config::ConfigCommand),
    /// Benchmark harness: run scenario suites, compare runs, calibrate routing thresholds.
    #[command(subcommand)]
    Bench(cli_bench::BenchCommand),
    /// Terminal dashboard: compare runs side by side, or watch a live gateway.
    Dash(cli_dash::DashArgs),
    /// Routing without serving: explain a decision, train the task classifier.
    #[command(subcommand)]
    Route(cli_route::RouteCommand),
    /// The request ledger a gateway writes.
    #[command(subcommand)]
    Ledger(cli_route::LedgerCommand),
    /// Chat with a local GGUF model: streams the answer, then prints its timings.
    #[cfg(feature = "llama")]
    Chat(cli_chat::ChatArgs),
    /// Hardware benchmark of a local model: pp/tg tokens/s, concurrency, memory roofline.
    #[cfg(feature = "llama")]
    Hw(cli_hw::HwArgs),
    /// Local model files.
    #[cfg(feature = "llama")]
    #[command(subcommand)]
    Models(cli_models::ModelsCommand),
}

fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli_serve::run(args).await,
            Command::Config(cmd) => cli_config::run(cmd).await,
            Command::Bench(cmd) => cli_bench::run(cmd).await,
            Command::Dash(args) => cli_dash::run(args).await,
            Command::Route(cmd) => cli_route::run(cmd).await,
            Command::Ledger(cmd) => cli_route::run_ledger(cmd).await,
            #[cfg(feature = "llama")]
            Command::Chat(args) => cli_chat::run(args).await,
            #[cfg(feature = "llama")]
            Command::Hw(args) => cli_hw::run(args).await,
            #[cfg(feature = "llama")]
            Command::Models(cmd) => cli_models::run(cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only; llama.cpp's own chatter is
/// at debug level).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
