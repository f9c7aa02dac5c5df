//! The store interface for everything the gateway must not keep only in memory: budget spend
//! counters and the ledger. The gateway stays stateless (a replica can rebuild from the store);
//! the policy never touches the store — the gateway reads a [`Spend`] snapshot and passes it in.
//!
//! Two implementations, chosen by `server.ledger` ([`LedgerLocation`], opened by [`open`]):
//! [`SqliteStore`], the embedded default — one SQLite file in WAL mode (readers such as
//! `triage ledger summary` or the dashboard never block the gateway's writes) — and
//! [`PgStore`], for several replicas writing one ledger: rows are buffered and batch-inserted
//! into Postgres off the response path, and retried across a lost connection. Nothing outside
//! this module knows which one is in use.

mod location;
mod postgres;
mod sqlite;
mod writer;

use std::sync::Arc;

pub use location::{LedgerLocation, PostgresUrl};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;
pub use writer::LedgerWriter;

use crate::ledger::{LedgerRow, LedgerSummary};
use crate::policy::Spend;

/// Why the ledger database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("ledger database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A thread panicked while writing, so the connection's state is unknown (the path).
    #[error("ledger database {0}: a previous writer panicked while holding the connection")]
    Poisoned(String),
    /// Postgres failed (connecting, creating the table, or a query).
    #[error("ledger database {target}: {source}")]
    Postgres {
        /// `host:port/db` (never the password).
        target: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// `server.ledger` or `--ledger` looks like a Postgres URL but is not one.
    #[error("ledger {url}: not a valid postgres:// URL: {reason}")]
    BadUrl {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// The Postgres store's I/O thread is gone or did not answer in time.
    #[error("ledger database {target}: {what}")]
    Unavailable {
        /// `host:port/db`.
        target: String,
        /// What did not happen (`the writer thread is gone`, `no answer within 30 s`, …).
        what: String,
    },
}

/// How a buffered ledger writer is doing (the Postgres store; the SQLite one writes in place and
/// reports nothing). Counters are totals since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Rows accepted but not yet committed.
    pub pending_rows: u64,
    /// Rows committed.
    pub written_rows: u64,
    /// Batch writes that failed and were retried.
    pub write_failures: u64,
    /// Rows dropped because the buffer was full (the database was unreachable for too long).
    pub dropped_rows: u64,
    /// Whether the writer's last attempt reached the database.
    pub connected: bool,
}

/// Budgets, spend counters and the ledger.
pub trait Store: Send + Sync {
    /// Append a finished request and add its cost to the day/month spend counters (global and
    /// the row's key). A buffered store only queues the row here (see [`Store::flush`]).
    fn record(&self, row: &LedgerRow) -> Result<(), StoreError>;
    /// [`Store::record`] for several rows at once (the [`LedgerWriter`] hands over what
    /// queued since it last woke); a store that can should write them in one transaction.
    fn record_batch(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        let mut first_error = None;
        for row in rows {
            if let Err(e) = self.record(row) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
    /// Spend in the UTC day and month containing `at_unix_ms`: global and for `tenant`.
    fn spend(&self, tenant: Option<&str>, at_unix_ms: i64) -> Result<Spend, StoreError>;
    /// The most recent rows, newest first (`limit` rows at most).
    fn recent(&self, limit: usize) -> Result<Vec<LedgerRow>, StoreError>;
    /// Totals by backend, route and task.
    fn summary(&self) -> Result<LedgerSummary, StoreError>;
    /// Wait until every row recorded so far is durable (shutdown, tests). Immediate for stores
    /// that write in [`Store::record`].
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The buffered writer's counters, for `/metrics`; `None` for stores that write in place.
    fn writer_stats(&self) -> Option<WriterStats> {
        None
    }
}

/// Open the ledger `location` names: the SQLite file (created when missing) or the Postgres
/// database (its table created when missing).
pub fn open(location: &LedgerLocation) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match location {
        LedgerLocation::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        LedgerLocation::Postgres(url) => Arc::new(PgStore::connect(url, PgOptions::default())?),
    })
}
