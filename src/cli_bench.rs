//! `triage bench`: clap structs and dispatch only; the work is in the `bench` library.
//!
//! - `bench run --suite F --target NAME=SPEC... --out DIR`: run a suite, write a run directory;
//! - `bench compare RUN...`: a table per target and task (terminal, Markdown, CSV, JSON);
//! - `bench calibrate RUN`: sweep the cascade threshold offline, optionally write it into a
//!   triage.yaml and plot the frontier;
//! - `bench routellm`: evaluate simple routers on RouteLLM's recorded GSM8K/MMLU answers;
//! - `bench soak`: a bounded soak of `triage serve` with faults (`cli_soak`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use bench::compare::{self, Format};
use bench::progress::{Progress, Silent, TerminalBar};
use bench::replay::routellm::{self, Benchmark, SimpleRouter};
use bench::runner::RunOptions;
use bench::scenario::{validate_load, Arrival, LoadMode, Suite, SuiteTarget};
use bench::score::Judges;
use bench::spec::{parse_price, TargetSpec};
use bench::suite::run_suite;
use bench::target::Target;
use router::pricing::BackendPrice;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Run a suite of scenarios against one or more targets and write a run directory.
    Run(RunArgs),
    /// Compare runs: one row per run, target and task.
    Compare(CompareArgs),
    /// Sweep the cascade threshold offline from a run with both SLM and LLM answers.
    Calibrate(CalibrateArgs),
    /// Evaluate simple routers on RouteLLM's recorded Mixtral vs GPT-4 answers (APGR, CPT).
    Routellm(RoutellmArgs),
    /// Soak `triage serve` at a fixed rate against a fault-injecting mock upstream: one response
    /// and one ledger row per request, flat memory.
    Soak(crate::cli_soak::SoakArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Suite file (YAML), e.g. scenarios/quickstart.yaml.
    #[arg(long)]
    pub suite: PathBuf,
    /// A target as NAME=SPEC: openai:BASE_URL#MODEL[;key_env=VAR], anthropic:BASE_URL#MODEL[;key_env=VAR],
    /// llama:PATH[;slots=N;threads=N;ctx=N;completion=auto|on|off;lanes=N;cache=on|off], replay:FILE.jsonl,
    /// router:CONFIG[;model=NAME] (the gateway of a triage.yaml, in-process),
    /// classifier:HEADS[;model=GGUF;threads=N] (encoder classifier heads from `route train --head
    /// embedding`: files or directories, comma-separated). Repeatable; overrides the suite's targets.
    #[arg(long = "target", value_name = "NAME=SPEC")]
    pub targets: Vec<String>,
    /// Price of a target: NAME=IN,OUT (USD per 1M input/output tokens) or NAME=hour:USD. Repeatable.
    #[arg(long = "price", value_name = "NAME=PRICE")]
    pub prices: Vec<String>,
    /// Run directory to write (requests.jsonl, summary.json, histograms.json, metadata.json).
    #[arg(long)]
    pub out: PathBuf,
    /// At most this many items per scenario.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Show K items of each scenario without examples of its own as few-shot examples: drawn from
    /// the calibration half of its task (the seed of `bench calibrate --per-task`), before
    /// `--limit`, and not measured (listed in metadata.json).
    #[arg(long, value_name = "K")]
    pub few_shot_from_items: Option<usize>,
    /// Run only this half of each task's items (calibration or evaluation): the split of
    /// `bench calibrate --per-task`, over the items left after examples and --limit, so a router
    /// calibrated on a full run is measured on its held-out items.
    #[arg(long, value_name = "HALF")]
    pub half: Option<bench::half::Half>,
    /// With --half: run only fold k of K of the half's items (seeded, stratified by gold answer):
    /// cross-fitting, for a target trained on that half with this fold left out
    /// (`route train --leave-out-fold k/K`), so no item is answered by a head that saw it.
    #[arg(long, value_name = "k/K", requires = "half")]
    pub fold: Option<bench::half::Fold>,
    /// Seed of the calibration/evaluation split that --half and --few-shot-from-items use: the
    /// `--seed` given to `bench calibrate --per-task` (7 by default for both).
    #[arg(long, value_name = "N", default_value_t = bench::fewshot::split_seed())]
    pub split_seed: u64,
    /// Reuse the retrieval stored in this earlier run directory (RUN/rag/<scenario>/) for the RAG
    /// scenarios: the same passages for every item, no embedding model needed; refused when the
    /// corpus or the chunking changed since.
    #[arg(long, value_name = "RUN")]
    pub retrieval_from: Option<PathBuf>,
    /// Don't write the requests' messages into requests.jsonl (private data; overrides the
    /// suite's `record_prompts`).
    #[arg(long)]
    pub no_record_prompts: bool,
    /// Load mode: sequential, closed or open (overrides the suite).
    #[arg(long, value_parser = ["sequential", "closed", "open"])]
    pub mode: Option<String>,
    /// Workers for closed-loop mode.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Requests per second for open-loop mode.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Poisson arrivals in open-loop mode (default: constant rate).
    #[arg(long)]
    pub poisson: bool,
    /// Recorded requests per target (items are cycled).
    #[arg(long)]
    pub requests: Option<usize>,
    /// Send for this many seconds instead of a count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Unrecorded warm-up requests per target.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Target (by name, from --target) that grades `judge` scorers.
    #[arg(long)]
    pub judge: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Run directories (or summary.json files).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// table, markdown, csv or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only the per-target totals, not one row per task.
    #[arg(long)]
    pub totals: bool,
}

#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// A run directory holding both the SLM's and the LLM's answers to every item.
    pub run: PathBuf,
    /// More run directories whose records join RUN's: a target measured in runs of its own on
    /// the same suite, split and seed (e.g. an encoder classifier cross-fitted fold by fold).
    /// Results (fit.json, the plot) are written into RUN.
    #[arg(long = "with", value_name = "RUN")]
    pub with: Vec<PathBuf>,
    /// Target name of a small model, a first step. Repeatable with --per-task: each task may go
    /// to any of them, alone or as a cascade's first step (e.g. `--small slm --small enc`, an
    /// encoder classifier). The global sweep uses the first (its answers must carry token
    /// log-probabilities).
    #[arg(long = "small", visible_alias = "slm", default_values_t = ["slm".to_string()])]
    pub small: Vec<String>,
    /// Target name of the large model.
    #[arg(long, default_value = "llm")]
    pub llm: String,
    /// Share of the LLM's quality to reach at least cost.
    #[arg(long, default_value_t = 0.95)]
    pub target_share: f64,
    /// Per task: a policy reaches the target when its calibration-half quality does (the point
    /// estimate), instead of when the one-sided 95% lower bound of its per-item difference from
    /// the best single target does (the default).
    #[arg(long)]
    pub target_point: bool,
    /// Write the result into this triage.yaml: the global sweep's threshold as `min_confidence`
    /// of the cascade route; with --per-task, one route per task (in a marked block, each with
    /// its evidence as a comment), written only if the edited config loads.
    #[arg(long, value_name = "CONFIG")]
    pub write: Option<PathBuf>,
    /// Per task: the router config whose privacy rule (`when: { pii: true }` to a local backend)
    /// the fit applies — items whose recorded prompt it would keep local are answered by that
    /// backend under every policy (default: the --write config).
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Which route to update when several carry `min_confidence`.
    #[arg(long)]
    pub route: Option<String>,
    /// Write an SVG plot of the curve (default: RUN/calibration.svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the whole calibration as JSON.
    #[arg(long)]
    pub json: bool,
    /// Per task: choose always-SLM, always-LLM or a cascade on one signal on a seeded
    /// calibration half of each task's items and report it on the other half (writes RUN/fit.json).
    #[arg(long)]
    pub per_task: bool,
    /// Per task: instead of a quality target, the best quality at most this cost per request (USD).
    #[arg(long)]
    pub max_cost: Option<f64>,
    /// Per task, with a budget over all tasks: spend at most this share of what sending every
    /// item to the LLM costs (on the calibration half; 0.5 = half). When the per-task choices
    /// cost more, the tasks that lose the least quality for the saving take cheaper policies.
    #[arg(long, value_name = "SHARE")]
    pub budget_share: Option<f64>,
    /// With --budget-share: hold the budget on the calibration half's point total instead of
    /// its one-sided 95% upper bound over new items of the same mix (the default).
    #[arg(long, requires = "budget_share")]
    pub budget_point: bool,
    /// Per task: seed of the calibration/evaluation split.
    #[arg(long, default_value_t = bench::fewshot::split_seed())]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct RoutellmArgs {
    /// RouteLLM's eval data directory (gsm8k_gsm8k_responses.csv, mmlu_responses/, *_contaminated_prompts.jsonl).
    #[arg(long)]
    pub data: PathBuf,
    /// gsm8k or mmlu.
    #[arg(long, default_value = "gsm8k")]
    pub benchmark: String,
    /// Routers to evaluate: random, length, keyword, classifier (triage's learned classifier,
    /// cross-fitted on the benchmark's own correctness labels), oracle. Repeatable.
    #[arg(long = "router", default_values_t = ["random".to_string(), "length".to_string(), "keyword".to_string(), "classifier".to_string(), "oracle".to_string()])]
    pub routers: Vec<String>,
    /// Threshold bins, as RouteLLM's --num-results.
    #[arg(long, default_value_t = 10)]
    pub bins: usize,
    /// Write an SVG plot of the curves.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Run(args) => run_cmd(args).await,
        BenchCommand::Compare(args) => {
            let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
            let rows = compare::rows(&args.runs, args.totals)?;
            print!("{}", compare::render(&rows, format));
            Ok(())
        }
        BenchCommand::Calibrate(args) => calibrate_cmd(args),
        BenchCommand::Routellm(args) => routellm_cmd(args),
        BenchCommand::Soak(args) => crate::cli_soak::run(args).await,
    }
}

async fn run_cmd(args: RunArgs) -> anyhow::Result<()> {
    let mut suite = Suite::load_seeded(
        &args.suite,
        args.limit,
        args.few_shot_from_items,
        args.split_seed,
    )?;
    if let Some(half) = args.half {
        suite.keep_half_seeded(half, args.split_seed);
    }
    if let Some(fold) = args.fold {
        suite.keep_fold(fold, args.split_seed, true);
    }
    suite.retrieval_from = args.retrieval_from.clone();
    let load = &mut suite.file.load;
    if let Some(mode) = &args.mode {
        load.mode = match mode.as_str() {
            "closed" => LoadMode::Closed,
            "open" => LoadMode::Open,
            _ => LoadMode::Sequential,
        };
    }
    if args.concurrency.is_some() {
        load.concurrency = args.concurrency;
    }
    if args.rate.is_some() {
        load.rate = args.rate;
    }
    if args.poisson {
        load.arrival = Arrival::Poisson;
    }
    if args.requests.is_some() {
        load.requests = args.requests;
        load.duration_s = None;
    }
    if args.duration.is_some() {
        load.duration_s = args.duration;
        load.requests = None;
    }
    if let Some(w) = args.warmup {
        load.warmup = w;
    }
    validate_load(load).map_err(|m| anyhow::anyhow!("load settings: {m}"))?;

    let mut prices: BTreeMap<String, BackendPrice> = BTreeMap::new();
    for p in &args.prices {
        let (name, price) = parse_price(p)?;
        prices.insert(name, price);
    }
    // Targets: the command line's, else the suite's entries that carry a spec.
    let mut specs: Vec<(TargetSpec, PathBuf)> = Vec::new();
    for t in &args.targets {
        specs.push((TargetSpec::parse_assignment(t)?, PathBuf::from(".")));
    }
    if specs.is_empty() {
        let base = args.suite.parent().unwrap_or(Path::new(".")).to_path_buf();
        for t in &suite.file.targets {
            match t {
                SuiteTarget::Entry(e) if e.spec.is_some() => {
                    let spec = TargetSpec::parse(&e.name, e.spec.as_deref().unwrap_or_default())?;
                    if let Some(p) = e.price {
                        prices.entry(e.name.clone()).or_insert(p);
                    }
                    specs.push((spec, base.clone()));
                }
                other => bail!(
                    "target `{}` of {} has no spec: pass --target {}=SPEC (e.g. llama:models/SmolLM2-135M-Instruct.Q4_1.gguf or openai:http://127.0.0.1:8080/v1#auto)",
                    other.name(),
                    args.suite.display(),
                    other.name()
                ),
            }
        }
    }
    if specs.is_empty() {
        bail!("no targets: pass --target NAME=SPEC");
    }
    let mut targets: Vec<Arc<dyn Target>> = Vec::new();
    for (spec, base) in &specs {
        eprintln!("[bench] preparing target {} ({})", spec.name, spec.text);
        targets.push(spec.build(base, prices.get(&spec.name).copied()).await?);
    }
    let judge_name = args.judge.clone().or_else(|| suite.file.judge.clone());
    let judges = Judges {
        default: match &judge_name {
            None => None,
            Some(name) => Some(
                targets
                    .iter()
                    .find(|t| t.name() == name)
                    .cloned()
                    .with_context(|| format!("judge `{name}` is not one of the --target names"))?,
            ),
        },
        named: targets
            .iter()
            .map(|t| (t.name().to_string(), t.clone()))
            .collect(),
    };
    let config = serde_json::json!({
        "suite": suite.file,
        "targets": specs.iter().map(|(s, _)| serde_json::json!({"name": s.name, "spec": s.text})).collect::<Vec<_>>(),
        "prices": prices,
        "limit": args.limit,
        "few_shot_from_items": args.few_shot_from_items,
        "split_seed": args.split_seed,
        "retrieval_from": args.retrieval_from,
        "judge": judge_name,
    });
    let progress: Arc<dyn Progress> = if !args.quiet && std::io::stderr().is_terminal() {
        Arc::new(TerminalBar::default())
    } else {
        Arc::new(Silent)
    };
    let opts = RunOptions {
        load: suite.file.load.clone(),
        progress,
        record_prompts: suite.file.record_prompts && !args.no_record_prompts,
    };
    let done = run_suite(suite, targets, judges, opts, &args.out, config).await?;
    let rows = compare::rows_of(&done.summary, &done.summary.run.id, false);
    print!("{}", compare::render(&rows, Format::Table));
    eprintln!("[bench] wrote {}", done.dir.display());
    Ok(())
}

fn calibrate_cmd(args: CalibrateArgs) -> anyhow::Result<()> {
    let mut records = bench::results::read_records(&args.run)?;
    for more in &args.with {
        records.extend(bench::results::read_records(more)?);
    }
    if args.per_task || args.max_cost.is_some() || args.budget_share.is_some() {
        return fit_cmd(&args, &records);
    }
    let slm = args.small.first().map_or("slm", String::as_str);
    let cal = bench::calibrate::calibrate(&records, slm, &args.llm, args.target_share)?;
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| args.run.join("calibration.svg"));
    bench::calibrate::plot_svg(&cal, &plot)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cal)?);
    } else {
        println!(
            "{} items ({} skipped): SLM `{}` quality {:.3}, LLM `{}` quality {:.3}",
            cal.items, cal.skipped_items, cal.slm, cal.slm_quality, cal.llm, cal.llm_quality
        );
        println!(
            "APGR {}   CPT(50%) {}   CPT(80%) {}   CPT(95%) {}",
            opt(cal.apgr, 3),
            pct(cal.cpt.get("50%").copied().flatten()),
            pct(cal.cpt.get("80%").copied().flatten()),
            pct(cal.cpt.get("95%").copied().flatten())
        );
        match &cal.chosen {
            Some(p) => println!(
                "min_confidence {:.6} reaches {:.1}% of LLM quality ({:.3}) with {:.1}% LLM calls at ${:.6}/request",
                p.threshold,
                100.0 * p.quality / cal.llm_quality.max(f64::EPSILON),
                p.quality,
                100.0 * p.strong_share,
                p.cost_per_request
            ),
            None => println!("no threshold reaches {:.0}% of LLM quality", 100.0 * cal.target_share),
        }
        println!("plot: {}", plot.display());
    }
    if let Some(config) = &args.write {
        let Some(p) = &cal.chosen else {
            bail!("nothing to write: no threshold reaches the target share");
        };
        let old =
            bench::calibrate::write_min_confidence(config, args.route.as_deref(), p.threshold)?;
        eprintln!(
            "[bench] {}: min_confidence {} -> {:.6}",
            config.display(),
            old,
            p.threshold
        );
    }
    Ok(())
}

/// `bench calibrate --per-task`: the per-task fit, reported on each task's evaluation half.
fn fit_cmd(args: &CalibrateArgs, records: &[bench::record::RequestRecord]) -> anyhow::Result<()> {
    let options = bench::fit::FitOptions {
        small: args.small.clone(),
        llm: args.llm.clone(),
        target_share: args.target_share,
        target_lower_bound: !args.target_point,
        max_cost: args.max_cost,
        budget_share: args.budget_share,
        budget_upper_bound: !args.budget_point,
        seed: args.seed,
        ..bench::fit::FitOptions::default()
    };
    let config = match args.config.as_ref().or(args.write.as_ref()) {
        Some(path) => Some(
            router::config::Config::load(path)
                .with_context(|| format!("loading {} for its privacy rule", path.display()))?,
        ),
        None => None,
    };
    let privacy = config
        .as_ref()
        .and_then(|c| privacy_rule(c, &options.small));
    let fit = bench::fit::fit_with(records, &options, privacy.as_ref())?;
    let path = args.run.join("fit.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&fit)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("[bench] wrote {}", path.display());
    // The files first: the printed report can be cut short (a closed pipe) without losing them.
    if let Some(config) = &args.write {
        write_fit(config, &fit, &args.run)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&fit)?);
        return Ok(());
    }
    crate::fit_report::print(&fit, args.budget_point);
    Ok(())
}

/// The config's privacy rule as the fit applies it: its detector and the local backend it sends
/// flagged prompts to, when that backend is a small target of the run.
fn privacy_rule<'a>(
    config: &'a router::config::Config,
    small: &[String],
) -> Option<bench::fit::Privacy<'a>> {
    let name = config.policy.privacy_rule()?;
    let rule = config.policy.rules().iter().find(|r| r.name == name)?;
    let router::policy::RuleAction::To(to) = &rule.action else {
        return None;
    };
    if !small.contains(to) {
        eprintln!(
            "[bench] the privacy rule `{name}` sends to `{to}`, not a small target of the run: the fit leaves it out"
        );
        return None;
    }
    Some(bench::fit::Privacy {
        detector: &config.pii,
        rule: name.to_string(),
        to: to.clone(),
    })
}

fn routellm_cmd(args: RoutellmArgs) -> anyhow::Result<()> {
    let benchmark: Benchmark = args.benchmark.parse().map_err(anyhow::Error::msg)?;
    let (rows, dropped) = routellm::load(&args.data, benchmark)?;
    let (weak, strong) = routellm::model_accuracy(&rows);
    let mut evals = Vec::new();
    for name in &args.routers {
        let scores = if name == "classifier" {
            routellm::classifier_scores(&rows, 5, 0)?
        } else {
            SimpleRouter::parse(name)
                .map_err(anyhow::Error::msg)?
                .scores(&rows)
        };
        evals.push(routellm::evaluate(&rows, name, &scores, args.bins));
    }
    if let Some(plot) = &args.plot {
        let curves: Vec<(&str, &[bench::calibrate::CurvePoint])> = evals
            .iter()
            .map(|e| (e.router.as_str(), e.points.as_slice()))
            .collect();
        bench::calibrate::plot_curves(
            plot,
            &format!("RouteLLM {}", args.benchmark),
            &curves,
            weak,
            strong,
            None,
        )?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "benchmark": args.benchmark, "items": rows.len(), "contaminated_dropped": dropped,
                "weak_accuracy": weak, "strong_accuracy": strong, "routers": evals,
            }))?
        );
        return Ok(());
    }
    println!(
        "{}: {} prompts ({} contaminated dropped); Mixtral-8x7B {:.1}%, GPT-4 {:.1}%",
        args.benchmark,
        rows.len(),
        dropped,
        100.0 * weak,
        100.0 * strong
    );
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "router", "APGR", "CPT(20%)", "CPT(50%)", "CPT(80%)", "CPT(95%)"
    );
    for e in &evals {
        println!(
            "{:<10} {:>7} {:>9} {:>9} {:>9} {:>9}",
            e.router,
            opt(e.apgr, 3),
            pct(e.cpt.get("20%").copied().flatten()),
            pct(e.cpt.get("50%").copied().flatten()),
            pct(e.cpt.get("80%").copied().flatten()),
            pct(e.cpt.get("95%").copied().flatten())
        );
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", 100.0 * v))
        .unwrap_or_else(|| "-".into())
}

/// `--per-task --write CONFIG`: put the fitted routes into CONFIG, keeping its text, and only
/// if the result loads as a gateway config (so the routes act exactly as fitted).
fn write_fit(
    config: &std::path::Path,
    fit: &bench::fit::Fit,
    run: &std::path::Path,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let updated = bench::fit::write::insert(&text, fit, &run.display().to_string())
        .with_context(|| format!("editing {}", config.display()))?;
    let dir = config
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    router::config::Config::parse(&updated, &config.display().to_string(), dir).with_context(
        || {
            format!(
                "the fitted routes would not load in {}; left it unchanged",
                config.display()
            )
        },
    )?;
    std::fs::write(config, updated).with_context(|| format!("writing {}", config.display()))?;
    eprintln!(
        "[bench] {}: {} per-task route(s) written",
        config.display(),
        fit.tasks.len()
    );
    Ok(())
}
