//! The load runner: sends a suite's items to one target and records each request.
//!
//! Modes (from [`LoadSpec`]):
//! - `sequential`: one request at a time;
//! - `closed`: N workers, each sending its next request when the previous one finished;
//! - `open`: requests are *scheduled* at a constant or Poisson rate, independent of how fast
//!   the target answers. At most `max_in_flight` are outstanding; a request whose slot frees
//!   late leaves late, and its latency is still measured from its **intended** send time —
//!   the coordinated-omission correction (as oha's `--latency-correction`), so a stall of the
//!   target shows up in every request that should have been sent during it.
//!
//! Warm-up requests go first and are not recorded. Items are interleaved round-robin across
//! the suite's scenarios and cycled when `requests` or `duration_s` asks for more. Scorers run
//! as each answer arrives (so the progress bar shows a live pass rate) except `judge`, which
//! runs after the load phase so judge calls don't disturb the measured load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backends::{BackendError, ChatEvent, FinishReason, Usage};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};

use crate::record::{GapSummary, RecordError, RequestRecord};
use crate::scenario::{Arrival, LoadMode, LoadSpec, Scenario, ScenarioItem};
use crate::score::{ScoreInput, Scorer};
use crate::stats::LatencyHistogram;
use crate::target::{Routing, Target, TargetInfo};

/// Options for one target's run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub load: LoadSpec,
    /// Show an indicatif progress bar (it hides itself when stderr is not a terminal).
    pub progress: bool,
}

/// Judge targets for `judge` scorers: the suite default and any named ones.
#[derive(Clone, Default)]
pub struct Judges {
    pub default: Option<Arc<dyn Target>>,
    pub named: HashMap<String, Arc<dyn Target>>,
}

impl Judges {
    pub fn get(&self, name: Option<&str>) -> Option<&dyn Target> {
        match name {
            Some(n) => self.named.get(n).map(|t| t.as_ref()),
            None => self.default.as_deref(),
        }
    }
}

/// Everything one target's run produced.
#[derive(Debug)]
pub struct TargetRun {
    pub target: TargetInfo,
    pub records: Vec<RequestRecord>,
    /// Seconds from the start of the measured phase to the end of its last request.
    pub wall_s: f64,
    pub warmup: usize,
}

/// A unit of work: which scenario, which item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job {
    scenario: usize,
    item: usize,
}

fn interleave(scenarios: &[Scenario]) -> Vec<Job> {
    let longest = scenarios.iter().map(|s| s.items.len()).max().unwrap_or(0);
    let mut jobs = Vec::new();
    for k in 0..longest {
        for (s, scenario) in scenarios.iter().enumerate() {
            if k < scenario.items.len() {
                jobs.push(Job {
                    scenario: s,
                    item: k,
                });
            }
        }
    }
    jobs
}

/// Run every item of `scenarios` against `target` under `opts.load`.
pub async fn run_target(
    target: Arc<dyn Target>,
    scenarios: Arc<Vec<Scenario>>,
    opts: &RunOptions,
    judges: &Judges,
) -> TargetRun {
    let jobs = Arc::new(interleave(&scenarios));
    let load = &opts.load;
    let timeout = Duration::from_secs_f64(load.timeout_s.unwrap_or(300.0).max(0.001));
    let total = match (load.requests, load.duration_s) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(jobs.len()),
    };
    let deadline = load.duration_s.map(Duration::from_secs_f64);
    let bar = progress_bar(opts.progress, total, target.name());

    // Warm-up: sequential, not recorded.
    for w in 0..load.warmup {
        if jobs.is_empty() {
            break;
        }
        let job = jobs[w % jobs.len()];
        let now = Instant::now();
        let _ = execute(
            &*target,
            &scenarios[job.scenario],
            &scenarios[job.scenario].items[job.item],
            0,
            now,
            now,
            timeout,
        )
        .await;
    }

    let tracker = Arc::new(Tracker::new(bar.clone()));
    let phase_start = Instant::now();
    let results: Arc<Mutex<Vec<(Job, RequestRecord)>>> = Arc::new(Mutex::new(Vec::new()));
    if !jobs.is_empty() {
        match load.mode {
            LoadMode::Sequential | LoadMode::Closed => {
                let workers = if load.mode == LoadMode::Sequential {
                    1
                } else {
                    load.concurrency.unwrap_or(1).max(1)
                };
                let next = Arc::new(AtomicUsize::new(0));
                let mut handles = Vec::new();
                for _ in 0..workers {
                    let (target, scenarios, jobs, next, results, tracker) = (
                        target.clone(),
                        scenarios.clone(),
                        jobs.clone(),
                        next.clone(),
                        results.clone(),
                        tracker.clone(),
                    );
                    handles.push(tokio::spawn(async move {
                        loop {
                            if deadline.is_some_and(|d| phase_start.elapsed() >= d) {
                                break;
                            }
                            let seq = next.fetch_add(1, Ordering::Relaxed);
                            if total.is_some_and(|t| seq >= t) {
                                break;
                            }
                            let job = jobs[seq % jobs.len()];
                            let scenario = &scenarios[job.scenario];
                            let intended = Instant::now();
                            let record = execute(
                                &*target,
                                scenario,
                                &scenario.items[job.item],
                                seq as u64,
                                intended,
                                phase_start,
                                timeout,
                            )
                            .await;
                            tracker.add(&record);
                            push(&results, job, record);
                        }
                    }));
                }
                for h in handles {
                    let _ = h.await;
                }
            }
            LoadMode::Open => {
                let rate = load.rate.unwrap_or(1.0).max(1e-9);
                let permits = Arc::new(tokio::sync::Semaphore::new(
                    load.max_in_flight.unwrap_or(256).max(1),
                ));
                let mut rng = rand::rngs::StdRng::seed_from_u64(load.seed.unwrap_or(0));
                let mut offset = 0.0f64;
                let mut handles = Vec::new();
                let mut seq = 0usize;
                loop {
                    if total.is_some_and(|t| seq >= t) {
                        break;
                    }
                    if deadline.is_some_and(|d| offset >= d.as_secs_f64()) {
                        break;
                    }
                    let intended = phase_start + Duration::from_secs_f64(offset);
                    tokio::time::sleep_until(intended.into()).await;
                    // Waiting here is what open-loop clients hide; the record keeps `intended`.
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    let job = jobs[seq % jobs.len()];
                    let (target, scenarios, results, tracker) = (
                        target.clone(),
                        scenarios.clone(),
                        results.clone(),
                        tracker.clone(),
                    );
                    let this_seq = seq as u64;
                    handles.push(tokio::spawn(async move {
                        let scenario = &scenarios[job.scenario];
                        let record = execute(
                            &*target,
                            scenario,
                            &scenario.items[job.item],
                            this_seq,
                            intended,
                            phase_start,
                            timeout,
                        )
                        .await;
                        drop(permit);
                        tracker.add(&record);
                        push(&results, job, record);
                    }));
                    seq += 1;
                    offset += match load.arrival {
                        Arrival::Constant => 1.0 / rate,
                        Arrival::Poisson => {
                            let u: f64 = rng.random_range(f64::EPSILON..1.0);
                            -u.ln() / rate
                        }
                    };
                }
                for h in handles {
                    let _ = h.await;
                }
            }
        }
    }
    let wall_s = phase_start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut done = match Arc::try_unwrap(results) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(shared) => shared.lock().map(|v| v.clone()).unwrap_or_default(),
    };
    done.sort_by_key(|(_, r)| r.seq);

    // Judge scorers, after the load phase.
    for (job, record) in done.iter_mut() {
        let scenario = &scenarios[job.scenario];
        if record.error.is_some() {
            continue;
        }
        let item = &scenario.items[job.item];
        let mut any = false;
        for scorer in &scenario.scorers {
            if let Some(name) = scorer.judge_target() {
                let prompt = scenario.prompt.render(&item.fields).unwrap_or_default();
                let input = ScoreInput {
                    output: &record.output,
                    expected: item.expected.as_deref(),
                    item: &item.fields,
                    prompt: &prompt,
                };
                record
                    .scores
                    .push(scorer.score(&input, judges.get(name)).await);
                any = true;
            }
        }
        if any {
            finish_scores(record);
        }
    }

    TargetRun {
        target: target.info(),
        records: done.into_iter().map(|(_, r)| r).collect(),
        wall_s,
        warmup: load.warmup,
    }
}

fn push(results: &Mutex<Vec<(Job, RequestRecord)>>, job: Job, record: RequestRecord) {
    match results.lock() {
        Ok(mut v) => v.push((job, record)),
        Err(p) => p.into_inner().push((job, record)),
    }
}

fn finish_scores(record: &mut RequestRecord) {
    record.quality = if record.scores.is_empty() {
        0.0
    } else {
        record.scores.iter().map(|s| s.score).sum::<f64>() / record.scores.len() as f64
    };
    record.passed = record.error.is_none() && record.scores.iter().all(|s| s.passed);
}

/// What came back on the stream.
#[derive(Default)]
struct Observed {
    text: String,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    gaps_ns: Vec<u64>,
    logprobs: Vec<f32>,
    token_events: u64,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    routing: Routing,
    error: Option<BackendError>,
}

async fn observe(
    target: &dyn Target,
    request: backends::ChatRequest,
    timeout: Duration,
) -> Observed {
    let mut seen = Observed::default();
    let work = async {
        let reply = match target.send(request).await {
            Ok(r) => r,
            Err(e) => {
                seen.error = Some(e);
                return;
            }
        };
        seen.routing = reply.routing;
        let mut events = reply.events;
        while let Some(event) = events.next().await {
            match event {
                Err(e) => {
                    seen.error = Some(e);
                    return;
                }
                Ok(ChatEvent::Token {
                    choice: 0,
                    text,
                    logprobs,
                    at,
                }) => {
                    if let Some(prev) = seen.last_token {
                        seen.gaps_ns
                            .push(at.saturating_duration_since(prev).as_nanos() as u64);
                    }
                    seen.first_token.get_or_insert(at);
                    seen.last_token = Some(at);
                    seen.text.push_str(&text);
                    seen.logprobs.extend(logprobs);
                    seen.token_events += 1;
                }
                Ok(ChatEvent::Usage { usage, .. }) => seen.usage = Some(usage),
                Ok(ChatEvent::Done {
                    choice: 0,
                    finish_reason,
                    ..
                }) => seen.finish = Some(finish_reason),
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(timeout, work).await.is_err() {
        seen.error = Some(BackendError::Timeout {
            phase: backends::TimeoutPhase::Total,
            after: timeout,
        });
    }
    seen
}

/// Send one item and turn what happened into a record (scored, except by judges).
#[allow(clippy::too_many_arguments)]
async fn execute(
    target: &dyn Target,
    scenario: &Scenario,
    item: &ScenarioItem,
    seq: u64,
    intended: Instant,
    phase_start: Instant,
    timeout: Duration,
) -> RequestRecord {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut record = RequestRecord {
        target: target.name().to_string(),
        scenario: scenario.name.clone(),
        task: scenario.task.clone(),
        item_id: item.id.clone(),
        seq,
        expected: item.expected.clone(),
        ..RequestRecord::default()
    };
    let sent = Instant::now();
    record.intended_ms = ms(intended.saturating_duration_since(phase_start));
    record.sent_ms = ms(sent.saturating_duration_since(phase_start));
    record.send_delay_ms = ms(sent.saturating_duration_since(intended));
    let seen = match scenario.request(item) {
        Ok(request) => observe(target, request, timeout).await,
        Err(e) => Observed {
            error: Some(BackendError::InvalidRequest(e.to_string())),
            ..Observed::default()
        },
    };
    let end = Instant::now();
    record.e2e_ms = ms(end.saturating_duration_since(intended));
    record.e2e_from_send_ms = ms(end.saturating_duration_since(sent));
    record.ttft_ms = seen
        .first_token
        .map(|t| ms(t.saturating_duration_since(intended)));
    record.itl = GapSummary::from_ns(&seen.gaps_ns);
    record.tokens_in = seen.usage.as_ref().map(|u| u.prompt_tokens as u64);
    let tokens_out = match &seen.usage {
        Some(u) => Some(u.completion_tokens as u64),
        None if !seen.logprobs.is_empty() => Some(seen.logprobs.len() as u64),
        None if seen.token_events > 0 => Some(seen.token_events),
        None => None,
    };
    record.tokens_out = tokens_out;
    if let (Some(first), Some(last), Some(n)) = (seen.first_token, seen.last_token, tokens_out) {
        if n > 1 {
            record.tpot_ms = Some(ms(last.saturating_duration_since(first)) / (n - 1) as f64);
        }
    }
    if !seen.logprobs.is_empty() {
        let mean =
            seen.logprobs.iter().map(|l| *l as f64).sum::<f64>() / seen.logprobs.len() as f64;
        record.mean_logprob = Some(mean);
        record.confidence = Some(mean.exp());
    }
    record.cost_usd = seen.routing.cost_usd.or_else(|| {
        target.info().price.map(|p| {
            p.cost(
                record.tokens_in.unwrap_or(0),
                record.tokens_out.unwrap_or(0),
                record.e2e_from_send_ms / 1e3,
            )
        })
    });
    record.routing = seen.routing;
    record.finish_reason = seen.finish.as_ref().map(|f| f.as_str().to_string());
    record.output = seen.text;
    record.gaps_ns = seen.gaps_ns;
    if let Some(e) = seen.error {
        record.error = Some(RecordError {
            code: e.code().to_string(),
            message: e.to_string(),
        });
    } else {
        let prompt = scenario.prompt.render(&item.fields).unwrap_or_default();
        let input = ScoreInput {
            output: &record.output,
            expected: item.expected.as_deref(),
            item: &item.fields,
            prompt: &prompt,
        };
        for scorer in scenario
            .scorers
            .iter()
            .filter(|s| !matches!(s, Scorer::Judge(_)))
        {
            record.scores.push(scorer.score(&input, None).await);
        }
    }
    finish_scores(&mut record);
    let tpot = record.tpot_ms;
    record.slo_met =
        record.error.is_none() && scenario.slo.met(record.ttft_ms, tpot, record.e2e_ms);
    record
}

/// Live progress: done count, pass rate and p50 end-to-end latency.
struct Tracker {
    bar: ProgressBar,
    passed: AtomicU64,
    done: AtomicU64,
    e2e: Mutex<LatencyHistogram>,
}

impl Tracker {
    fn new(bar: ProgressBar) -> Self {
        Self {
            bar,
            passed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            e2e: Mutex::new(LatencyHistogram::new()),
        }
    }

    fn add(&self, record: &RequestRecord) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let passed = self
            .passed
            .fetch_add(record.passed as u64, Ordering::Relaxed)
            + record.passed as u64;
        let p50 = match self.e2e.lock() {
            Ok(mut h) => {
                h.record_ms(record.e2e_ms);
                h.quantile_ms(0.5)
            }
            Err(_) => f64::NAN,
        };
        self.bar.inc(1);
        self.bar.set_message(format!(
            "pass {:.1}%  p50 {:.0} ms",
            100.0 * passed as f64 / done as f64,
            p50
        ));
    }
}

fn progress_bar(enabled: bool, total: Option<usize>, name: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t as u64),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}"
    } else {
        "{prefix:>12} {spinner} {pos} requests {elapsed_precise} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What [`run_suite`] produced.
#[derive(Debug)]
pub struct SuiteRun {
    pub dir: std::path::PathBuf,
    pub summary: crate::results::Summary,
    pub runs: Vec<TargetRun>,
}

/// Run a loaded suite against each target in turn (one at a time, so targets don't compete for
/// the machine), then write the run directory `out`. `config` is recorded in the metadata as
/// given (the command line passes the suite, load and target specs).
pub async fn run_suite(
    suite: crate::scenario::Suite,
    targets: Vec<Arc<dyn Target>>,
    judges: Judges,
    opts: RunOptions,
    out: &std::path::Path,
    config: serde_json::Value,
) -> crate::Result<SuiteRun> {
    use crate::results;
    if targets.is_empty() {
        return Err(crate::BenchError::invalid(
            &suite.path,
            "no targets to run (give --target NAME=SPEC)",
        ));
    }
    let started_at = results::now_rfc3339();
    let scenarios = Arc::new(suite.scenarios);
    let mut runs = Vec::new();
    for target in targets {
        runs.push(run_target(target, scenarios.clone(), &opts, &judges).await);
    }
    let mut model_files = Vec::new();
    for run in &runs {
        for f in &run.target.model_files {
            if !model_files
                .iter()
                .any(|m: &results::ModelFile| m.path == f.display().to_string())
            {
                model_files.push(results::hash_file(f)?);
            }
        }
    }
    let id = format!("{}-{}", started_at.replace([':', '-'], ""), suite.file.name);
    let meta = results::RunMetadata {
        id,
        started_at,
        finished_at: results::now_rfc3339(),
        suite: suite.path.display().to_string(),
        git_revision: results::git_revision(
            suite
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new(".")),
        ),
        host: results::HostInfo::detect(),
        targets: runs.iter().map(|r| r.target.clone()).collect(),
        model_files,
        config,
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
