//! The load generator: sends a suite's items to one target on a schedule and collects one
//! [`RequestRecord`] per request (each request is sent and recorded by the private
//! `request` module).
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
//! as each answer arrives (so the progress shows a live pass rate) except `judge`, which runs
//! after the load phase so judge calls don't disturb the measured load. The schedule follows
//! tokio's clock, so tests run it on paused time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::progress::{Progress, Silent};
use crate::record::{RequestRecord, TargetRun};
use crate::request::{Job, Planned, RequestContext};
use crate::scenario::{Arrival, LoadMode, LoadSpec, Scenario};
use crate::score::Judges;
use crate::stats::LatencyHistogram;
use crate::target::Target;

/// Options for one target's run.
#[derive(Clone)]
pub struct RunOptions {
    /// Scheduling mode, request count or duration, warm-up and per-request timeout.
    pub load: LoadSpec,
    /// Where progress goes ([`Silent`] by default; the command line shows a terminal bar).
    pub progress: Arc<dyn Progress>,
    /// Write each request's messages into its record (`RequestRecord::prompt`).
    pub record_prompts: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            load: LoadSpec::default(),
            progress: Arc::new(Silent),
            record_prompts: true,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("load", &self.load)
            .field("record_prompts", &self.record_prompts)
            .finish_non_exhaustive()
    }
}

/// Every item of every scenario, round-robin across scenarios.
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

/// Records of the measured phase, in completion order, with the job each one ran.
type Done = Arc<Mutex<Vec<(Job, RequestRecord)>>>;

/// Run every item of `scenarios` against `target` under `opts.load`.
pub async fn run_target(
    target: Arc<dyn Target>,
    scenarios: Arc<Vec<Scenario>>,
    opts: &RunOptions,
    judges: &Judges,
) -> TargetRun {
    let jobs = Arc::new(interleave(&scenarios));
    let load = &opts.load;
    let total = match (load.requests, load.duration_s) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(jobs.len()),
    };
    opts.progress.start(target.name(), total.map(|t| t as u64));
    let mut ctx = RequestContext {
        target: target.clone(),
        scenarios: scenarios.clone(),
        phase_start: Instant::now(),
        timeout: Duration::from_secs_f64(load.timeout_s.unwrap_or(300.0).max(0.001)),
        record_prompts: opts.record_prompts,
    };

    // Warm-up: sequential, not recorded.
    for w in 0..load.warmup {
        if jobs.is_empty() {
            break;
        }
        let intended = Instant::now();
        ctx.phase_start = intended;
        let planned = Planned {
            job: jobs[w % jobs.len()],
            seq: 0,
            intended,
        };
        let _ = ctx.execute(planned).await;
    }

    ctx.phase_start = Instant::now();
    let ctx = Arc::new(ctx);
    let tracker = Arc::new(Tracker::new(opts.progress.clone()));
    let done: Done = Arc::new(Mutex::new(Vec::new()));
    if !jobs.is_empty() {
        let schedule = Schedule {
            ctx: ctx.clone(),
            jobs,
            total,
            deadline: load.duration_s.map(Duration::from_secs_f64),
            tracker,
            done: done.clone(),
        };
        match load.mode {
            LoadMode::Sequential => schedule.closed(1).await,
            LoadMode::Closed => schedule.closed(load.concurrency.unwrap_or(1).max(1)).await,
            LoadMode::Open => schedule.open(load).await,
        }
    }
    let wall_s = ctx.phase_start.elapsed().as_secs_f64();
    opts.progress.finish();

    let mut done = match Arc::try_unwrap(done) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(shared) => shared.lock().map(|v| v.clone()).unwrap_or_default(),
    };
    done.sort_by_key(|(_, r)| r.seq);
    for (job, record) in done.iter_mut() {
        ctx.judge(*job, record, judges).await;
    }
    TargetRun {
        target: target.info(),
        records: done.into_iter().map(|(_, r)| r).collect(),
        wall_s,
        warmup: load.warmup,
    }
}

/// One target's measured phase: what to send, when to stop, where records go.
struct Schedule {
    ctx: Arc<RequestContext>,
    jobs: Arc<Vec<Job>>,
    /// Requests to send, when bounded by count.
    total: Option<usize>,
    /// How long to keep sending, when bounded by time.
    deadline: Option<Duration>,
    tracker: Arc<Tracker>,
    done: Done,
}

impl Schedule {
    fn job(&self, seq: usize) -> Job {
        self.jobs[seq % self.jobs.len()]
    }

    /// Closed loop: `workers` workers, each sending its next request as soon as its previous
    /// one finished (sequential is one worker). A request is intended to leave when it leaves.
    async fn closed(self, workers: usize) {
        let this = Arc::new(self);
        let next = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (this, next) = (this.clone(), next.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    if this
                        .deadline
                        .is_some_and(|d| this.ctx.phase_start.elapsed() >= d)
                    {
                        break;
                    }
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if this.total.is_some_and(|t| seq >= t) {
                        break;
                    }
                    let job = this.job(seq);
                    let planned = Planned {
                        job,
                        seq: seq as u64,
                        intended: Instant::now(),
                    };
                    let record = this.ctx.execute(planned).await;
                    this.finished(job, record);
                }
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    }

    /// Open loop: request `k` is intended at the `k`-th arrival of a constant or Poisson
    /// process, whatever the target does; it leaves then, or when one of `max_in_flight` slots
    /// frees if that is later.
    async fn open(self, load: &LoadSpec) {
        let rate = load.rate.unwrap_or(1.0).max(1e-9);
        let permits = Arc::new(tokio::sync::Semaphore::new(
            load.max_in_flight.unwrap_or(256).max(1),
        ));
        let mut rng = rand::rngs::StdRng::seed_from_u64(load.seed.unwrap_or(0));
        let this = Arc::new(self);
        let mut offset = 0.0f64;
        let mut handles = Vec::new();
        let mut seq = 0usize;
        loop {
            if this.total.is_some_and(|t| seq >= t) {
                break;
            }
            if this.deadline.is_some_and(|d| offset >= d.as_secs_f64()) {
                break;
            }
            let intended = this.ctx.phase_start + Duration::from_secs_f64(offset);
            tokio::time::sleep_until(intended).await;
            // Waiting here is what open-loop clients hide; the record keeps `intended`.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let job = this.job(seq);
            let planned = Planned {
                job,
                seq: seq as u64,
                intended,
            };
            let this_task = this.clone();
            handles.push(tokio::spawn(async move {
                let record = this_task.ctx.execute(planned).await;
                drop(permit);
                this_task.finished(job, record);
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

    fn finished(&self, job: Job, record: RequestRecord) {
        self.tracker.add(&record);
        match self.done.lock() {
            Ok(mut v) => v.push((job, record)),
            Err(p) => p.into_inner().push((job, record)),
        }
    }
}

/// Live progress: done count, pass rate and p50 end-to-end latency.
struct Tracker {
    progress: Arc<dyn Progress>,
    passed: AtomicU64,
    done: AtomicU64,
    e2e: Mutex<LatencyHistogram>,
}

impl Tracker {
    fn new(progress: Arc<dyn Progress>) -> Self {
        Self {
            progress,
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
        self.progress.inc(&format!(
            "pass {:.1}%  p50 {:.0} ms",
            100.0 * passed as f64 / done as f64,
            p50
        ));
    }
}
