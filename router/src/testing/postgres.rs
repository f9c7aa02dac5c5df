//! A private Postgres server for tests ([`PgServer`]): a fresh cluster (`initdb`) in a temporary
//! directory, served by `postgres` on a free loopback port with its socket in that directory —
//! no system service, nothing shared between tests. It stops (fast shutdown, then a kill) and
//! its directory is removed when the handle is dropped, also when a test panics.
//!
//! The binaries come from the distribution's `postgresql` package (`scripts/setup.sh` installs
//! it); Debian keeps them in `/usr/lib/postgresql/<version>/bin`, off `PATH`. Postgres refuses to
//! run as root, and CI runs as root: then the directory is given to the `postgres` system user
//! (which the package creates; `nobody` otherwise) and every server command runs as that user
//! through `setpriv`.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::{LedgerLocation, PostgresUrl, StoreError};

/// Why a private Postgres could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgServerError {
    /// No `initdb` under `/usr/lib/postgresql/*/bin` nor on `PATH`.
    #[error("Postgres is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH); run scripts/setup.sh")]
    NotInstalled,
    /// A command or a file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A command ran but failed (its output).
    #[error("{command} failed: {output}")]
    Command {
        /// The command.
        command: String,
        /// Its standard error and output.
        output: String,
    },
    /// The server did not accept connections in time (the end of its log).
    #[error("postgres on port {port} did not become ready: {log}")]
    NotReady {
        /// Its port.
        port: u16,
        /// The end of its log.
        log: String,
    },
    /// The URL the server should answer on did not parse (a bug here).
    #[error(transparent)]
    Url(#[from] StoreError),
}

/// A private Postgres server (see the module docs).
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// (uid, gid) to run the server as when this process is root.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgServerError {
    let what = what.into();
    move |source| PgServerError::Io { what, source }
}

/// The newest installed version's binary directory.
fn find_bin() -> Result<PathBuf, PgServerError> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .ok_or(PgServerError::NotInstalled)
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The user to run the server as when we are root: `postgres`, else `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    if id(&["-u"]) != Some(0) {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|u| Some((id(&["-u", u])?, id(&["-g", u])?)))
}

fn free_port() -> Result<u16, PgServerError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("pick a free port"))?;
    Ok(l.local_addr().map_err(io("pick a free port"))?.port())
}

impl PgServer {
    /// Create a cluster in a new temporary directory and start a server on a free port; waits
    /// until it accepts connections. The superuser is `triage` (no password, loopback only).
    pub fn start() -> Result<PgServer, PgServerError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let bin = find_bin()?;
        let run_as = unprivileged_user();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "triage-pg-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            run_as,
            child: None,
        };
        // From here on, Drop removes the directory whatever fails.
        fs::set_permissions(&server.dir, fs::Permissions::from_mode(0o700))
            .map_err(io("chmod the data directory"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .map_err(io(format!("give {} to uid {uid}", server.dir.display())))?;
        }
        let data = server.data_dir();
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "triage",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(io("run initdb"))?;
        if !out.status.success() {
            return Err(PgServerError::Command {
                command: "initdb".into(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&out.stdout)
                ),
            });
        }
        server.port = free_port()?;
        server.run()?;
        Ok(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// `program` from the server's binaries, as the unprivileged user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    /// Start the server on the cluster (again, after [`PgServer::stop`]) and wait until it is
    /// ready.
    pub fn run(&mut self) -> Result<(), PgServerError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(io("open the server log"))?;
        let log2 = log.try_clone().map_err(io("open the server log"))?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io("start postgres"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<(), PgServerError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(PgServerError::NotReady {
                        port: self.port,
                        log: format!("exited with {status}:\n{}", self.log_tail()),
                    });
                }
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
                .arg(self.port.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(PgServerError::NotReady {
                    port: self.port,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (fast shutdown: open connections are cut; a kill after 30 s). The
    /// cluster stays; [`PgServer::run`] starts it again on the same port.
    pub fn stop(&mut self) -> Result<(), PgServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().map_err(io("kill postgres"))?;
        child.wait().map_err(io("wait for postgres"))?;
        Ok(())
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://triage@127.0.0.1:PORT/postgres`.
    pub fn url_text(&self) -> String {
        format!("postgres://triage@127.0.0.1:{}/postgres", self.port)
    }

    /// [`PgServer::url_text`], parsed.
    pub fn url(&self) -> Result<PostgresUrl, PgServerError> {
        Ok(PostgresUrl::parse(&self.url_text())?)
    }

    /// The server as a ledger location.
    pub fn location(&self) -> Result<LedgerLocation, PgServerError> {
        Ok(LedgerLocation::Postgres(Box::new(self.url()?)))
    }

    /// Run `sql` with `psql` and return its unaligned, tuples-only output (`|` between fields,
    /// one line per row).
    pub fn psql(&self, sql: &str) -> Result<String, PgServerError> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-U", "triage", "-d", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run psql"))?;
        if !out.status.success() {
            return Err(PgServerError::Command {
                command: format!("psql -c {sql:?}"),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Where the cluster and the log live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
