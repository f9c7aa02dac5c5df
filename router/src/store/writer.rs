//! The ledger writer: one background thread that writes the rows requests leave behind, in
//! batches, woken only after the response that left a row has been written.
//!
//! Why not a channel whose receiver blocks: the send to a sleeping receiver is a futex wake on
//! the request path, and the woken thread then runs its SQLite transaction (six `pwrite`s and
//! as many locks) at the very moment the response is being written — on a 2-core machine it
//! competes with the client and the upstream for a core. Measured at 20 requests/s, that was a
//! visible part of what triage added over a bare pass-through (BENCHMARKS.md, "Gateway
//! overhead"). So a request only pushes its row onto a mutex-guarded queue; if the writer is
//! asleep, the wake-up is handed to the runtime as a tiny task, which runs on the same worker
//! after the current task — the connection that is writing the response — yields. The writer
//! then takes everything queued and hands it to the store in one [`Store::record_batch`] (one
//! transaction for the batch, which is what keeps heavy load cheap: while it writes, new rows
//! queue without waking anyone). Outside a runtime the wake is immediate.
//!
//! A `kill -9` loses only the rows queued or being written (microseconds at light load, one
//! batch under heavy load); `tests/crash_ledger.rs` bounds it. A clean shutdown flushes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Store, StoreError};
use crate::ledger::LedgerRow;

/// What waits for the writer.
#[derive(Default)]
struct Queue {
    rows: Vec<LedgerRow>,
    /// Callers of [`LedgerWriter::flush`], woken once everything queued before them is written.
    flushes: Vec<std::sync::mpsc::Sender<()>>,
    /// Set when the last handle is gone: write what is left and stop.
    closed: bool,
    /// The writer found nothing to do and sleeps until woken.
    idle: bool,
}

/// Hands ledger rows to the writer thread; cloning shares the thread. When the last handle
/// is dropped, the thread writes what is left and stops (the drop waits for it).
#[derive(Clone)]
pub struct LedgerWriter {
    queue: Arc<Mutex<Queue>>,
    thread: Arc<Running>,
}

/// The writer thread, closed and joined when the last handle goes.
struct Running {
    queue: Arc<Mutex<Queue>>,
    handle: Option<JoinHandle<()>>,
}

impl LedgerWriter {
    /// Start the writer thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let theirs = queue.clone();
        let handle = std::thread::Builder::new()
            .name("triage-ledger".into())
            .spawn(move || run(&theirs, store.as_ref()))
            .map_err(|e| tracing::error!(error = %e, "could not start the ledger writer"))
            .ok();
        Self {
            thread: Arc::new(Running {
                queue: queue.clone(),
                handle,
            }),
            queue,
        }
    }

    /// Queue a row; wake the writer (after the current task yields) if it sleeps.
    pub fn record(&self, row: LedgerRow) {
        let Some(handle) = &self.thread.handle else {
            tracing::error!("ledger writer is not running; row lost");
            return;
        };
        let wake = {
            let mut q = lock(&self.queue);
            q.rows.push(row);
            std::mem::take(&mut q.idle)
        };
        if wake {
            let thread = handle.thread().clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(async move { thread.unpark() })),
                Err(_) => thread.unpark(),
            }
        }
    }

    /// Block until every row queued so far is handed to the store and the store has flushed
    /// (committed, for a buffered store such as Postgres).
    pub fn flush(&self) {
        let Some(handle) = &self.thread.handle else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        lock(&self.queue).flushes.push(tx);
        handle.thread().unpark();
        let _ = rx.recv();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.queue).closed = true;
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer thread: write what is queued, sleep when there is nothing; after the last handle
/// closed the queue, write the rest and stop.
fn run(queue: &Mutex<Queue>, store: &dyn Store) {
    let mut errors = ErrorLog::default();
    loop {
        let (rows, flushes, closed) = {
            let mut q = lock(queue);
            if q.rows.is_empty() && q.flushes.is_empty() && !q.closed {
                // Nothing to do: sleep until a row, a flush or the close wakes us. (A wake
                // between this unlock and `park` is kept by the thread's token.)
                q.idle = true;
                drop(q);
                std::thread::park();
                continue;
            }
            q.idle = false;
            (
                std::mem::take(&mut q.rows),
                std::mem::take(&mut q.flushes),
                q.closed,
            )
        };
        if !rows.is_empty() {
            if let Err(e) = store.record_batch(&rows) {
                errors.log(&e);
            }
        }
        if !flushes.is_empty() || closed {
            if let Err(e) = store.flush() {
                tracing::error!(error = %e, "could not write out the ledger");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

/// Logs ledger write errors at most once a second (a database that is down for a while fails
/// every batch the same way), with how many were not shown.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn log(&mut self, e: &StoreError) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::error!(error = %e, similar_errors_not_shown = self.suppressed,
            "could not append ledger rows");
        self.last = Some(now);
        self.suppressed = 0;
    }
}
