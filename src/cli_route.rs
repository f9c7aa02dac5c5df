//! `triage route …` and `triage ledger …`: clap structs and dispatch only; the work is in the
//! `router` crate (`router::explain`, `router::classifier`, `router::store`) and, for training
//! on scenarios and datasets, `bench::classifier_train`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `triage route`: inspect and train the router without running the gateway.
#[derive(clap::Subcommand, Debug)]
pub enum RouteCommand {
    /// Print the routing decision for a request and the trace of rules checked, without
    /// calling any backend.
    Explain(ExplainArgs),
    /// Train the task classifier on scenario items (labelled with their `task:`), the shared
    /// datasets' texts whose task is explicit, and labelled JSONL; measure it on a held-out part.
    /// With `--head embedding`: encoder classifier heads (one per task) for `kind: classifier`
    /// backends and `classifier:` harness targets, from `choices` scenario items; with `--head
    /// embedding --task-classifier`: the task classifier over sentence vectors (`classifier:
    /// { kind: embedding }`), on the n-gram model's texts and split.
    Train(TrainArgs),
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The routing config (triage.yaml).
    #[arg(long, default_value = "triage.yaml")]
    pub config: PathBuf,
    /// A chat completion request body (JSON), as a client would POST it.
    pub request: PathBuf,
    /// The tenant the request's API key belongs to (for tenant conditions and budgets).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Gateway state to decide against (JSON: {"local": {"slm": {"queue_depth": 9, …}},
    /// "spend": {"global_day_usd": 4.2, …}}); default: idle engine, nothing spent.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Scenario files (suites stand for their scenarios): every item, rendered as the gateway
    /// sees it, labelled with the scenario's `task:`. Repeatable; `scenarios/*.yaml` works.
    #[arg(long = "scenario", num_args = 1..)]
    pub scenarios: Vec<PathBuf>,
    /// The shared evaluation datasets (e.g. ../shared/datasets): texts of the datasets whose
    /// task is explicit (`bench::classifier_data::SHARED_SOURCES`), read in place. With `--head
    /// embedding`: labelled rows of the scenarios' kind (`bench::head_data::HEAD_SOURCES`; their
    /// training parts train, their held-out parts are measured).
    #[arg(long)]
    pub datasets: Option<PathBuf>,
    /// Extra labelled examples: JSON Lines with string fields `text` and `task`.
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Share of each task (and source) held out to measure the model; 0 trains on everything.
    #[arg(long, default_value_t = 0.5)]
    pub holdout: f64,
    /// Seed of the split and of the per-dataset samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// At most this many texts from each shared dataset (with `--head embedding`: training rows
    /// per label of each dataset).
    #[arg(long, default_value_t = 100)]
    pub per_dataset: usize,
    /// The gateway threshold (`classifier.threshold`) the report also counts accuracy at.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Where to write the model (JSON), for `classifier.model` in triage.yaml; with
    /// `--head embedding`, the directory the heads are written to (`TASK.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// What to train: `ngram` (the router's task classifier) or `embedding` (encoder
    /// classifier heads over the `--encoder` model's vectors, one per task of the `choices`
    /// scenarios given; the gold label is each item's expected answer).
    #[arg(long, default_value = "ngram")]
    pub head: String,
    /// With `--head embedding`: train on this half of each task's items only (calibration or
    /// evaluation: the split of `bench run --half`; the other half is measured). Default: all.
    #[arg(long, value_name = "HALF")]
    pub half: Option<bench::half::Half>,
    /// With `--head embedding --half calibration`: train without fold k of K of that half
    /// (cross-fitting: `bench run --half calibration --fold k/K` answers exactly that fold).
    #[arg(long, value_name = "k/K")]
    pub leave_out_fold: Option<bench::half::Fold>,
    /// With `--head embedding`: at most this many items per scenario (`bench run --limit`),
    /// so the halves are the run's.
    #[arg(long)]
    pub limit: Option<usize>,
    /// With `--head embedding`: items drawn as few-shot examples first, as `bench run
    /// --few-shot-from-items K` draws them (the halves are computed over the items left).
    #[arg(long, value_name = "K")]
    pub few_shot_from_items: Option<usize>,
    /// With `--head embedding`: the split seed (`bench run --split-seed`).
    #[arg(long, value_name = "N", default_value_t = bench::fewshot::split_seed())]
    pub split_seed: u64,
    /// With `--head embedding`: the sentence-embedding GGUF the heads read.
    #[arg(long, default_value = "models/all-MiniLM-L6-v2.gguf")]
    pub encoder: PathBuf,
    /// With `--head embedding`: encoder threads.
    #[arg(long, default_value_t = 1)]
    pub threads: i32,
    /// With `--head embedding`: train the router's task classifier (`classifier: { kind:
    /// embedding }`) instead of `kind: classifier` heads — one head whose labels are the tasks,
    /// on the n-gram model's texts and held-out split (same `--scenario`, `--datasets`,
    /// `--data`, `--holdout`, `--seed`); `--out` is the head file.
    #[arg(long)]
    pub task_classifier: bool,
    /// With `--head embedding`: L2 penalty of the logistic regression.
    #[arg(long, default_value_t = 0.01)]
    pub l2: f32,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
}

/// `triage ledger`: read the request ledger.
#[derive(clap::Subcommand, Debug)]
pub enum LedgerCommand {
    /// Totals by backend, route and task.
    Summary(LedgerSummaryArgs),
}

#[derive(clap::Args, Debug)]
pub struct LedgerSummaryArgs {
    /// The ledger (server.ledger in triage.yaml): a SQLite file or a postgres://user@host:port/db
    /// URL. Repeat it, or give several after one flag, to sum several ledgers (one per replica).
    #[arg(long, num_args = 1.., default_value = "triage-ledger.sqlite")]
    pub ledger: Vec<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: RouteCommand) -> anyhow::Result<()> {
    match cmd {
        RouteCommand::Explain(args) => explain(args).await,
        RouteCommand::Train(args) => match args.head.as_str() {
            "ngram" if args.task_classifier => {
                anyhow::bail!("--task-classifier trains an embedding model: add --head embedding")
            }
            "ngram" => train(args).await,
            "embedding" if args.task_classifier => train(args).await,
            "embedding" => train_heads(args).await,
            other => anyhow::bail!("--head {other}: expected ngram or embedding"),
        },
    }
}

pub async fn run_ledger(cmd: LedgerCommand) -> anyhow::Result<()> {
    match cmd {
        LedgerCommand::Summary(args) => {
            let mut parts = Vec::new();
            for text in &args.ledger {
                let location = router::store::LedgerLocation::parse(text, Path::new("."))?;
                if let router::store::LedgerLocation::Sqlite(path) = &location {
                    if !path.exists() {
                        anyhow::bail!("{}: no such ledger file", path.display());
                    }
                }
                let store = router::store::open(&location)?;
                parts.push(
                    store
                        .summary()
                        .with_context(|| format!("ledger {location}"))?,
                );
            }
            let summary = match parts.len() {
                1 => parts.remove(0),
                _ => router::ledger::LedgerSummary::merge(parts),
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{summary}");
            }
            Ok(())
        }
    }
}

async fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let config = router::config::Config::load(&args.config)?;
    for warning in &config.warnings {
        eprintln!("warning: {}: {warning}", args.config.display());
    }
    let request = std::fs::read_to_string(&args.request)
        .with_context(|| format!("{}: cannot read the request", args.request.display()))?;
    let state = match &args.state {
        None => router::policy::StateSnapshot::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the state", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: bad state JSON", p.display()))?
        }
    };
    let request = router::explain::parse_request(&request)
        .with_context(|| args.request.display().to_string())?;
    let classified = classify_with_encoder(&config, &request).await?;
    let explanation = router::explain::explain_request(
        &config,
        &request,
        args.tenant.as_deref(),
        &state,
        classified.as_ref(),
    )
    .with_context(|| args.request.display().to_string())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(())
}

/// With `classifier: { kind: embedding }`: load its encoder (one thread) and classify as the
/// gateway would; `None` when the request does not need it (or the classifier is n-gram).
#[cfg(feature = "llama")]
async fn classify_with_encoder(
    config: &router::config::Config,
    request: &backends::ChatRequest,
) -> anyhow::Result<Option<router::classifier::Classification>> {
    let Some(model) = config.classifier.embedding() else {
        return Ok(None);
    };
    let mut engine_config = backends::EmbeddingEngineConfig::new(&model.encoder);
    engine_config.threads = 1;
    let engine =
        tokio::task::spawn_blocking(move || backends::embed::EmbeddingEngine::load(engine_config))
            .await?
            .with_context(|| format!("loading the encoder {}", model.encoder.display()))?;
    let vector =
        |text: String| async move { engine.embed_prefix(&text).await.map_err(|e| e.to_string()) };
    Ok(router::explain::classify_request(config, request, None, vector).await)
}

/// Without the engine the embedding classifier cannot run: the explanation says so.
#[cfg(not(feature = "llama"))]
async fn classify_with_encoder(
    config: &router::config::Config,
    request: &backends::ChatRequest,
) -> anyhow::Result<Option<router::classifier::Classification>> {
    let vector = |_: String| async { Err("this build has no local engine".to_string()) };
    Ok(router::explain::classify_request(config, request, None, vector).await)
}

async fn train_heads(args: TrainArgs) -> anyhow::Result<()> {
    if args.scenarios.is_empty() {
        anyhow::bail!(
            "--head embedding trains on `choices` scenarios: give --scenario FILE.yaml..."
        );
    }
    let setup = bench::head_train::HeadSetup {
        scenarios: args.scenarios.clone(),
        half: args.half,
        split_seed: args.split_seed,
        limit: args.limit,
        few_shot_from_items: args.few_shot_from_items,
        leave_out: args.leave_out_fold,
        encoder: args.encoder.clone(),
        out_dir: args.out.clone(),
        datasets: args.datasets.clone(),
        per_label: args.per_dataset,
        threads: args.threads,
        options: backends::head::HeadOptions {
            l2: args.l2,
            ..Default::default()
        },
    };
    let report = bench::head_train::train_heads(&setup).await?;
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("{}: cannot write the report", path.display()))?;
    }
    Ok(())
}

/// The router's task classifier: n-gram (`--head ngram`) or embedding (`--head embedding
/// --task-classifier`), on the same texts and split.
async fn train(args: TrainArgs) -> anyhow::Result<()> {
    if args.scenarios.is_empty() && args.data.is_empty() {
        anyhow::bail!("give --scenario FILE.yaml... and/or --data FILE.jsonl");
    }
    let mut extra = Vec::new();
    for path in &args.data {
        let name = path.display().to_string();
        for e in router::classifier::read_examples(path)? {
            extra.push((name.clone(), e));
        }
    }
    let setup = bench::classifier_train::TrainSetup {
        scenarios: args.scenarios.clone(),
        datasets: args.datasets.clone(),
        extra,
        holdout: args.holdout,
        seed: args.seed,
        per_source: args.per_dataset,
        threshold: args.threshold,
        options: router::classifier::TrainOptions {
            epochs: args.epochs,
            ..Default::default()
        },
    };
    let (report, wrote) = if args.task_classifier {
        let options = backends::head::HeadOptions {
            l2: args.l2,
            ..Default::default()
        };
        let (head, report) = bench::classifier_train_embedding::train_task_head(
            &setup,
            &args.encoder,
            args.threads,
            &options,
        )
        .await?;
        head.save(&args.out)?;
        let wrote = format!("{} tasks over {}", head.labels.len(), head.encoder);
        (report, wrote)
    } else {
        let (model, report) = bench::classifier_train::train_classifier(&setup)?;
        model.save(&args.out)?;
        let wrote = format!(
            "{} tasks, {} weights",
            model.tasks.len(),
            model.weights.len() * model.tasks.len()
        );
        (report, wrote)
    };
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("{}: cannot write the report", path.display()))?;
    }
    println!("\nwrote {} ({wrote})", args.out.display());
    Ok(())
}
