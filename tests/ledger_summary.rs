//! `triage ledger summary` over several ledgers (issue 15 item 3): the summary of two SQLite
//! files (one per replica) is the summary of one file holding both files' rows, with
//! `--ledger A --ledger B` and with `--ledger A B`; and it reads a Postgres ledger by URL (a
//! private server, `router::testing::postgres::PgServer`) with the same totals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use router::ledger::LedgerRow;
use router::store::{PgOptions, PgStore, SqliteStore, Store};
use router::testing::postgres::PgServer;
use serde_json::Value;

fn row(i: u64) -> LedgerRow {
    LedgerRow {
        time_unix_ms: 1_767_225_600_000 + i as i64 * 60_000,
        key: ["-", "alice"][i as usize % 2].into(),
        task: ["qa", "sentiment", "extraction"][i as usize % 3].into(),
        route: ["default", "small"][i as usize % 2].into(),
        backends: if i.is_multiple_of(5) {
            vec![]
        } else if i.is_multiple_of(2) {
            vec!["slm".into()]
        } else {
            vec!["slm".into(), "llm".into()]
        },
        escalated: i % 4 == 1,
        tokens_in: 7 + i,
        tokens_out: i * 2,
        cost_usd: i as f64 * 3.5e-6,
        saved_usd: 2e-6,
        ttft_ms: (!i.is_multiple_of(3)).then_some(5.0 + i as f64),
        e2e_ms: 20.0 + i as f64 * 0.5,
        status: if i.is_multiple_of(5) { 429 } else { 200 },
        error_code: (i.is_multiple_of(5)).then(|| "budget_exhausted".into()),
        answered_by: None,
    }
}

fn summary_json(ledgers: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["ledger", "summary", "--json", "--ledger"])
        .args(ledgers)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn summary_json_flags(ledgers: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage"));
    cmd.args(["ledger", "summary", "--json"]);
    for l in ledgers {
        cmd.args(["--ledger", l]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Equal JSON, numbers compared to 1e-9 relative (sums taken in another order).
fn assert_close(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-9 * (1.0 + x.abs()), "{at}: {x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: {a} vs {b}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_close(p, q, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, p) in x {
                assert_close(p, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

fn sqlite_with(path: &Path, rows: impl Iterator<Item = LedgerRow>) {
    let store = SqliteStore::open(path).unwrap();
    for r in rows {
        store.record(&r).unwrap();
    }
}

#[test]
fn two_sqlite_ledgers_sum_to_the_ledger_of_all_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, all) = (
        dir.path().join("a.sqlite"),
        dir.path().join("b.sqlite"),
        dir.path().join("all.sqlite"),
    );
    sqlite_with(&a, (0..37).map(row));
    sqlite_with(&b, (37..100).map(row));
    sqlite_with(&all, (0..100).map(row));
    let (a, b, all) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        all.to_str().unwrap(),
    );
    let expected = summary_json(&[all]);
    assert_eq!(expected["total"]["requests"], 100);
    assert_close(&summary_json_flags(&[a, b]), &expected, "summary");
    assert_close(&summary_json(&[a, b]), &expected, "summary");
    // The text form names every group of both files.
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["ledger", "summary", "--ledger", a, b])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("extraction") && text.contains("TOTAL"),
        "{text}"
    );
    // A missing file is named.
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["ledger", "summary", "--ledger", a, "/nonexistent/x.sqlite"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.sqlite"));
}

#[test]
fn a_postgres_ledger_is_read_by_url_and_summed_with_a_sqlite_one() {
    let pg = PgServer::start().unwrap();
    let store = PgStore::connect(&pg.url().unwrap(), PgOptions::default()).unwrap();
    for i in 0..60 {
        store.record(&row(i)).unwrap();
    }
    store.flush().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (part, first, all) = (
        dir.path().join("part.sqlite"),
        dir.path().join("first.sqlite"),
        dir.path().join("all.sqlite"),
    );
    sqlite_with(&first, (0..60).map(row));
    sqlite_with(&part, (60..90).map(row));
    sqlite_with(&all, (0..90).map(row));
    let url = pg.url_text();
    assert_close(
        &summary_json(&[&url]),
        &summary_json(&[first.to_str().unwrap()]),
        "postgres",
    );
    assert_close(
        &summary_json(&[&url, part.to_str().unwrap()]),
        &summary_json(&[all.to_str().unwrap()]),
        "postgres + sqlite",
    );
}
