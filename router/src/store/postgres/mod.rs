//! The Postgres ledger ([`PgStore`]): one ledger for several gateway replicas.
//!
//! [`Store::record`] only queues the row in a bounded in-memory buffer, so a request never waits
//! for Postgres; a writer task batches the rows (by size or by a short interval) and inserts each
//! batch with one statement, retrying across a lost connection with back-off (see `writer.rs`).
//! The driver (`tokio-postgres`) is asynchronous and the [`Store`] trait is not, so the store
//! runs its own single-threaded Tokio runtime on a dedicated thread: the writer lives there, and
//! reads (spend, recent rows, summary) are sent there and waited for. Reads use a second
//! connection, so a long summary never holds up the writer.
//!
//! Spend is not kept in counters as SQLite does: it is the sum of the ledger's costs over the
//! window (indexed by time and by key), plus the rows still buffered. The buffered rows are
//! read before the table, so a row committing in between is counted twice rather than not at
//! all — an over-count, the safe side for a budget.

mod buffer;
mod sql;
mod writer;

use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio_postgres::Client;

use self::buffer::Buffer;
use super::{PostgresUrl, Store, StoreError, WriterStats};
use crate::ledger::{budget_window_bounds, LedgerRow, LedgerSummary};
use crate::policy::Spend;

/// Batching, buffering and retry settings of a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Rows per batch (a full batch is written at once).
    pub batch_rows: usize,
    /// Longest a row waits for its batch to fill.
    pub interval: Duration,
    /// Rows kept while the database is unreachable; past this, new rows are dropped (counted
    /// in `triage_ledger_rows_dropped_total` and logged).
    pub max_pending_rows: usize,
    /// First retry delay after a failed write; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Connect timeout, unless the URL sets `connect_timeout`.
    pub connect_timeout: Duration,
    /// Longest a read (spend, recent, summary) or a [`Store::flush`] waits.
    pub wait_timeout: Duration,
    /// How long a dropped store keeps retrying to write what is left.
    pub shutdown_grace: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            batch_rows: 500,
            interval: Duration::from_millis(20),
            max_pending_rows: 100_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The Postgres store. Dropping it lets the writer finish what is buffered in the background;
/// call [`Store::flush`] first to wait for that.
pub struct PgStore {
    url: PostgresUrl,
    opts: PgOptions,
    buffer: Arc<Buffer>,
    wake: Arc<Notify>,
    runtime: tokio::runtime::Handle,
    /// The read connection (made on first use, remade after an error).
    reader: Arc<AsyncMutex<Option<Client>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("stats", &self.buffer.stats())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect to `url`, create the ledger table and its indexes when missing, and start the
    /// writer. Fails when the database cannot be reached now (a wrong URL or password should
    /// stop the gateway at start, not show up as lost rows later).
    pub fn connect(url: &PostgresUrl, opts: PgOptions) -> Result<PgStore, StoreError> {
        let target = url.target();
        let buffer = Arc::new(Buffer::default());
        let wake = Arc::new(Notify::new());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (url, opts, buffer, wake) =
                (url.clone(), opts.clone(), buffer.clone(), wake.clone());
            std::thread::Builder::new()
                .name("triage-pg-ledger".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot start its runtime: {e}")));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match writer::open(&url, &opts).await {
                            Ok(conn) => {
                                let handle = tokio::runtime::Handle::current();
                                if ready_tx.send(Ok(Ok(handle))).is_ok() {
                                    writer::run(url, opts, buffer, wake, conn).await;
                                }
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Ok(Err(e)));
                            }
                        }
                    });
                })
        };
        if let Err(e) = thread {
            return Err(StoreError::Unavailable {
                target,
                what: format!("cannot start the writer thread: {e}"),
            });
        }
        let runtime = match ready_rx.recv() {
            Ok(Ok(Ok(handle))) => handle,
            Ok(Ok(Err(source))) => return Err(StoreError::Postgres { target, source }),
            Ok(Err(what)) => return Err(StoreError::Unavailable { target, what }),
            Err(_) => {
                return Err(StoreError::Unavailable {
                    target,
                    what: "the writer thread ended while connecting".into(),
                })
            }
        };
        tracing::info!(ledger = %target, "ledger: postgres");
        Ok(PgStore {
            url: url.clone(),
            opts,
            buffer,
            wake,
            runtime,
            reader: Arc::new(AsyncMutex::new(None)),
        })
    }

    fn unavailable(&self, what: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            target: self.url.target(),
            what: what.into(),
        }
    }

    /// Run `query` on the read connection (connected first when there is none or it closed),
    /// on the store's runtime, and wait for its answer. `query` owns the client and hands it
    /// back with its result; after an error the connection is dropped and remade next time.
    fn read<T, F, Fut>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = (Client, Result<T, tokio_postgres::Error>)> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let (url, opts, reader) = (self.url.clone(), self.opts.clone(), self.reader.clone());
        self.runtime.spawn(async move {
            let mut slot = reader.lock().await;
            let client = match slot.take().filter(|c| !c.is_closed()) {
                Some(client) => Ok(client),
                None => writer::connect(&url, &opts).await,
            };
            let result = match client {
                Ok(client) => {
                    let (client, result) = query(client).await;
                    if result.is_ok() {
                        *slot = Some(client);
                    }
                    result
                }
                Err(e) => Err(e),
            };
            let _ = tx.send(result);
        });
        match rx.recv_timeout(self.opts.wait_timeout) {
            Ok(result) => result.map_err(|source| StoreError::Postgres {
                target: self.url.target(),
                source,
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.unavailable(format!(
                "no answer within {} s",
                self.opts.wait_timeout.as_secs()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(self.unavailable("the ledger thread is gone"))
            }
        }
    }
}

impl Store for PgStore {
    fn record(&self, row: &LedgerRow) -> Result<(), StoreError> {
        match self.buffer.push(row.clone(), self.opts.max_pending_rows) {
            Ok(pending) => {
                if pending >= self.opts.batch_rows {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Err(full) => Err(self.unavailable(format!(
                "{} rows are waiting for the database (the buffer's limit); row dropped \
                 ({} dropped so far)",
                full.pending, full.dropped
            ))),
        }
    }

    fn spend(&self, tenant: Option<&str>, at_unix_ms: i64) -> Result<Spend, StoreError> {
        let bounds = budget_window_bounds(at_unix_ms);
        let pending = self.buffer.pending_spend(tenant, bounds);
        let key = tenant.map(str::to_string);
        let (day_start, day_end, month_start, month_end) = bounds;
        let stored: [f64; 4] = self.read(move |c| async move {
            let result = async {
                let r = c
                    .query_one(
                        sql::SPEND,
                        &[&day_start, &day_end, &month_start, &month_end, &key],
                    )
                    .await?;
                Ok([r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?])
            }
            .await;
            (c, result)
        })?;
        let sum: [f64; 4] = std::array::from_fn(|i| stored[i] + pending[i]);
        Ok(Spend {
            global_day_usd: sum[0],
            global_month_usd: sum[1],
            tenant_day_usd: if tenant.is_some() { sum[2] } else { 0.0 },
            tenant_month_usd: if tenant.is_some() { sum[3] } else { 0.0 },
        })
    }

    fn recent(&self, limit: usize) -> Result<Vec<LedgerRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| async move {
            let result = async {
                let rows = c.query(sql::RECENT, &[&limit]).await?;
                rows.iter().map(sql::ledger_row_from).collect()
            }
            .await;
            (c, result)
        })
    }

    fn summary(&self) -> Result<LedgerSummary, StoreError> {
        self.read(|c| async move {
            let result = async {
                let mut total = sql::group_from_row(&c.query_one(&sql::total_query(), &[]).await?)?;
                total.name = "TOTAL".into();
                let mut groups = Vec::new();
                for column in ["answered_by", "route", "task"] {
                    let rows = c.query(&sql::group_query(column), &[]).await?;
                    groups.push(
                        rows.iter()
                            .map(sql::group_from_row)
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                let by_task = groups.pop().unwrap_or_default();
                let by_route = groups.pop().unwrap_or_default();
                let by_backend = groups.pop().unwrap_or_default();
                Ok(LedgerSummary {
                    total,
                    by_backend,
                    by_route,
                    by_task,
                })
            }
            .await;
            (c, result)
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        let target = self.buffer.accepted();
        self.wake.notify_one();
        self.buffer
            .wait_written(target, self.opts.wait_timeout)
            .map_err(|pending| {
                self.unavailable(format!(
                    "{pending} rows still not written after {} s",
                    self.opts.wait_timeout.as_secs()
                ))
            })
    }

    fn writer_stats(&self) -> Option<WriterStats> {
        Some(self.buffer.stats())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.buffer.lock().closing = true;
        self.wake.notify_one();
    }
}
