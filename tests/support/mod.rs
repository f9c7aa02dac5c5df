//! Shared by the end-to-end tests: a real `triage serve` child process on a free port, killed
//! when the test ends (passing or not), and the repository root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `triage serve` child process, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub url: String,
}

impl Gateway {
    /// Stop the gateway as an operator would (SIGTERM: it finishes its ledger writes and exits),
    /// waiting at most 30 s before killing it.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Gateway {
    /// Whether the process is still running (it has not exited, crashed or panicked out).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `triage serve --config CONFIG` on a free loopback port, ready (`/readyz` answered 200).
pub fn serve(config: &Path, env: &[(&str, &str)]) -> Gateway {
    serve_with_args(config, env, &[])
}

/// [`serve`] with more `triage serve` arguments.
pub fn serve_with_args(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Gateway {
    let mut command = ServeCommand::new(config).args(args);
    for (k, v) in env {
        command = command.env(k, v);
    }
    command.start()
}

/// A `triage serve` command line, for the tests that need more than [`serve`]: another listen
/// address, stderr kept, or the gateway before its models are loaded.
pub struct ServeCommand {
    cmd: Command,
    config: PathBuf,
    listen: String,
    args: Vec<String>,
}

impl ServeCommand {
    /// `triage serve --config CONFIG --listen 127.0.0.1:0`, stderr shown with the test's output.
    pub fn new(config: &Path) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage"));
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        Self {
            cmd,
            config: config.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            args: Vec::new(),
        }
    }

    /// Listen on `addr` instead of a free loopback port.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.into();
        self
    }

    /// More `triage serve` arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Run the gateway in `dir` (relative paths of the command line and config resolve there).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// An environment variable of the gateway.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Where the gateway's stderr goes (a file, or `Stdio::piped()` to read it from
    /// `Gateway::child`).
    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Self {
        self.cmd.stderr(stderr);
        self
    }

    /// Start the gateway and return once it printed its address (its models may still be
    /// loading: [`wait_ready`] waits for them).
    pub fn spawn(mut self) -> Gateway {
        self.cmd
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", &self.listen])
            .args(&self.args);
        let mut child = self.cmd.spawn().expect("triage serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("triage serve printed its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Gateway { child, url }
    }

    /// [`Self::spawn`], then wait until every model is loaded.
    pub fn start(self) -> Gateway {
        let gateway = self.spawn();
        wait_ready(&gateway.url);
        gateway
    }
}

/// Wait for `/readyz` (models loaded), with a plain TCP HTTP/1.0 request.
pub fn wait_ready(url: &str) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} never became ready");
}
