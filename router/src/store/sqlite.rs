//! The embedded ledger: one SQLite file in WAL mode, written in place by the gateway's ledger
//! thread, with per-period spend counters updated in the same transaction as each row.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError};
use crate::ledger::{budget_periods, GroupTotals, LedgerRow, LedgerSummary};
use crate::policy::Spend;

/// The SQLite (WAL) store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    name: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    key         TEXT NOT NULL,
    task        TEXT NOT NULL,
    route       TEXT NOT NULL,
    backends    TEXT NOT NULL,   -- comma separated, in the order tried
    answered_by TEXT NOT NULL,   -- whose answer the client got (the last backend tried unless
                                 -- a cascade's escalation failed), '-' when none
    escalated   INTEGER NOT NULL,
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    cost_usd    REAL NOT NULL,
    saved_usd   REAL NOT NULL,
    ttft_ms     REAL,
    e2e_ms      REAL NOT NULL,
    status      INTEGER NOT NULL,
    error_code  TEXT
);
CREATE INDEX IF NOT EXISTS ledger_time ON ledger(time_ms);
CREATE TABLE IF NOT EXISTS spend (
    period TEXT NOT NULL,   -- d:YYYY-MM-DD or m:YYYY-MM (UTC)
    scope  TEXT NOT NULL,   -- '*' for global, else the key/tenant label
    usd    REAL NOT NULL,
    PRIMARY KEY (period, scope)
);
";

impl SqliteStore {
    /// Open (creating if needed) the database file, in WAL mode.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: name.clone(),
            source,
        })?;
        Self::init(conn, name)
    }

    /// A private in-memory database (tests, `route explain`).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let name = ":memory:".to_string();
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: name.clone(),
            source,
        })?;
        Self::init(conn, name)
    }

    fn init(conn: Connection, name: String) -> Result<SqliteStore, StoreError> {
        let wrap = |source| StoreError::Sqlite {
            path: name.clone(),
            source,
        };
        // journal_mode returns a row, so it is read with query_row.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(wrap)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            name,
        })
    }

    /// The journal mode in force (`wal` for files; `memory` for in-memory databases).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Poisoned(self.name.clone()))?;
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            path: self.name.clone(),
            source,
        })
    }

    fn group(&self, column: &str) -> Result<Vec<GroupTotals>, StoreError> {
        // `column` is one of three constants below, never user input.
        let sql = format!(
            "SELECT {column}, COUNT(*), SUM(status >= 400), SUM(escalated), SUM(tokens_in),
                    SUM(tokens_out), SUM(cost_usd), SUM(saved_usd), AVG(e2e_ms), AVG(ttft_ms),
                    COUNT(ttft_ms)
             FROM ledger GROUP BY {column} ORDER BY COUNT(*) DESC, {column}"
        );
        self.with(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], group_from_row)?;
            rows.collect()
        })
    }
}

fn group_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupTotals> {
    Ok(GroupTotals {
        name: r.get(0)?,
        requests: r.get::<_, i64>(1)? as u64,
        errors: r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
        escalated: r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
        tokens_in: r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
        tokens_out: r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64,
        cost_usd: r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
        saved_usd: r.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
        mean_e2e_ms: r.get::<_, Option<f64>>(8)?.unwrap_or(0.0),
        mean_ttft_ms: r.get(9)?,
        ttft_requests: r.get::<_, i64>(10)? as u64,
    })
}

impl Store for SqliteStore {
    fn record(&self, row: &LedgerRow) -> Result<(), StoreError> {
        self.record_batch(std::slice::from_ref(row))
    }

    /// One transaction for the whole batch: a row and its spend go in together or not at all.
    fn record_batch(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for row in rows {
                insert(&tx, row)?;
            }
            tx.commit()
        })
    }

    fn spend(&self, tenant: Option<&str>, at_unix_ms: i64) -> Result<Spend, StoreError> {
        let (day, month) = budget_periods(at_unix_ms);
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT usd FROM spend WHERE period = ?1 AND scope = ?2")?;
            let mut get = |period: &str, scope: &str| -> rusqlite::Result<f64> {
                Ok(stmt
                    .query_row(params![period, scope], |r| r.get::<_, f64>(0))
                    .optional()?
                    .unwrap_or(0.0))
            };
            let (tenant_day_usd, tenant_month_usd) = match tenant {
                Some(t) => (get(&day, t)?, get(&month, t)?),
                None => (0.0, 0.0),
            };
            Ok(Spend {
                global_day_usd: get(&day, "*")?,
                global_month_usd: get(&month, "*")?,
                tenant_day_usd,
                tenant_month_usd,
            })
        })
    }

    fn recent(&self, limit: usize) -> Result<Vec<LedgerRow>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT time_ms, key, task, route, backends, escalated, tokens_in, tokens_out,
                        cost_usd, saved_usd, ttft_ms, e2e_ms, status, error_code, answered_by
                 FROM ledger ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                let backends: String = r.get(4)?;
                let answered_by: Option<String> = r.get(14)?;
                // Kept only when it is not the last backend called (the default).
                let answered_by = answered_by
                    .filter(|a| a != "-" && backends.rsplit(',').next() != Some(a.as_str()));
                Ok(LedgerRow {
                    time_unix_ms: r.get(0)?,
                    key: r.get(1)?,
                    task: r.get(2)?,
                    route: r.get(3)?,
                    backends: backends
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    escalated: r.get(5)?,
                    tokens_in: r.get::<_, i64>(6)? as u64,
                    tokens_out: r.get::<_, i64>(7)? as u64,
                    cost_usd: r.get(8)?,
                    saved_usd: r.get(9)?,
                    ttft_ms: r.get(10)?,
                    e2e_ms: r.get(11)?,
                    status: r.get(12)?,
                    error_code: r.get(13)?,
                    answered_by,
                })
            })?;
            rows.collect()
        })
    }

    fn summary(&self) -> Result<LedgerSummary, StoreError> {
        let mut total = self
            .with(|c| {
                c.query_row(
                    "SELECT 'total', COUNT(*), SUM(status >= 400), SUM(escalated), SUM(tokens_in),
                            SUM(tokens_out), SUM(cost_usd), SUM(saved_usd), AVG(e2e_ms), AVG(ttft_ms),
                            COUNT(ttft_ms)
                     FROM ledger",
                    [],
                    group_from_row,
                )
            })?;
        total.name = "TOTAL".into();
        Ok(LedgerSummary {
            total,
            by_backend: self.group("answered_by")?,
            by_route: self.group("route")?,
            by_task: self.group("task")?,
        })
    }
}

/// Append `row` and add its cost to the day/month spend counters, inside `tx`.
fn insert(tx: &rusqlite::Transaction<'_>, row: &LedgerRow) -> rusqlite::Result<()> {
    let (day, month) = budget_periods(row.time_unix_ms);
    let mut insert = tx.prepare_cached(
        "INSERT INTO ledger (time_ms, key, task, route, backends, answered_by, escalated,
            tokens_in, tokens_out, cost_usd, saved_usd, ttft_ms, e2e_ms, status, error_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    insert.execute(params![
        row.time_unix_ms,
        row.key,
        row.task,
        row.route,
        row.backends.join(","),
        row.answered_by(),
        row.escalated,
        row.tokens_in as i64,
        row.tokens_out as i64,
        row.cost_usd,
        row.saved_usd,
        row.ttft_ms,
        row.e2e_ms,
        row.status,
        row.error_code,
    ])?;
    if row.cost_usd != 0.0 {
        let mut add = tx.prepare_cached(
            "INSERT INTO spend (period, scope, usd) VALUES (?1, ?2, ?3)
             ON CONFLICT(period, scope) DO UPDATE SET usd = usd + excluded.usd",
        )?;
        for period in [&day, &month] {
            for scope in ["*", row.key.as_str()] {
                add.execute(params![period, scope, row.cost_usd])?;
            }
        }
    }
    Ok(())
}
