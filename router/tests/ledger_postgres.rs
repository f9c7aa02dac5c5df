//! The Postgres ledger (issue 15 item 3) against a real, private Postgres ([`PgServer`]: a
//! fresh cluster in a temporary directory on a free port, stopped and removed on drop): the
//! table is created when missing, rows and totals are the SQLite ledger's for the same input,
//! a burst through the gateway leaves exactly one row per request, and a Postgres restart in
//! the middle of a run loses no row and doubles none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::options;
use router::gateway::Locality;
use router::ledger::{now_unix_ms, LedgerRow, LedgerSummary};
use router::store::{PgOptions, PgStore, SqliteStore, Store};
use router::testing::postgres::PgServer;
use router::testing::TestGateway;
use serde_json::json;

/// Two backends chosen by task, per-token prices, and a (roomy) budget, so every request also
/// reads its spend windows from the store.
const CONFIG: &str = r#"
backends:
  slm: { kind: llama, model: models/test.gguf, slots: 2 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm: { input: 1.0, output: 2.0 }
  slm: { machine_usd_per_hour: 0.0 }
budgets:
  daily_usd: 1000.0
  on_exhausted: refuse
routes:
  - { name: small, when: { task: [small] }, to: slm }
  - { name: default, to: llm }
"#;

fn gateway(store: Arc<dyn Store>) -> TestGateway {
    TestGateway::from_yaml(CONFIG)
        .options(options())
        .store(store)
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap()
}

/// Request `i`: its own task name (so rows can be matched one by one), small or big, streamed
/// or not, of a varying length.
fn request(i: usize) -> (serde_json::Value, String) {
    let task = if i.is_multiple_of(3) {
        "small".to_string()
    } else {
        format!("big-{i}")
    };
    let body = json!({
        "model": "auto",
        "stream": i.is_multiple_of(2),
        "messages": [{ "role": "user", "content": "word ".repeat(1 + i % 7) }],
    });
    (body, task)
}

/// The columns of a row that do not depend on timing, comparable across gateways.
fn shape(r: &LedgerRow) -> String {
    format!(
        "{} {} {} {:?} {} {} {} {} {:.9} {:.9} {} {:?}",
        r.key,
        r.task,
        r.route,
        r.backends,
        r.escalated,
        r.tokens_in,
        r.tokens_out,
        r.status,
        r.cost_usd,
        r.saved_usd,
        r.ttft_ms.is_some(),
        r.error_code
    )
}

fn rows_for_both_stores() -> Vec<LedgerRow> {
    let now = now_unix_ms();
    (0..40u64)
        .map(|i| LedgerRow {
            time_unix_ms: now - (i as i64) * 3_600_000 * 7, // across several days
            key: ["-", "alice", "bob"][i as usize % 3].into(),
            task: ["qa", "sentiment", "a \"quoted\", comma task"][i as usize % 3].into(),
            route: ["default", "small", "cascade"][i as usize % 3].into(),
            backends: match i % 4 {
                0 => vec![],
                1 => vec!["slm".into()],
                _ => vec!["slm".into(), "llm".into()],
            },
            escalated: i % 4 == 3,
            tokens_in: 10 + i,
            tokens_out: 3 * i,
            cost_usd: i as f64 * 1.25e-5,
            saved_usd: 1e-6 - i as f64 * 2e-7,
            ttft_ms: (!i.is_multiple_of(5)).then_some(i as f64 * 1.5),
            e2e_ms: 10.0 + i as f64,
            status: if i % 6 == 5 { 502 } else { 200 },
            error_code: (i % 6 == 5).then(|| "upstream_error".into()),
            answered_by: None,
        })
        .collect()
}

/// Same groups and totals; timing means too when `timings` (the same rows, not just the same
/// requests).
fn assert_summaries_match(a: &LedgerSummary, b: &LedgerSummary, timings: bool) {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + x.abs());
    let groups = |s: &LedgerSummary| {
        let mut v = vec![s.total.clone()];
        v.extend(s.by_backend.iter().cloned());
        v.extend(s.by_route.iter().cloned());
        v.extend(s.by_task.iter().cloned());
        v
    };
    let (ga, gb) = (groups(a), groups(b));
    assert_eq!(ga.len(), gb.len(), "{a:#?}\n{b:#?}");
    for (x, y) in ga.iter().zip(&gb) {
        assert_eq!(
            (
                &x.name,
                x.requests,
                x.errors,
                x.escalated,
                x.tokens_in,
                x.tokens_out
            ),
            (
                &y.name,
                y.requests,
                y.errors,
                y.escalated,
                y.tokens_in,
                y.tokens_out
            )
        );
        assert_eq!(x.ttft_requests, y.ttft_requests, "{}", x.name);
        assert!(close(x.cost_usd, y.cost_usd), "{x:?} {y:?}");
        assert!(close(x.saved_usd, y.saved_usd), "{x:?} {y:?}");
        if !timings {
            continue;
        }
        assert!(close(x.mean_e2e_ms, y.mean_e2e_ms), "{x:?} {y:?}");
        match (x.mean_ttft_ms, y.mean_ttft_ms) {
            (Some(p), Some(q)) => assert!(close(p, q), "{x:?} {y:?}"),
            (p, q) => assert_eq!(p, q),
        }
    }
}

#[test]
fn table_is_created_and_rows_totals_and_spend_match_sqlite() {
    let pg = PgServer::start().unwrap();
    assert_eq!(
        pg.psql("SELECT to_regclass('triage_ledger') IS NULL")
            .unwrap(),
        "t"
    );
    let store = PgStore::connect(&pg.url().unwrap(), PgOptions::default()).unwrap();
    let indexes = pg
        .psql("SELECT indexname FROM pg_indexes WHERE tablename = 'triage_ledger' ORDER BY 1")
        .unwrap();
    assert_eq!(
        indexes,
        "triage_ledger_key_time\ntriage_ledger_pkey\ntriage_ledger_time"
    );
    // The SQLite ledger's columns, in its order (after the id).
    let columns = pg
        .psql(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM \
             information_schema.columns WHERE table_name = 'triage_ledger'",
        )
        .unwrap();
    assert_eq!(
        columns,
        "id,time_ms,key,task,route,backends,answered_by,escalated,tokens_in,tokens_out,\
         cost_usd,saved_usd,ttft_ms,e2e_ms,status,error_code"
    );

    let sqlite = SqliteStore::in_memory().unwrap();
    let rows = rows_for_both_stores();
    for row in &rows {
        store.record(row).unwrap();
        sqlite.record(row).unwrap();
    }
    // Spend read while the rows may still be buffered counts them (never less than written).
    let now = now_unix_ms();
    let pending_spend = store.spend(Some("alice"), now).unwrap();
    store.flush().unwrap();
    assert_eq!(store.writer_stats().unwrap().pending_rows, 0);
    assert_eq!(
        store.writer_stats().unwrap().written_rows,
        rows.len() as u64
    );

    assert_eq!(store.recent(1000).unwrap(), sqlite.recent(1000).unwrap());
    assert_summaries_match(&store.summary().unwrap(), &sqlite.summary().unwrap(), true);
    for tenant in [None, Some("alice"), Some("bob"), Some("nobody")] {
        for at in [now, now - 86_400_000 * 3, now - 86_400_000 * 40] {
            let (p, s) = (
                store.spend(tenant, at).unwrap(),
                sqlite.spend(tenant, at).unwrap(),
            );
            let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
            assert!(
                close(p.global_day_usd, s.global_day_usd)
                    && close(p.global_month_usd, s.global_month_usd)
                    && close(p.tenant_day_usd, s.tenant_day_usd)
                    && close(p.tenant_month_usd, s.tenant_month_usd),
                "{tenant:?} at {at}: postgres {p:?} sqlite {s:?}"
            );
        }
    }
    let settled = store.spend(Some("alice"), now).unwrap();
    assert!(pending_spend.tenant_month_usd >= settled.tenant_month_usd - 1e-12);

    // A second store on the same database finds the table and adds to it.
    drop(store);
    let again = PgStore::connect(&pg.url().unwrap(), PgOptions::default()).unwrap();
    again.record(&rows[0]).unwrap();
    again.flush().unwrap();
    assert_eq!(
        pg.psql("SELECT COUNT(*) FROM triage_ledger").unwrap(),
        (rows.len() + 1).to_string()
    );
}

#[test]
fn a_wrong_database_stops_the_store_at_start_without_showing_the_password() {
    let pg = PgServer::start().unwrap();
    let url = router::store::PostgresUrl::parse(&format!(
        "postgres://triage:hunter2@127.0.0.1:{}/no_such_db",
        pg.port()
    ))
    .unwrap();
    let e = PgStore::connect(&url, PgOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("no_such_db"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_500_leaves_one_row_per_request_with_sqlites_values() {
    const N: usize = 500;
    let pg = PgServer::start().unwrap();
    let pg_store: Arc<dyn Store> =
        Arc::new(PgStore::connect(&pg.url().unwrap(), PgOptions::default()).unwrap());
    let on_pg = gateway(pg_store.clone());
    let on_sqlite = gateway(Arc::new(SqliteStore::in_memory().unwrap()));

    async fn burst(
        gw: &TestGateway,
    ) -> Vec<Result<router::testing::Reply, router::testing::HarnessError>> {
        let requests: Vec<_> = (0..N).map(request).collect();
        futures::future::join_all(
            requests
                .iter()
                .map(|(body, task)| gw.chat(body.clone(), Some(task))),
        )
        .await
    }
    for reply in burst(&on_pg).await {
        assert_eq!(reply.unwrap().status, 200);
    }
    for reply in burst(&on_sqlite).await {
        assert_eq!(reply.unwrap().status, 200);
    }

    let pg_rows = on_pg.ledger().unwrap();
    let sqlite_rows = on_sqlite.ledger().unwrap();
    assert_eq!(pg_rows.len(), N);
    assert_eq!(
        pg.psql("SELECT COUNT(*), COUNT(DISTINCT task) FROM triage_ledger WHERE task <> 'small'")
            .unwrap(),
        format!("{0}|{0}", N - N.div_ceil(3))
    );
    let mut a: Vec<String> = pg_rows.iter().map(shape).collect();
    let mut b: Vec<String> = sqlite_rows.iter().map(shape).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_summaries_match(
        &pg_store.summary().unwrap(),
        &{
            let core = on_sqlite.policy_core().unwrap();
            core.store().summary().unwrap()
        },
        false,
    );
    // Few statements for many rows: batches, not one insert per row.
    let batches: usize = pg
        .psql("SELECT COUNT(*) FROM triage_ledger_batches")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..N).contains(&batches), "{batches} batches for {N} rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_mid_run_loses_no_row() {
    let mut pg = PgServer::start().unwrap();
    let opts = PgOptions {
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ..PgOptions::default()
    };
    let store = Arc::new(PgStore::connect(&pg.url().unwrap(), opts).unwrap());
    let gw = gateway(store.clone());
    async fn phase(gw: &TestGateway, range: std::ops::Range<usize>) {
        for chunk in range.collect::<Vec<_>>().chunks(25) {
            let replies = futures::future::join_all(chunk.iter().map(|&i| {
                let (body, _) = request(i);
                let task = format!("r-{i}");
                async move { gw.chat(body, Some(&task)).await }
            }))
            .await;
            for r in replies {
                // Postgres is not on the response path: answers are 200 while it is down.
                assert_eq!(r.unwrap().status, 200);
            }
        }
    }

    phase(&gw, 0..150).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::task::block_in_place(|| pg.stop()).unwrap();
    phase(&gw, 150..250).await;
    // The writer has tried and failed while the server was down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = store.writer_stats().unwrap();
    assert!(during.write_failures > 0, "{during:?}");
    assert!(!during.connected && during.pending_rows > 0, "{during:?}");
    let metrics = gw
        .send(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        metrics.body.contains("triage_ledger_write_failures_total")
            && metrics.body.contains("triage_ledger_pending_rows"),
        "{}",
        metrics.body
    );
    tokio::task::block_in_place(|| pg.run()).unwrap();
    phase(&gw, 250..400).await;

    let rows = tokio::task::block_in_place(|| gw.ledger()).unwrap();
    let tasks: BTreeSet<String> = rows.iter().map(|r| r.task.clone()).collect();
    assert_eq!(rows.len(), 400, "a row lost or doubled");
    assert_eq!(tasks.len(), 400);
    assert!((0..400).all(|i| tasks.contains(&format!("r-{i}"))));
    let after = store.writer_stats().unwrap();
    assert_eq!(
        (after.pending_rows, after.dropped_rows),
        (0, 0),
        "{after:?}"
    );
    assert!(after.connected);
}
