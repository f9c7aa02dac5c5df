//! The gateway under soak: a real `triage serve` child process (its own config, ledger and log
//! in the soak's private directory), its resident memory read from `/proc/PID/status`, and a
//! graceful stop (SIGTERM, as an operator would) bounded by a grace period.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::SoakError;

/// How long the gateway may take to print its address and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `triage serve`; killed if dropped before [`GatewayChild::stop`].
pub(crate) struct GatewayChild {
    child: Child,
    pid: u32,
    /// `http://ADDR`.
    pub(crate) url: String,
}

/// How the gateway ended after SIGTERM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited by itself with this status text (`exit status: 0` is the good one).
    Exited { success: bool, status: String },
    /// It was still running after the grace period and was killed.
    Killed,
}

impl GatewayChild {
    /// Start `BIN serve --config CONFIG --listen 127.0.0.1:0` with stderr to `log`, and wait
    /// until it prints its address and `/readyz` answers 200.
    pub(crate) async fn start(
        bin: &Path,
        config: &Path,
        log: &Path,
        client: &reqwest::Client,
    ) -> Result<Self, SoakError> {
        let log_file = std::fs::File::create(log).map_err(|source| SoakError::Io {
            what: format!("cannot create {}", log.display()),
            source,
        })?;
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SoakError::Io {
                what: format!("cannot start {} serve", bin.display()),
                source,
            })?;
        let pid = child
            .id()
            .ok_or_else(|| SoakError::Gateway("the gateway exited as soon as it started".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SoakError::Gateway("the gateway's stdout is not piped".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    return Some(rest.trim().to_string());
                }
            }
            None
        })
        .await;
        let url = match found {
            Ok(Some(url)) => url,
            Ok(None) => {
                return Err(SoakError::Gateway(format!(
                    "the gateway exited before listening (see {})",
                    log.display()
                )))
            }
            Err(_) => {
                return Err(SoakError::Gateway(format!(
                    "the gateway printed no address within {START_TIMEOUT:?} (see {})",
                    log.display()
                )))
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let gateway = Self { child, pid, url };
        gateway.wait_ready(client, log).await?;
        Ok(gateway)
    }

    async fn wait_ready(&self, client: &reqwest::Client, log: &Path) -> Result<(), SoakError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(SoakError::Gateway(format!(
            "the gateway was not ready within {START_TIMEOUT:?} (see {})",
            log.display()
        )))
    }

    /// The gateway's resident memory in KiB (`VmRSS`), or `None` once it is gone.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// The process id, for sampling from another task.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGTERM, then wait up to `grace` for the gateway to finish its requests and ledger
    /// writes and exit; kill it after that.
    pub(crate) async fn stop(mut self, grace: Duration) -> Result<Exit, SoakError> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|source| SoakError::Io {
                what: "cannot run kill -TERM".into(),
                source,
            })?;
        if !status.success() {
            return Err(SoakError::Gateway(format!(
                "kill -TERM {} failed: {status}",
                self.pid
            )));
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Ok(Exit::Exited {
                success: status.success(),
                status: status.to_string(),
            }),
            Ok(Err(source)) => Err(SoakError::Io {
                what: "cannot wait for the gateway".into(),
                source,
            }),
            Err(_) => {
                let _ = self.child.kill().await;
                Ok(Exit::Killed)
            }
        }
    }
}

/// `VmRSS` of a process in KiB, from `/proc/PID/status` (Linux).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
