//! Live configuration reload: `triage serve` re-reads its `triage.yaml` on SIGHUP and when the
//! file changes, without dropping a request.
//!
//! A reload parses and validates the new file exactly as start-up does. On any error (a bad
//! file, a malformed keys variable, a new local model that fails to load) the running
//! configuration stays in force, the error is logged and `triage_config_reloads_total{result=
//! "error"}` counts it. On success the routing core (routes, prices, budgets), the backends and
//! the API keys are swapped in one atomic step ([`LiveState::replace`]): requests that arrive
//! afterwards use the new configuration, while requests and streams already running keep the
//! state they started with until they end.
//!
//! A backend whose spec did not change keeps running (the same slot: a loaded model is not
//! loaded again, its queue and counters carry on); a new or changed local model is loaded
//! before the swap, so no request ever sees it loading. The budget reservations, the ledger
//! store and its writer carry over ([`PolicyCore::reconfigured`]). The `server:` section's
//! listener, ledger, body and transport limits are fixed for the life of the process: a change
//! there is reported (a restart applies it) and the rest of the file still reloads.
//!
//! File changes are found by polling the file's content hash ([`Reloader::watch`]): no watcher
//! crate, and it works on every file system, editors' rename-over-save included.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::server::{build_backends, check_exposure, keys_for, load_now};
use super::{LiveState, PolicyCore, ServeError};
use crate::config::{Config, ConfigError, ServerConfig};

/// What a successful reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Backends kept running (same spec as before).
    pub kept: Vec<String>,
    /// Backends built (or loaded) anew: added, or their spec changed.
    pub started: Vec<String>,
    /// Backends the new file no longer has (they end with the last request using them).
    pub removed: Vec<String>,
    /// `server:` settings that changed but apply only after a restart.
    pub needs_restart: Vec<String>,
}

struct Current {
    config: Arc<Config>,
    core: Arc<PolicyCore>,
    /// The content hash of the file as last read (valid or not), for [`Reloader::watch`].
    seen: Option<[u8; 32]>,
}

/// Reloads one gateway's configuration file into its [`LiveState`].
pub struct Reloader {
    path: PathBuf,
    live: LiveState,
    /// The listen address and `--allow-unauthenticated`: new keys must still allow it.
    exposure: (std::net::SocketAddr, bool),
    current: tokio::sync::Mutex<Current>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for the gateway serving `live`, started from `config` (read from `path`)
    /// with routing core `core`, listening on `exposure.0` (`exposure.1`: unauthenticated
    /// non-loopback listening was allowed).
    pub fn new(
        path: PathBuf,
        live: LiveState,
        config: Arc<Config>,
        core: Arc<PolicyCore>,
        exposure: (std::net::SocketAddr, bool),
    ) -> Reloader {
        let seen = std::fs::read(&path).ok().map(|b| digest(&b));
        Reloader {
            path,
            live,
            exposure,
            current: tokio::sync::Mutex::new(Current { config, core, seen }),
        }
    }

    /// The configuration file reloaded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force.
    pub async fn config(&self) -> Arc<Config> {
        self.current.lock().await.config.clone()
    }

    /// Re-read the file and apply it; on error keep the configuration in force. Logged and
    /// counted either way (`triage_config_reloads_total{result}`).
    pub async fn reload(&self) -> Result<ReloadReport, ServeError> {
        let mut current = self.current.lock().await;
        let result = self.apply(&mut current).await;
        let metrics = self.live.current().inner.metrics.clone();
        match &result {
            Ok(report) => {
                metrics.config_reload("ok");
                tracing::info!(
                    config = %self.path.display(),
                    kept = ?report.kept,
                    started = ?report.started,
                    removed = ?report.removed,
                    "configuration reloaded"
                );
                for setting in &report.needs_restart {
                    tracing::warn!(
                        config = %self.path.display(),
                        "{setting} changed: it applies only after a restart"
                    );
                }
            }
            Err(e) => {
                metrics.config_reload("error");
                tracing::error!(
                    config = %self.path.display(),
                    error = %e,
                    "configuration reload failed; the previous configuration stays in force"
                );
            }
        }
        result
    }

    /// Poll the file every `every` and reload when its content changed, until `stop`. A file
    /// that fails to reload is not retried until it changes again (or on SIGHUP).
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(bytes) = tokio::fs::read(&self.path).await else {
                continue; // Mid-replace, or removed: the running configuration stays.
            };
            let changed = self.current.lock().await.seen != Some(digest(&bytes));
            if changed {
                let _ = self.reload().await;
            }
        }
    }

    async fn apply(&self, current: &mut Current) -> Result<ReloadReport, ServeError> {
        let file = self.path.display().to_string();
        let bytes = std::fs::read(&self.path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        current.seen = Some(digest(&bytes));
        let text = String::from_utf8_lossy(&bytes);
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let config = Arc::new(Config::parse(&text, &file, &dir)?);
        for warning in &config.warnings {
            tracing::warn!(config = %file, "{warning}");
        }
        let keys = keys_for(&config)?;
        check_exposure(self.exposure.0, keys.is_some(), self.exposure.1)?;

        let state = self.live.current();
        let old = &current.config;
        let mut report = ReloadReport {
            needs_restart: restart_only_changes(&old.server, &config.server),
            removed: old
                .backends
                .keys()
                .filter(|n| !config.backends.contains_key(*n))
                .cloned()
                .collect(),
            ..ReloadReport::default()
        };
        let (mut backends, mut loads) = build_backends(&config, |name, spec| {
            (old.backends.get(name) == Some(spec))
                .then(|| state.backends().get(name).cloned())
                .flatten()
        })?;
        let encoder = |c: &Config| c.classifier.embedding().map(|m| m.encoder.clone());
        super::task_encoder::keep(
            &mut backends,
            &mut loads,
            state.backends().task_encoder(),
            encoder(old) == encoder(&config),
        );
        for name in config.backends.keys() {
            let same = backends
                .get(name)
                .zip(state.backends().get(name))
                .is_some_and(|(a, b)| Arc::ptr_eq(a, b));
            if same {
                report.kept.push(name.clone());
            } else {
                report.started.push(name.clone());
            }
        }
        // New or changed local models load before the swap: no request sees them loading.
        for job in loads {
            load_now(job).await?;
        }

        let core = Arc::new(current.core.reconfigured(config.clone()));
        let next = state.reconfigured(
            backends,
            core.clone(),
            keys,
            config.server.admin_tenants.clone(),
        );
        self.live.replace(next);
        current.config = config;
        current.core = core;
        Ok(report)
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The `server:` settings that differ and that only a restart applies.
fn restart_only_changes(old: &ServerConfig, new: &ServerConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |changed: bool, name: &str| {
        if changed {
            out.push(format!("server.{name}"));
        }
    };
    note(old.listen != new.listen, "listen");
    note(old.ledger != new.ledger, "ledger");
    note(
        old.body_limit_bytes != new.body_limit_bytes,
        "body_limit_bytes",
    );
    note(
        old.request_timeout != new.request_timeout,
        "request_timeout",
    );
    note(
        old.metrics_require_key != new.metrics_require_key,
        "metrics_require_key",
    );
    note(
        old.cors_allow_origins != new.cors_allow_origins,
        "cors_allow_origins",
    );
    note(old.transport != new.transport, "transport limits");
    out
}
