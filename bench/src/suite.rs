//! A whole run: a loaded suite against each target in turn ([`run_suite`]), then the run
//! directory with its metadata — when it ran, the git revision, the host, the hashed model
//! files and the configuration as given — so a result can be traced to what produced it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;

use crate::error::{BenchError, Result};
use crate::record::TargetRun;
use crate::results::{self, HostInfo, ModelFile, RunMetadata, Summary};
use crate::runner::{run_target, RunOptions};
use crate::scenario::Suite;
use crate::score::Judges;
use crate::target::Target;

/// What [`run_suite`] produced.
#[derive(Debug)]
pub struct SuiteRun {
    /// The run directory written (`summary.json`, `requests.jsonl`, `histograms.json`,
    /// `metadata.json`).
    pub dir: PathBuf,
    /// The aggregated results, as written to `summary.json`.
    pub summary: Summary,
    /// Each target's run with every request record, in the order the targets ran.
    pub runs: Vec<TargetRun>,
}

/// Run a loaded suite against each target in turn (one at a time, so targets don't compete for
/// the machine), close every target, then write the run directory `out`. RAG scenarios get their
/// passages first, once for every target ([`crate::rag::prepare`], stored in `out/rag/`). `config` is recorded in the metadata as
/// given (the command line passes the suite, load and target specs).
pub async fn run_suite(
    suite: Suite,
    targets: Vec<Arc<dyn Target>>,
    judges: Judges,
    opts: RunOptions,
    out: &Path,
    config: serde_json::Value,
) -> Result<SuiteRun> {
    if targets.is_empty() {
        return Err(BenchError::invalid(
            &suite.path,
            "no targets to run (give --target NAME=SPEC)",
        ));
    }
    let started_at = now_rfc3339();
    let mut suite = suite;
    crate::rag::prepare(
        &mut suite.scenarios,
        &crate::rag::PrepareOptions {
            out: out.to_path_buf(),
            reuse_from: suite.retrieval_from.clone(),
        },
    )
    .await?;
    let scenarios = Arc::new(suite.scenarios);
    let mut runs = Vec::new();
    for target in &targets {
        runs.push(run_target(target.clone(), scenarios.clone(), &opts, &judges).await);
    }
    // Every target has run and been judged: release what they hold (an in-process gateway's
    // models) before the run directory is written.
    drop(judges);
    for target in &targets {
        target.close().await;
    }
    drop(targets);
    let mut model_files: Vec<ModelFile> = Vec::new();
    for run in &runs {
        for f in &run.target.model_files {
            if !model_files
                .iter()
                .any(|m| m.path == f.display().to_string())
            {
                model_files.push(hash_file(f)?);
            }
        }
    }
    let id = format!("{}-{}", started_at.replace([':', '-'], ""), suite.file.name);
    let meta = RunMetadata {
        id,
        started_at,
        finished_at: now_rfc3339(),
        suite: suite.path.display().to_string(),
        git_revision: git_revision(
            suite
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        ),
        host: host_info(),
        targets: runs.iter().map(|r| r.target.clone()).collect(),
        model_files,
        config,
        few_shot: scenarios
            .iter()
            .filter_map(|s| s.drawn_examples.clone())
            .collect(),
        half: suite.half,
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let (summary, histograms) = results::summarize(&runs, meta);
    results::write_run_dir(out, &runs, &summary, &histograms)?;
    Ok(SuiteRun {
        dir: out.to_path_buf(),
        summary,
        runs,
    })
}

/// The machine the run is on: CPU model (from `/proc/cpuinfo`), cores, OS and architecture.
pub fn host_info() -> HostInfo {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    HostInfo {
        cpu_model,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
    }
}

/// The git revision of the working directory (with `-dirty` when it has changes), if any.
pub fn git_revision(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        rev.push_str("-dirty");
    }
    Some(rev)
}

/// Size and sha256 of a file.
pub fn hash_file(path: &Path) -> Result<ModelFile> {
    let mut file = std::fs::File::open(path).map_err(|e| BenchError::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(|e| BenchError::io(path, e))?;
    let digest = hasher.finalize();
    Ok(ModelFile {
        path: path.display().to_string(),
        bytes,
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// RFC 3339 UTC timestamp of now.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_file_gives_size_and_sha256() {
        let dir = std::env::temp_dir().join(format!("bench-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc.txt");
        std::fs::write(&path, "abc").unwrap();
        let m = hash_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(m.bytes, 3);
        assert_eq!(
            m.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            hash_file(&dir.join("missing")),
            Err(BenchError::Io { .. })
        ));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
    }
}
