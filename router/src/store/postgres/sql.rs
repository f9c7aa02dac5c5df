//! The Postgres ledger's SQL: the schema (created when missing), the batch insert, and the
//! reads (spend, recent rows, summary) — each mapped to the same Rust types as SQLite's.
//!
//! The table has the SQLite ledger's columns (booleans as `BOOLEAN`, reals as `DOUBLE
//! PRECISION`). A batch is written by one statement: it records the batch's id in
//! `triage_ledger_batches` and inserts its rows only when that id was new, so a batch retried
//! after a connection died during its commit is never written twice.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::ledger::{GroupTotals, LedgerRow};

/// Created when missing, under an advisory lock so replicas starting together do not race on
/// `CREATE TABLE IF NOT EXISTS`.
pub(super) const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7460102373421);
CREATE TABLE IF NOT EXISTS triage_ledger (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    key         TEXT NOT NULL,
    task        TEXT NOT NULL,
    route       TEXT NOT NULL,
    backends    TEXT NOT NULL,
    answered_by TEXT NOT NULL,
    escalated   BOOLEAN NOT NULL,
    tokens_in   BIGINT NOT NULL,
    tokens_out  BIGINT NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    saved_usd   DOUBLE PRECISION NOT NULL,
    ttft_ms     DOUBLE PRECISION,
    e2e_ms      DOUBLE PRECISION NOT NULL,
    status      INTEGER NOT NULL,
    error_code  TEXT
);
CREATE INDEX IF NOT EXISTS triage_ledger_time ON triage_ledger (time_ms);
CREATE INDEX IF NOT EXISTS triage_ledger_key_time ON triage_ledger (key, time_ms);
CREATE TABLE IF NOT EXISTS triage_ledger_batches (
    batch_id   TEXT PRIMARY KEY,
    rows       INTEGER NOT NULL,
    written_ms BIGINT NOT NULL
);
COMMIT;
";

/// One batch, one statement: `$1` batch id, `$2` its row count, `$3` now; then one array per
/// column.
pub(super) const INSERT_BATCH: &str = "
WITH batch AS (
    INSERT INTO triage_ledger_batches (batch_id, rows, written_ms) VALUES ($1, $2, $3)
    ON CONFLICT (batch_id) DO NOTHING
    RETURNING batch_id
)
INSERT INTO triage_ledger (time_ms, key, task, route, backends, answered_by, escalated,
    tokens_in, tokens_out, cost_usd, saved_usd, ttft_ms, e2e_ms, status, error_code)
SELECT r.* FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::boolean[], $11::bigint[], $12::bigint[], $13::float8[], $14::float8[],
    $15::float8[], $16::float8[], $17::integer[], $18::text[]) AS r
WHERE EXISTS (SELECT 1 FROM batch)
";

/// Spend of a day and its month, global and for one key: `$1` day start, `$2` day end,
/// `$3` month start, `$4` month end (Unix ms), `$5` the key (NULL: none).
pub(super) const SPEND: &str = "
SELECT COALESCE(SUM(cost_usd) FILTER (WHERE time_ms >= $1 AND time_ms < $2), 0),
       COALESCE(SUM(cost_usd), 0),
       COALESCE(SUM(cost_usd) FILTER (WHERE key = $5 AND time_ms >= $1 AND time_ms < $2), 0),
       COALESCE(SUM(cost_usd) FILTER (WHERE key = $5), 0)
FROM triage_ledger WHERE time_ms >= $3 AND time_ms < $4
";

pub(super) const RECENT: &str = "
SELECT time_ms, key, task, route, backends, escalated, tokens_in, tokens_out, cost_usd,
       saved_usd, ttft_ms, e2e_ms, status, error_code, answered_by
FROM triage_ledger ORDER BY id DESC LIMIT $1
";

/// The totals' select list (shared by the overall and the grouped queries).
const TOTALS: &str = "COUNT(*), COUNT(*) FILTER (WHERE status >= 400),
    COUNT(*) FILTER (WHERE escalated), COALESCE(SUM(tokens_in), 0)::bigint,
    COALESCE(SUM(tokens_out), 0)::bigint, SUM(cost_usd), SUM(saved_usd), AVG(e2e_ms),
    AVG(ttft_ms), COUNT(ttft_ms)";

/// Totals over every row.
pub(super) fn total_query() -> String {
    format!("SELECT 'TOTAL', {TOTALS} FROM triage_ledger")
}

/// Totals grouped by `column` (one of `answered_by`, `route`, `task`: constants, never input),
/// busiest first, then by name in byte order (as SQLite sorts).
pub(super) fn group_query(column: &str) -> String {
    format!(
        "SELECT {column}, {TOTALS} FROM triage_ledger GROUP BY {column}
         ORDER BY COUNT(*) DESC, {column} COLLATE \"C\""
    )
}

/// A totals row.
pub(super) fn group_from_row(r: &Row) -> Result<GroupTotals, tokio_postgres::Error> {
    Ok(GroupTotals {
        name: r.try_get(0)?,
        requests: r.try_get::<_, i64>(1)? as u64,
        errors: r.try_get::<_, i64>(2)? as u64,
        escalated: r.try_get::<_, i64>(3)? as u64,
        tokens_in: r.try_get::<_, i64>(4)? as u64,
        tokens_out: r.try_get::<_, i64>(5)? as u64,
        cost_usd: r.try_get::<_, Option<f64>>(6)?.unwrap_or(0.0),
        saved_usd: r.try_get::<_, Option<f64>>(7)?.unwrap_or(0.0),
        mean_e2e_ms: r.try_get::<_, Option<f64>>(8)?.unwrap_or(0.0),
        mean_ttft_ms: r.try_get(9)?,
        ttft_requests: r.try_get::<_, i64>(10)? as u64,
    })
}

/// A [`RECENT`] row.
pub(super) fn ledger_row_from(r: &Row) -> Result<LedgerRow, tokio_postgres::Error> {
    let backends: String = r.try_get(4)?;
    let answered_by: Option<String> = r.try_get(14)?;
    // Kept only when it is not the last backend called (the default), as SQLite reads it.
    let answered_by =
        answered_by.filter(|a| a != "-" && backends.rsplit(',').next() != Some(a.as_str()));
    Ok(LedgerRow {
        time_unix_ms: r.try_get(0)?,
        key: r.try_get(1)?,
        task: r.try_get(2)?,
        route: r.try_get(3)?,
        backends: backends
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        escalated: r.try_get(5)?,
        tokens_in: r.try_get::<_, i64>(6)? as u64,
        tokens_out: r.try_get::<_, i64>(7)? as u64,
        cost_usd: r.try_get(8)?,
        saved_usd: r.try_get(9)?,
        ttft_ms: r.try_get(10)?,
        e2e_ms: r.try_get(11)?,
        status: u16::try_from(r.try_get::<_, i32>(12)?).unwrap_or(u16::MAX),
        error_code: r.try_get(13)?,
        answered_by,
    })
}

/// A batch's rows as one array per column, the parameters `$4`… of [`INSERT_BATCH`].
#[derive(Debug, Default)]
pub(super) struct Columns {
    time_ms: Vec<i64>,
    key: Vec<String>,
    task: Vec<String>,
    route: Vec<String>,
    backends: Vec<String>,
    answered_by: Vec<String>,
    escalated: Vec<bool>,
    tokens_in: Vec<i64>,
    tokens_out: Vec<i64>,
    cost_usd: Vec<f64>,
    saved_usd: Vec<f64>,
    ttft_ms: Vec<Option<f64>>,
    e2e_ms: Vec<f64>,
    status: Vec<i32>,
    error_code: Vec<Option<String>>,
}

impl Columns {
    /// The columns of `rows`, in order.
    pub(super) fn of(rows: &[LedgerRow]) -> Columns {
        let mut c = Columns::default();
        for row in rows {
            c.time_ms.push(row.time_unix_ms);
            c.key.push(row.key.clone());
            c.task.push(row.task.clone());
            c.route.push(row.route.clone());
            c.backends.push(row.backends.join(","));
            c.answered_by.push(row.answered_by().to_string());
            c.escalated.push(row.escalated);
            c.tokens_in
                .push(i64::try_from(row.tokens_in).unwrap_or(i64::MAX));
            c.tokens_out
                .push(i64::try_from(row.tokens_out).unwrap_or(i64::MAX));
            c.cost_usd.push(row.cost_usd);
            c.saved_usd.push(row.saved_usd);
            c.ttft_ms.push(row.ttft_ms);
            c.e2e_ms.push(row.e2e_ms);
            c.status.push(i32::from(row.status));
            c.error_code.push(row.error_code.clone());
        }
        c
    }

    /// The parameters `$4`…`$18`, in order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.time_ms,
            &self.key,
            &self.task,
            &self.route,
            &self.backends,
            &self.answered_by,
            &self.escalated,
            &self.tokens_in,
            &self.tokens_out,
            &self.cost_usd,
            &self.saved_usd,
            &self.ttft_ms,
            &self.e2e_ms,
            &self.status,
            &self.error_code,
        ]
    }
}
