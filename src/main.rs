//! `triage`: know, then enforce, which LLM requests a small local model can answer.
//!
//! This binary only parses arguments and dispatches; every subcommand's work lives in the
//! library crates (`backends`, `router`, `bench`, `dashboards`).

mod cli_chat;
mod cli_hw;
mod cli_models;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "triage", version, about = "Route LLM requests between a local small model and remote APIs, and measure what it costs you.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chat with a local GGUF model: streams the answer, then prints its timings.
    Chat(cli_chat::ChatArgs),
    /// Hardware benchmark of a local model: pp/tg tokens/s, concurrency, memory roofline.
    Hw(cli_hw::HwArgs),
    /// Local model files.
    #[command(subcommand)]
    Models(cli_models::ModelsCommand),
}

fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Chat(args) => cli_chat::run(args).await,
            Command::Models(cmd) => cli_models::run(cmd).await,
            Command::Hw(args) => cli_hw::run(args).await,
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
