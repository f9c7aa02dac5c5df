//! `triage bench soak`: a bounded soak with faults. A real `triage serve` (child process,
//! private directory, its own ledger) fronts a fault-injecting upstream ([`upstream`], a TEST
//! DOUBLE) and is driven at a fixed rate with streamed and whole requests; then it is stopped as
//! an operator would stop it (SIGTERM) and the soak checks what a user relies on:
//!
//! - every request got exactly one response: a complete answer or a well-formed OpenAI error
//!   (an error body, or an SSE error event after the first token) — never a hang, a cut body or
//!   a malformed one; every response carries its own `x-triage-request-id`;
//! - the ledger holds exactly one row per request, with the same split into successes and
//!   failures as the clients saw;
//! - the gateway's resident memory (`VmRSS`) after warm-up drifts less than a bound (5%);
//! - the gateway exits by itself after SIGTERM;
//! - with the generated config (no retries, no fallback), every injected fault reaches a client
//!   as an error, so the faults really were exercised end to end.
//!
//! It lives in the harness (not in tests only) so that the same soak runs for 30 seconds in
//! `make test` and for as long as one wants by hand.

mod client;
mod gateway;
mod report;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use router::store::{SqliteStore, Store};

pub use report::{Check, LedgerCounts, Responses, RssReport, SoakReport};
use upstream::{FaultPlan, FaultUpstream};

/// Why a soak could not run (a failed check is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoakError {
    /// An option is out of range; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The gateway did not start or stop as expected.
    #[error("gateway: {0}")]
    Gateway(String),
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] router::store::StoreError),
}

/// How to soak.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// The `triage` binary whose `serve` is soaked.
    pub triage_bin: PathBuf,
    /// How long to send requests.
    pub duration: Duration,
    /// Requests per second.
    pub rate: f64,
    /// Share of upstream requests given a fault, in `[0, 1]`.
    pub faults: f64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// How long a stalled upstream answer waits (must exceed the gateway's first-byte timeout).
    pub stall: Duration,
    /// A triage.yaml template to soak instead of the generated one: `${UPSTREAM}` becomes the
    /// fault upstream's base URL, `${LEDGER}` the soak's ledger file (required, so rows can be
    /// counted) and `${CONFIG_DIR}` the template's own directory (for model paths).
    pub config_template: Option<PathBuf>,
    /// Largest allowed RSS drift after warm-up (0.05 = 5%).
    pub max_rss_drift: f64,
    /// Load before the first RSS window; default: 40% of the duration (at least 5 s, at most
    /// half). Bounded caches must be full before memory is compared: SQLite's page cache (2 MiB
    /// by default) grows with the ledger until the file passes 2 MB — 4 minutes at 100 req/s.
    pub warmup: Option<Duration>,
    /// How long the gateway may take to exit after SIGTERM.
    pub grace: Duration,
}

impl SoakOptions {
    /// Defaults for everything but the binary, duration and rate: 5% faults, seed 7, 4 s
    /// stalls, 5% drift, 60 s grace.
    pub fn new(triage_bin: PathBuf, duration: Duration, rate: f64) -> Self {
        Self {
            triage_bin,
            duration,
            rate,
            faults: 0.05,
            seed: 7,
            stall: Duration::from_secs(4),
            config_template: None,
            max_rss_drift: 0.05,
            warmup: None,
            grace: Duration::from_secs(60),
        }
    }

    fn validate(&self) -> Result<(), SoakError> {
        let bad = |m: String| Err(SoakError::Invalid(m));
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            return bad(format!("--rate must be in (0, 100000], got {}", self.rate));
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.faults) {
            return bad(format!("--faults must be in [0, 1], got {}", self.faults));
        }
        if !(self.max_rss_drift.is_finite() && self.max_rss_drift > 0.0) {
            return bad(format!(
                "--max-rss-drift must be positive, got {}",
                self.max_rss_drift
            ));
        }
        if self.config_template.is_none() && self.stall <= FIRST_BYTE {
            return bad(format!(
                "--stall ({:?}) must exceed the generated config's first-byte timeout ({FIRST_BYTE:?}), or a stall is no fault",
                self.stall
            ));
        }
        if let Some(w) = self.warmup {
            if w >= self.duration {
                return bad(format!(
                    "--warmup ({w:?}) must be shorter than --duration ({:?})",
                    self.duration
                ));
            }
        }
        Ok(())
    }
}

/// Parse a duration as the CLI takes it (`30s`, `10m`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

/// RSS sampling period.
const SAMPLE_MS: u64 = 500;
/// Client-side bound on one request; a request without a response by then is broken.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The generated config's first-byte timeout (the default stall is twice as long).
const FIRST_BYTE: Duration = Duration::from_secs(2);

/// Run one soak; returns the report and the soak's private directory (config, ledger, gateway
/// log), which is removed when every check passed and kept for inspection otherwise.
pub async fn run(opts: &SoakOptions) -> Result<(SoakReport, PathBuf), SoakError> {
    opts.validate()?;
    let dir = private_dir()?;
    let ledger = dir.join("ledger.sqlite");
    let upstream = FaultUpstream::start(FaultPlan {
        rate: opts.faults,
        seed: opts.seed,
        stall: opts.stall,
    })
    .await
    .map_err(|source| SoakError::Io {
        what: "cannot start the fault upstream".into(),
        source,
    })?;
    let config_text = match &opts.config_template {
        Some(path) => from_template(path, &upstream.base_url(), &ledger)?,
        None => generated_config(&upstream.base_url(), &ledger),
    };
    let config = dir.join("soak.yaml");
    write(&config, &config_text)?;
    let client = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .map_err(|e| SoakError::Gateway(format!("cannot build the HTTP client: {e}")))?;
    let gw =
        gateway::GatewayChild::start(&opts.triage_bin, &config, &dir.join("gateway.log"), &client)
            .await?;

    let total = (opts.rate * opts.duration.as_secs_f64()).round().max(1.0) as u64;
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_rss(gw.pid(), started, stop_rx));
    let replies = client::drive(&client, &gw.url, opts.rate, total).await;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let samples = sampler.await.unwrap_or_default();
    let last_rss = gw.rss_kib();
    let exit = gw.stop(opts.grace).await?;
    let counts = upstream.counts();
    drop(upstream);

    let store = SqliteStore::open(&ledger)?;
    let rows = store.recent(usize::try_from(total.saturating_mul(2) + 16).unwrap_or(usize::MAX))?;
    let load_secs = opts.duration.as_secs_f64();
    let warmup = opts
        .warmup
        .unwrap_or_else(|| opts.duration.mul_f64(0.4).max(Duration::from_secs(5)))
        .as_secs_f64()
        .min(load_secs / 2.0);
    let window = (load_secs * 0.15)
        .clamp(3.0, 60.0)
        .min((load_secs - warmup) / 2.0);
    let mut rss = RssReport::from_samples(&samples, SAMPLE_MS, load_secs, warmup, window);
    if rss.end_kib.is_none() {
        rss.end_kib = last_rss.map(|k| k as f64);
    }
    let report = SoakReport {
        rate: opts.rate,
        duration_secs: load_secs,
        achieved_rate: total as f64 / elapsed.max(1e-9),
        fault_rate: opts.faults,
        requests: total,
        streamed: replies.iter().filter(|r| r.streamed).count() as u64,
        upstream: counts,
        responses: Responses::tally(&replies),
        ledger: LedgerCounts::of(&rows),
        rss,
        gateway_exit: match &exit {
            gateway::Exit::Exited { status, .. } => status.clone(),
            gateway::Exit::Killed => {
                format!("still running {:?} after SIGTERM; killed", opts.grace)
            }
        },
        checks: Vec::new(),
    };
    let checks = checks(&report, &exit, opts);
    let report = SoakReport { checks, ..report };
    if report.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok((report, dir))
}

fn checks(r: &SoakReport, exit: &gateway::Exit, opts: &SoakOptions) -> Vec<Check> {
    let check = |name: &str, passed: bool, detail: String| Check {
        name: name.into(),
        passed,
        detail,
    };
    let resp = &r.responses;
    let mut out = vec![
        check(
            "one_response_per_request",
            resp.broken == 0 && resp.answers + resp.errors() == r.requests,
            format!(
                "{} requests: {} answers + {} well-formed errors, {} broken",
                r.requests,
                resp.answers,
                resp.errors(),
                resp.broken
            ),
        ),
        check(
            "distinct_request_ids",
            resp.with_request_id == r.requests && resp.distinct_request_ids == r.requests,
            format!(
                "{} responses with x-triage-request-id, {} distinct, of {} requests",
                resp.with_request_id, resp.distinct_request_ids, r.requests
            ),
        ),
        check(
            "one_ledger_row_per_request",
            r.ledger.rows == r.requests
                && r.ledger.ok() == resp.answers
                && r.ledger.errors() == resp.errors(),
            format!(
                "{} rows for {} requests; {} successes / {} failures recorded, {} / {} seen by clients",
                r.ledger.rows,
                r.requests,
                r.ledger.ok(),
                r.ledger.errors(),
                resp.answers,
                resp.errors()
            ),
        ),
        check(
            "rss_drift",
            r.rss.drift.is_some_and(|d| d < opts.max_rss_drift),
            match r.rss.drift {
                Some(d) => format!(
                    "{:+.2}% (bound {:.1}%)",
                    100.0 * d,
                    100.0 * opts.max_rss_drift
                ),
                None => "too few RSS samples to compare".into(),
            },
        ),
        check(
            "graceful_exit",
            matches!(exit, gateway::Exit::Exited { success: true, .. }),
            r.gateway_exit.clone(),
        ),
    ];
    if opts.config_template.is_none() && opts.faults > 0.0 {
        out.push(check(
            "faults_reach_clients",
            resp.errors() >= r.upstream.total() && r.upstream.total() > 0,
            format!(
                "{} faults injected, {} errors answered (no retries, no fallback: each fault is one error)",
                r.upstream.total(),
                resp.errors()
            ),
        ));
    }
    out
}

async fn sample_rss(
    pid: u32,
    started: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(f64, u64)> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(kib) = gateway::rss_kib(pid) {
                    samples.push((started.elapsed().as_secs_f64(), kib));
                }
            }
            _ = stop.changed() => return samples,
        }
    }
}

/// The config soaked by default: one remote backend (the fault upstream) with a short
/// first-byte timeout, no retries and no fallback, so every fault reaches a client.
pub fn generated_config(upstream: &str, ledger: &Path) -> String {
    format!(
        "# Written by `triage bench soak`.\n\
         server: {{ listen: 127.0.0.1:0, ledger: {ledger:?} }}\n\
         backends:\n\
         \x20 llm: {{ kind: openai, base_url: {upstream:?}, model: mock, timeouts: {{ first_byte: {first_byte}s }}, retry: {{ max_attempts: 1 }} }}\n\
         pricing:\n\
         \x20 llm: {{ input: 0.15, output: 0.60 }}\n\
         routes:\n\
         \x20 - {{ name: default, to: llm }}\n",
        ledger = ledger.display().to_string(),
        first_byte = FIRST_BYTE.as_secs(),
    )
}

fn from_template(path: &Path, upstream: &str, ledger: &Path) -> Result<String, SoakError> {
    let text = std::fs::read_to_string(path).map_err(|source| SoakError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    if !text.contains("${LEDGER}") {
        return Err(SoakError::Invalid(format!(
            "{}: a soak config template must set `server.ledger: ${{LEDGER}}` so the soak can count its rows",
            path.display()
        )));
    }
    if !text.contains("${UPSTREAM}") {
        return Err(SoakError::Invalid(format!(
            "{}: a soak config template must name the fault upstream as a base_url of `${{UPSTREAM}}`",
            path.display()
        )));
    }
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(text
        .replace("${UPSTREAM}", upstream)
        .replace("${LEDGER}", &ledger.display().to_string())
        .replace("${CONFIG_DIR}", &dir.display().to_string()))
}

fn write(path: &Path, text: &str) -> Result<(), SoakError> {
    std::fs::write(path, text).map_err(|source| SoakError::Io {
        what: format!("cannot write {}", path.display()),
        source,
    })
}

fn private_dir() -> Result<PathBuf, SoakError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("triage-soak-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| SoakError::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    Ok(dir)
}
