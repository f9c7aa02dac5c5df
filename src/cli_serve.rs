//! `triage serve`: run the OpenAI-compatible gateway described by a `triage.yaml`.
//!
//! Thin on purpose: argument parsing and signals here, everything else in
//! `router::gateway::server` (the same entry point the tests and examples use). On startup it
//! prints `listening on http://ADDR` (the real port when `--listen 127.0.0.1:0`) on stdout;
//! SIGINT/SIGTERM stop accepting, let running requests and streams finish, then exit. Without API
//! keys it listens only on loopback addresses unless `--allow-unauthenticated` is given.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use router::gateway::{start, ServeOptions};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The routing configuration.
    #[arg(long, default_value = "triage.yaml")]
    pub config: PathBuf,
    /// Address to listen on, overriding `server.listen` (`127.0.0.1:0` picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Listen on a non-loopback address (such as 0.0.0.0) even though no API keys are configured
    /// (`server.api_keys_env`): anyone who can reach the port can then use every backend.
    #[arg(long)]
    pub allow_unauthenticated: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let server = start(&ServeOptions {
        config: args.config.clone(),
        listen: args.listen,
        allow_unauthenticated: args.allow_unauthenticated,
    })
    .await
    .with_context(|| format!("cannot start the gateway from {}", args.config.display()))?;
    println!("listening on http://{}", server.local_addr());
    use std::io::Write;
    std::io::stdout().flush().ok();
    server.run(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    eprintln!("shutting down: finishing running requests");
}
