//! The Postgres writer: one task on the store's I/O thread that turns buffered rows into
//! batches — when a batch's worth has queued or every `interval`, whichever comes first — and
//! writes each with one statement on its own connection. A failed write (the connection was
//! lost, the server restarted) drops the connection, waits with exponential back-off, reconnects
//! and retries the same batch under the same id, so the rows are neither lost nor doubled. When
//! the store is dropped it writes what is left, giving up after `shutdown_grace`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::{Client, NoTls, Statement};

use super::buffer::Buffer;
use super::sql::{self, Columns};
use super::PgOptions;
use crate::ledger::now_unix_ms;
use crate::store::PostgresUrl;

/// A connection with the batch insert prepared on it.
pub(super) struct Conn {
    client: Client,
    insert: Statement,
}

/// Connect to `url` (its connection task spawned on the current runtime).
pub(super) async fn connect(
    url: &PostgresUrl,
    opts: &PgOptions,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = url.config().clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(opts.connect_timeout);
    }
    config.application_name("triage");
    let (client, connection) = config.connect(NoTls).await?;
    let target = url.target();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(ledger = %target, error = %e, "ledger connection ended");
        }
    });
    Ok(client)
}

/// Connect, create the schema when missing, and prepare the insert.
pub(super) async fn open(
    url: &PostgresUrl,
    opts: &PgOptions,
) -> Result<Conn, tokio_postgres::Error> {
    let client = connect(url, opts).await?;
    client.batch_execute(sql::SCHEMA).await?;
    let insert = client.prepare(sql::INSERT_BATCH).await?;
    Ok(Conn { client, insert })
}

/// Names batches uniquely across replicas and restarts: a random per-process prefix and a
/// sequence number.
pub(super) struct BatchIds {
    prefix: String,
    next: AtomicU64,
}

impl BatchIds {
    pub(super) fn new() -> BatchIds {
        use std::hash::{BuildHasher, Hasher};
        // `RandomState` is seeded from the operating system's randomness: 64 random bits
        // without a dependency; the time and the process id make a collision even less likely.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(now_unix_ms());
        h.write_u32(std::process::id());
        BatchIds {
            prefix: format!("{:016x}-{}", h.finish(), std::process::id()),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Write one batch on `conn` under `id`.
async fn write(
    conn: &Conn,
    id: &str,
    columns: &Columns,
    rows: usize,
) -> Result<(), tokio_postgres::Error> {
    let rows = i32::try_from(rows).unwrap_or(i32::MAX);
    let now = now_unix_ms();
    let head: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &rows, &now];
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        head.into_iter().chain(columns.params()).collect();
    conn.client.execute(&conn.insert, &params).await?;
    Ok(())
}

/// The writer loop; returns when the store is closing and the buffer is empty (or the grace
/// period is over).
pub(super) async fn run(
    url: PostgresUrl,
    opts: PgOptions,
    buffer: Arc<Buffer>,
    wake: Arc<Notify>,
    first: Conn,
) {
    let target = url.target();
    let ids = BatchIds::new();
    let mut conn = Some(first);
    let mut closing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(opts.interval) => {}
        }
        // Write every full batch, then what is left (the interval is up or a flush asked).
        while let Some(batch) = buffer.take_batch(opts.batch_rows) {
            let columns = Columns::of(&batch);
            let id = ids.next();
            let mut backoff = opts.retry_min;
            let mut attempt = 0u32;
            loop {
                let result = match &conn {
                    Some(c) => write(c, &id, &columns, batch.len()).await,
                    None => match open(&url, &opts).await {
                        Ok(c) => {
                            tracing::info!(ledger = %target, "ledger database reconnected");
                            let r = write(&c, &id, &columns, batch.len()).await;
                            conn = Some(c);
                            r
                        }
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(()) => {
                        buffer.committed();
                        break;
                    }
                    Err(e) => {
                        attempt += 1;
                        buffer.failed();
                        conn = None;
                        let (closing, pending) = buffer.closing();
                        tracing::warn!(
                            ledger = %target, error = %e, attempt, pending_rows = pending,
                            retry_in_ms = backoff.as_millis() as u64,
                            "ledger batch not written; rows kept, retrying"
                        );
                        if closing && give_up(&mut closing_since, opts.shutdown_grace) {
                            tracing::error!(
                                ledger = %target, lost_rows = pending,
                                "ledger database unreachable at shutdown; rows not written"
                            );
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(opts.retry_max);
                    }
                }
            }
        }
        if buffer.closing().0 {
            return;
        }
    }
}

/// Whether the shutdown grace period (started at the first failure while closing) is over.
fn give_up(since: &mut Option<Instant>, grace: Duration) -> bool {
    since.get_or_insert_with(Instant::now).elapsed() >= grace
}
