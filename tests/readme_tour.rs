//! The README's tour works as written (issue 16 item 1): every shell command between
//! `<!-- tour:begin -->` and `<!-- tour:end -->` runs, in order, on the built binary, offline and
//! without API keys, and exits 0; `triage serve` is started in the background and must answer
//! `/readyz`, and the `curl`s against it must get a 200.
//!
//! The tour runs in a private directory laid out like a fresh clone after `make demo`: the
//! repository's `triage.yaml` (its port swapped for a free one), `scenarios/` and `examples/`
//! linked, `models/` holding links to the GGUF files and copies of the small files (the tour
//! retrains `models/task-classifier.json`, which must not touch the real one). Its ledger, runs
//! and config edits stay there. `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and `TRIAGE_KEYS` are
//! removed from the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEYS: [&str; 3] = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TRIAGE_KEYS"];
/// The port the README names; replaced by a free one.
const README_PORT: &str = "8080";

/// The shell commands of the tour: a command's continuation lines (`\` at the end) joined, blank
/// lines and lines that are only a comment skipped (bash drops the trailing comments).
fn tour_commands(readme: &str) -> Vec<String> {
    let begin = readme
        .find("<!-- tour:begin -->")
        .expect("README.md marks its tour with <!-- tour:begin -->");
    let end = readme[begin..]
        .find("<!-- tour:end -->")
        .map(|e| begin + e)
        .expect("README.md ends its tour with <!-- tour:end -->");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in readme[begin..end].lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            commands.push(std::mem::take(&mut current));
        }
    }
    commands
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The private copy of a fresh clone after `make demo`.
fn lay_out(dir: &Path, port: u16) {
    let root = support::root();
    for linked in ["scenarios", "examples"] {
        std::os::unix::fs::symlink(root.join(linked), dir.join(linked)).unwrap();
    }
    let models = dir.join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(root.join("models")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.extension().is_some_and(|e| e == "gguf") {
            std::os::unix::fs::symlink(std::fs::canonicalize(&path).unwrap(), models.join(name))
                .unwrap();
        } else if path.is_file() {
            std::fs::copy(&path, models.join(name)).unwrap();
        }
    }
    let config = std::fs::read_to_string(root.join("triage.yaml")).unwrap();
    let config = config.replace(
        &format!("127.0.0.1:{README_PORT}"),
        &format!("127.0.0.1:{port}"),
    );
    std::fs::write(dir.join("triage.yaml"), config).unwrap();
}

fn shell(command: &str, dir: &Path, path_env: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", command])
        .current_dir(dir)
        .env("PATH", path_env)
        .env("NO_COLOR", "1");
    for key in KEYS {
        cmd.env_remove(key);
    }
    cmd
}

/// A background `triage serve`, killed when the tour ends (passing or not).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(command: &str, dir: &Path, path_env: &str, port: u16) -> Server {
    let mut child = shell(&format!("exec {command}"), dir, path_env)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let listening = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    break addr.trim().to_string();
                }
            }
            _ => panic!("`{command}` ended before it listened"),
        }
    };
    assert_eq!(listening, format!("http://127.0.0.1:{port}"), "{command}");
    std::thread::spawn(move || for _ in lines {});
    support::wait_ready(&listening);
    server
}

#[test]
fn every_tour_command_runs_offline_without_keys() {
    let readme = std::fs::read_to_string(support::root().join("README.md")).unwrap();
    let commands = tour_commands(&readme);
    assert!(
        commands.len() >= 10,
        "the tour should hold the README's commands: {commands:#?}"
    );
    assert!(
        commands.iter().any(|c| c.starts_with("triage serve")),
        "{commands:#?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    lay_out(dir.path(), port);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_triage")).parent().unwrap();
    let path_env = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut servers = Vec::new();
    for command in &commands {
        let command = command.replace(&format!(":{README_PORT}"), &format!(":{port}"));
        let started = Instant::now();
        if command.trim_start().starts_with("triage serve") {
            servers.push(start_server(&command, dir.path(), &path_env, port));
            eprintln!("tour: `{command}` serves ({:.1?})", started.elapsed());
            continue;
        }
        let out = shell(&command, dir.path(), &path_env)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "tour command failed ({}): {command}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        if command.trim_start().starts_with("curl") {
            assert!(
                stdout.contains(" 200")
                    || stdout.contains("\"ready\"")
                    || stdout.contains("\"degraded\""),
                "`{command}` got no answer: {stdout}"
            );
        }
        eprintln!("tour: `{command}` ok ({:.1?})", started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "`{command}` took longer than a tour step should"
        );
    }
    assert_eq!(servers.len(), 1, "the tour starts one gateway");
}

#[test]
fn tour_commands_are_joined_and_comments_skipped() {
    let readme = "x\n<!-- tour:begin -->\n```sh\n# a comment\na --b # says\n\
                  \x20                    # more\nc \\\n  --d e\n```\n<!-- tour:end -->\n```sh\nnot this\n```\n";
    assert_eq!(tour_commands(readme), ["a --b # says", "c    --d e"]);
}
