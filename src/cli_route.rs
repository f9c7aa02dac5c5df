//! `triage route …` and `triage ledger …`: clap structs and dispatch only; the work is in the
//! `router` crate (`router::explain`, `router::classifier`, `router::store`).

use std::path::PathBuf;

use anyhow::Context as _;
use router::store::Store as _;

/// `triage route`: inspect and train the router without running the gateway.
#[derive(clap::Subcommand, Debug)]
pub enum RouteCommand {
    /// Print the routing decision for a request and the trace of rules checked, without
    /// calling any backend.
    Explain(ExplainArgs),
    /// Train the task classifier from labelled JSONL (`{"text": …, "task": …}` per line).
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
    /// Labelled examples: JSON Lines with string fields `text` and `task`.
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Where to write the model (JSON), for `classifier.model` in triage.yaml.
    #[arg(long)]
    pub out: PathBuf,
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
    /// The ledger database (server.ledger in triage.yaml).
    #[arg(long, default_value = "triage-ledger.sqlite")]
    pub ledger: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: RouteCommand) -> anyhow::Result<()> {
    match cmd {
        RouteCommand::Explain(args) => explain(args),
        RouteCommand::Train(args) => train(args),
    }
}

pub async fn run_ledger(cmd: LedgerCommand) -> anyhow::Result<()> {
    match cmd {
        LedgerCommand::Summary(args) => {
            if !args.ledger.exists() {
                anyhow::bail!("{}: no such ledger file", args.ledger.display());
            }
            let store = router::store::SqliteStore::open(&args.ledger)?;
            let summary = store.summary()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{summary}");
            }
            Ok(())
        }
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let config = router::config::Config::load(&args.config)?;
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
    let explanation =
        router::explain::explain_with(&config, &request, args.tenant.as_deref(), &state)
            .with_context(|| args.request.display().to_string())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(())
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    if args.data.is_empty() {
        anyhow::bail!("give at least one --data FILE.jsonl");
    }
    let mut examples = Vec::new();
    for path in &args.data {
        examples.extend(router::classifier::read_examples(path)?);
    }
    let options = router::classifier::TrainOptions {
        epochs: args.epochs,
        ..Default::default()
    };
    let model = router::classifier::train(&examples, &options)?;
    model.save(&args.out)?;
    let counts: Vec<String> = model
        .trained_on
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!(
        "trained on {} examples ({}); {} weights; wrote {}",
        examples.len(),
        counts.join(", "),
        model.weights.len() * model.tasks.len(),
        args.out.display()
    );
    Ok(())
}
