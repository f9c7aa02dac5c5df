#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The binary's `src/cli_dash.rs` (included here so it is compiled and tested without
//! building the `triage` binary): arguments parse as documented, `--print` prints the run's
//! tables (read back from a child process's stdout), and a bad run directory is an error
//! naming the file.

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

/// `dash RUN --hw FILE --print` as the binary runs it, writing to the real stdout. Run on its
/// own by `print_mode_prints_the_tables_of_the_run`, which reads what it printed.
#[tokio::test]
#[ignore = "run in a child process by print_mode_prints_the_tables_of_the_run"]
async fn print_child() {
    let cli =
        Cli::try_parse_from(["dash", &data("basic"), "--hw", &data("hw.json"), "--print"]).unwrap();
    cli_dash::run(cli.args).await.unwrap();
}

/// The cells of one printed table row (columns are separated by at least two spaces).
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The printed row whose first cell is `first` (after `from`, the table's title line).
fn row<'a>(out: &'a str, from: &str, first: &str) -> Vec<&'a str> {
    let start = out
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in:\n{out}"));
    out[start..]
        .lines()
        .map(cells)
        .find(|c| c.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} after {from:?} in:\n{out}"))
}

#[test]
fn print_mode_prints_the_tables_of_the_run() {
    // This test binary runs itself again with only `print_child` selected, so `cli_dash::run`
    // prints to a pipe exactly as `triage dash … --print` does, and the pipe is read here.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "print_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(child.stdout).unwrap();
    let err = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{stdout}\n{err}");
    // The test harness writes "test print_child ... " before what the child printed, and "ok"
    // and its summary after it.
    let out = stdout
        .split_once("test print_child ... ")
        .and_then(|(_, rest)| rest.rsplit_once("ok\n\ntest result: ok. 1 passed"))
        .map(|(printed, _)| printed)
        .unwrap_or_else(|| panic!("the child did not run print_child alone:\n{stdout}"));

    // The run's header line, from the run metadata in summary.json.
    let first = format!(
        "run {} · suite `quickstart` · 2026-11-21T12:00:00Z → 2026-11-21T12:01:00Z · \
         Test CPU @ 2.0GHz (2 cores) · git 0123abc",
        data("basic")
    );
    assert_eq!(out.lines().next(), Some(first.as_str()), "{out}");

    // All-tasks table: the run's three targets as columns, then rows of numbers from the
    // `*` groups of summary.json (slm: 7 requests, quality 0.571 in [0.077, 1.066], …).
    let header = out
        .lines()
        .skip_while(|l| *l != "All tasks")
        .nth(1)
        .map(cells);
    assert_eq!(header, Some(vec!["slm", "llm", "router"]), "{out}");
    let all = |first| row(out, "All tasks", first);
    assert_eq!(
        all("requests")[1..],
        ["7 (0 err)", "7 (0 err)", "7 (0 err)"]
    );
    assert_eq!(
        all("quality [95% CI]")[1..],
        ["0.57 [0.08–1.07]", "0.86 [0.51–1.21]", "0.71 [0.26–1.17]"]
    );
    assert_eq!(
        all("TTFT p50 / p99")[1..],
        ["35.0ms / 50.0ms", "390ms / 480ms", "37.0ms / 620ms"]
    );
    assert_eq!(
        all("E2E p50 / p99")[1..],
        ["150ms / 210ms", "830ms / 1.01s", "155ms / 1.10s"]
    );
    assert_eq!(all("output tok/s")[1..], ["6.0", "1.8", "3.7"]);
    assert_eq!(all("cost")[1..], ["$0.000030", "$0.000183", "$0.000065"]);
    assert_eq!(all("routed to")[1..], ["-", "-", "llm 2 · slm 5"]);

    // Per-task table (as `triage bench compare` prints it): its headers, and one row per
    // target and task with its count, pass rate, latency and cost.
    assert_eq!(
        row(out, "Per task", "run"),
        [
            "run",
            "target",
            "task",
            "n",
            "err",
            "pass %",
            "pass 95% CI",
            "quality",
            "goodput %",
            "TTFT p50 ms",
            "E2E p50 ms",
            "E2E p99 ms",
            "cost $",
            "$/correct"
        ],
        "{out}"
    );
    let task_rows: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|l| *l != "Per task")
        .skip(3)
        .take_while(|l| !l.is_empty())
        .map(cells)
        .collect();
    let targets_and_tasks: Vec<(&str, &str)> = task_rows.iter().map(|r| (r[1], r[2])).collect();
    assert_eq!(
        targets_and_tasks,
        [
            ("slm", "qa"),
            ("slm", "sentiment"),
            ("llm", "qa"),
            ("llm", "sentiment"),
            ("router", "qa"),
            ("router", "sentiment")
        ],
        "{out}"
    );
    assert_eq!(
        task_rows[0],
        [
            "basic",
            "slm",
            "qa",
            "3",
            "0",
            "33.3",
            "6.1–79.2",
            "0.333",
            "33.3",
            "45.0",
            "190.1",
            "210.1",
            "0.000013",
            "0.000013"
        ]
    );

    // The calibration of the run and the hardware report follow.
    assert!(
        out.contains(
            "Calibration of basic (SLM `slm` → LLM `llm`, 7 items): quality 0.571 → 0.857, APGR 0.714"
        ),
        "{out}"
    );
    assert_eq!(
        row(out, "Hardware: speed by threads", "pp512")[1..],
        ["1", "612.40", "8.10"]
    );
    assert!(
        out.ends_with("Roofline: 18.4 GB/s → ceiling 204.4 tok/s, efficiency 58.0%\n"),
        "{out}"
    );
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
