#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Ledger and spend counters on the SQLite store: write, read back, summarize, reopen.

use router::ledger::{LedgerRow, LedgerSummary};
use router::store::{SqliteStore, Store};

const DAY_MS: i64 = 86_400_000;
/// 2026-11-22T10:00:00Z
const T0: i64 = 1_795_341_600_000;

fn row(key: &str, task: &str, route: &str, backends: &[&str], cost: f64, status: u16) -> LedgerRow {
    LedgerRow {
        time_unix_ms: T0,
        key: key.into(),
        task: task.into(),
        route: route.into(),
        backends: backends.iter().map(|s| s.to_string()).collect(),
        answered_by: None,
        escalated: backends.len() > 1,
        tokens_in: 100,
        tokens_out: 20,
        cost_usd: cost,
        saved_usd: 0.5 - cost,
        ttft_ms: (status < 400).then_some(12.5),
        e2e_ms: 80.0,
        status,
        error_code: (status >= 400).then(|| "upstream_error".to_string()),
    }
}

#[test]
fn write_read_summarize_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        store
            .record(&row(
                "alice",
                "sentiment",
                "small-tasks",
                &["slm"],
                0.001,
                200,
            ))
            .unwrap();
        store
            .record(&row("alice", "qa", "cascade", &["slm", "llm"], 0.2, 200))
            .unwrap();
        store
            .record(&row(
                "key-0a1b2c3d4e5f",
                "unknown",
                "default",
                &["llm"],
                0.1,
                200,
            ))
            .unwrap();
        store
            .record(&row("alice", "unknown", "default", &["llm"], 0.0, 502))
            .unwrap();
        // The next UTC day: counts in the month, not in the day.
        let mut tomorrow = row("alice", "qa", "default", &["llm"], 1.0, 200);
        tomorrow.time_unix_ms = T0 + DAY_MS;
        store.record(&tomorrow).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let recent = store.recent(10).unwrap();
    assert_eq!(recent.len(), 5);
    assert_eq!(recent[0].time_unix_ms, T0 + DAY_MS);
    assert_eq!(
        recent[3],
        row("alice", "qa", "cascade", &["slm", "llm"], 0.2, 200)
    );

    let spend = store.spend(Some("alice"), T0).unwrap();
    assert!((spend.global_day_usd - 0.301).abs() < 1e-9, "{spend:?}");
    assert!((spend.global_month_usd - 1.301).abs() < 1e-9, "{spend:?}");
    assert!((spend.tenant_day_usd - 0.201).abs() < 1e-9, "{spend:?}");
    assert!((spend.tenant_month_usd - 1.201).abs() < 1e-9, "{spend:?}");
    let nobody = store.spend(Some("bob"), T0).unwrap();
    assert_eq!((nobody.tenant_day_usd, nobody.tenant_month_usd), (0.0, 0.0));

    let summary: LedgerSummary = store.summary().unwrap();
    assert_eq!(summary.total.requests, 5);
    assert_eq!(summary.total.errors, 1);
    assert_eq!(summary.total.escalated, 1);
    assert_eq!(summary.total.tokens_in, 500);
    let llm = summary.by_backend.iter().find(|g| g.name == "llm").unwrap();
    assert_eq!(llm.requests, 4);
    assert!((llm.cost_usd - 1.3).abs() < 1e-9);
    let slm = summary.by_backend.iter().find(|g| g.name == "slm").unwrap();
    assert_eq!((slm.requests, slm.errors), (1, 0));
    let default = summary
        .by_route
        .iter()
        .find(|g| g.name == "default")
        .unwrap();
    assert_eq!((default.requests, default.errors), (3, 1));
    assert_eq!(summary.by_task.iter().map(|g| g.requests).sum::<u64>(), 5);
    let text = summary.to_string();
    assert!(text.contains("by backend") && text.contains("by route") && text.contains("by task"));
    assert!(text.contains("TOTAL"));
}

#[test]
fn empty_ledger_summarizes_to_zero() {
    let store = SqliteStore::in_memory().unwrap();
    let s = store.summary().unwrap();
    assert_eq!(s.total.requests, 0);
    assert!(s.by_backend.is_empty());
    assert_eq!(store.spend(None, T0).unwrap().global_day_usd, 0.0);
}

#[test]
fn summary_text_never_sends_control_characters_to_the_terminal() {
    let store = SqliteStore::in_memory().unwrap();
    // Rows written before task names were validated, or by another writer.
    store
        .record(&row(
            "alice",
            "\u{1b}[2J\u{1b}]0;pwned\u{7}evil",
            "route\u{1b}[31m",
            &["llm\r"],
            0.1,
            200,
        ))
        .unwrap();
    let summary = store.summary().unwrap();
    let text = summary.to_string();
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(
        text.contains("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}evil"),
        "{text}"
    );
    assert!(text.contains("route\\u{1b}[31m"), "{text}");
    // JSON keeps the names as stored (serde escapes them).
    assert!(serde_json::to_string(&summary)
        .unwrap()
        .contains("\\u001b[2J"));
}
