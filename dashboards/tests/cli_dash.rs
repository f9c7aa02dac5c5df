#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The binary's `src/cli_dash.rs` (included here so it is compiled and tested without
//! building the `triage` binary): arguments parse as documented, `--print` works on a
//! recorded run, and a bad run directory is an error naming the file.

#[path = "../../src/cli_dash.rs"]
mod cli_dash;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: cli_dash::DashArgs,
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn arguments_parse() {
    let cli = Cli::try_parse_from([
        "dash",
        "runs/a",
        "runs/b",
        "--live",
        "http://127.0.0.1:8080",
        "--hw",
        "hw.json",
        "--print",
    ])
    .unwrap();
    assert_eq!(cli.args.runs.len(), 2);
    assert_eq!(cli.args.live.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(
        cli.args.hw.as_deref(),
        Some(std::path::Path::new("hw.json"))
    );
    assert!(cli.args.print);
    let bare = Cli::try_parse_from(["dash"]).unwrap();
    assert!(bare.args.runs.is_empty() && !bare.args.print);
}

#[tokio::test]
async fn print_mode_runs_on_recorded_data() {
    let cli =
        Cli::try_parse_from(["dash", &data("basic"), "--hw", &data("hw.json"), "--print"]).unwrap();
    cli_dash::run(cli.args).await.unwrap();
}

#[tokio::test]
async fn missing_run_dir_names_the_file() {
    let cli = Cli::try_parse_from(["dash", "/nonexistent/run", "--print"]).unwrap();
    let err = cli_dash::run(cli.args).await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/run/summary.json"), "{err}");
}

#[tokio::test]
async fn malformed_summary_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("summary.json"),
        "{\n  \"version\": 1,\n  \"run\": {},\n  \"groups\": \"oops\"\n}\n",
    )
    .unwrap();
    let cli = Cli::try_parse_from(["dash", dir.path().to_str().unwrap(), "--print"]).unwrap();
    let err = cli_dash::run(cli.args).await.unwrap_err().to_string();
    assert!(err.contains("summary.json:line"), "{err}");
    assert!(err.contains("field `"), "{err}");
}

#[tokio::test]
async fn malformed_request_line_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/summary.json", data("empty")),
        dir.path().join("summary.json"),
    )
    .unwrap();
    let good = std::fs::read_to_string(format!("{}/requests.jsonl", data("basic"))).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        dir.path().join("requests.jsonl"),
        format!("{first}\n{{\"target\": 3}}\n"),
    )
    .unwrap();
    let cli = Cli::try_parse_from(["dash", dir.path().to_str().unwrap(), "--print"]).unwrap();
    let err = cli_dash::run(cli.args).await.unwrap_err().to_string();
    assert!(err.contains("requests.jsonl:line 2"), "{err}");
    assert!(err.contains("target"), "{err}");
}
