//! `triage serve`: run the OpenAI-compatible gateway described by a `triage.yaml`.
//!
//! Without `--config` it reads `./triage.yaml`; when there is none it serves what `models/`
//! holds (`router::config::discover`: the SLM as `slm`, the Gemma stand-in as `llm`) and prints
//! what it chose, so the first command on a fresh clone works offline and without keys.
//!
//! Thin on purpose: argument parsing and signals here, everything else in
//! `router::gateway::server` (the same entry point the tests and examples use). On startup it
//! prints `listening on http://ADDR` (the real port when `--listen 127.0.0.1:0`) on stdout;
//! SIGINT/SIGTERM stop accepting, let running requests and streams finish (for at most
//! `server.shutdown_grace`), then exit; a second signal exits at once. SIGHUP, or a change to
//! the config file (polled every `--watch-interval-ms`), reloads the configuration
//! (`router::gateway::reload`): new requests get the new routes, prices, budgets and keys while
//! running ones finish on the old. Without API keys it listens
//! only on loopback addresses unless `--allow-unauthenticated` is given. A panic is logged with
//! its location; its message only when it is a fixed text, because a formatted one may quote
//! request content (a string slicing panic prints the string).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use router::config::discover;
use router::gateway::{start, start_with, ServeOptions};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The routing configuration [default: ./triage.yaml; without it, the models in models/].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding `server.listen` (`127.0.0.1:0` picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Listen on a non-loopback address (such as 0.0.0.0) even though no API keys are configured
    /// (`server.api_keys_env`): anyone who can reach the port can then use every backend.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// How often to check the config file for changes and reload it, in milliseconds (0: only
    /// on SIGHUP).
    #[arg(long, default_value_t = 2000)]
    pub watch_interval_ms: u64,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let default = PathBuf::from("triage.yaml");
    let config = args
        .config
        .clone()
        .or_else(|| default.is_file().then_some(default));
    let mut options = ServeOptions {
        config: config.clone().unwrap_or_default(),
        listen: args.listen,
        allow_unauthenticated: args.allow_unauthenticated,
    };
    let server = match config {
        Some(file) => start(&options)
            .await
            .with_context(|| format!("cannot start the gateway from {}", file.display()))?,
        None => {
            let found = discover::from_models_dir(Path::new("models"))?;
            println!("no --config and no ./triage.yaml: serving the models in models/");
            for line in &found.summary {
                println!("  {line}");
            }
            options.config = PathBuf::from("models");
            start_with(&options, found.config)
                .await
                .context("cannot start the gateway on the models in models/")?
        }
    };
    install_panic_hook();
    let reloader = server.reloader();
    if args.watch_interval_ms > 0 {
        // Watching ends when shutdown begins (the gateway's shutdown token).
        tokio::spawn(reloader.clone().watch(
            std::time::Duration::from_millis(args.watch_interval_ms),
            server.state().shutdown_token(),
        ));
    }
    tokio::spawn(reload_on_sighup(reloader));
    println!("listening on http://{}", server.local_addr());
    use std::io::Write;
    std::io::stdout().flush().ok();
    server.run(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits the process at once (without
/// waiting for running requests or writing out the ledger's queue).
async fn shutdown_signal() {
    signal().await;
    eprintln!("shutting down: finishing running requests (send the signal again to exit now)");
    tokio::spawn(async {
        signal().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// Panics are logged without formatted messages (they may quote request text).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "an unknown location".into());
        let message = info
            .payload()
            .downcast_ref::<&'static str>()
            .copied()
            .unwrap_or("(formatted message withheld: it may quote request content)");
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(%location, thread, "panic: {message}");
    }));
}

/// Reload the configuration on every SIGHUP (errors are logged by the reloader; the previous
/// configuration stays in force).
async fn reload_on_sighup(reloader: std::sync::Arc<router::gateway::Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: reload by editing the config file");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = reloader.reload().await;
        }
    }
    #[cfg(not(unix))]
    drop(reloader);
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn signal() {
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
}
