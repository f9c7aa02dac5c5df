//! The rows between the gateway and Postgres: accepted by [`super::PgStore::record`] without
//! waiting, taken in order by the writer a batch at a time, and counted as written only when
//! their batch commits. Bounded: past `max_pending_rows` new rows are dropped and counted (the
//! database has been unreachable for a long time), never the ones already accepted.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ledger::LedgerRow;
use crate::store::WriterStats;

/// What the buffer holds and has counted.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Accepted rows the writer has not taken yet, oldest first.
    queue: VecDeque<LedgerRow>,
    /// The batch being written (kept here until it commits, so spend reads still see it).
    in_flight: Vec<LedgerRow>,
    /// Rows accepted since the store opened.
    accepted: u64,
    /// Rows committed since the store opened (always a prefix of the accepted ones).
    written: u64,
    failures: u64,
    dropped: u64,
    connected: bool,
    /// The store was dropped: write what is left, then stop.
    pub(super) closing: bool,
}

/// The shared buffer: state behind a mutex, a condition variable for [`Buffer::wait_written`].
#[derive(Debug, Default)]
pub(super) struct Buffer {
    state: Mutex<State>,
    written: Condvar,
}

/// Why a row was not accepted.
pub(super) struct Full {
    /// Rows pending at the time.
    pub(super) pending: usize,
    /// Rows dropped so far, this one included.
    pub(super) dropped: u64,
}

impl Buffer {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters half-updated in a way that
        // matters more than losing the ledger; keep going with the data as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `row`; returns how many rows are pending (to wake the writer at a full batch).
    pub(super) fn push(&self, row: LedgerRow, max_pending: usize) -> Result<usize, Full> {
        let mut s = self.lock();
        let pending = s.queue.len() + s.in_flight.len();
        if pending >= max_pending {
            s.dropped += 1;
            return Err(Full {
                pending,
                dropped: s.dropped,
            });
        }
        s.queue.push_back(row);
        s.accepted += 1;
        Ok(pending + 1)
    }

    /// The batch to write: the one that failed last time, else up to `max` queued rows (moved
    /// to in flight). `None` when there is nothing to write.
    pub(super) fn take_batch(&self, max: usize) -> Option<Vec<LedgerRow>> {
        let mut s = self.lock();
        if s.in_flight.is_empty() {
            let n = s.queue.len().min(max);
            if n == 0 {
                return None;
            }
            let batch: Vec<LedgerRow> = s.queue.drain(..n).collect();
            s.in_flight = batch;
        }
        Some(s.in_flight.clone())
    }

    /// The in-flight batch committed.
    pub(super) fn committed(&self) {
        let mut s = self.lock();
        s.written += s.in_flight.len() as u64;
        s.in_flight.clear();
        s.connected = true;
        drop(s);
        self.written.notify_all();
    }

    /// A write failed (it will be retried).
    pub(super) fn failed(&self) {
        let mut s = self.lock();
        s.failures += 1;
        s.connected = false;
    }

    /// Whether the writer should stop (the store was dropped), and whether anything is left.
    pub(super) fn closing(&self) -> (bool, usize) {
        let s = self.lock();
        (s.closing, s.queue.len() + s.in_flight.len())
    }

    /// Rows accepted so far (a flush waits until this many are written).
    pub(super) fn accepted(&self) -> u64 {
        self.lock().accepted
    }

    /// Wait until `target` rows are written, at most `timeout`. Returns the rows still pending
    /// when it gave up.
    pub(super) fn wait_written(&self, target: u64, timeout: Duration) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.written < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(s.queue.len() + s.in_flight.len());
            }
            s = match self.written.wait_timeout(s, left) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        Ok(())
    }

    /// Cost of the pending rows (not yet committed) in the windows `[day_start, day_end)` and
    /// `[month_start, month_end)`: (global day, global month, `key` day, `key` month).
    pub(super) fn pending_spend(
        &self,
        key: Option<&str>,
        (day_start, day_end, month_start, month_end): (i64, i64, i64, i64),
    ) -> [f64; 4] {
        let s = self.lock();
        let mut out = [0.0; 4];
        for row in s.queue.iter().chain(&s.in_flight) {
            let t = row.time_unix_ms;
            if t < month_start || t >= month_end {
                continue;
            }
            let in_day = t >= day_start && t < day_end;
            let mine = key == Some(row.key.as_str());
            for (i, counts) in [in_day, true, mine && in_day, mine].into_iter().enumerate() {
                if counts {
                    out[i] += row.cost_usd;
                }
            }
        }
        out
    }

    /// The counters for `/metrics`.
    pub(super) fn stats(&self) -> WriterStats {
        let s = self.lock();
        WriterStats {
            pending_rows: (s.queue.len() + s.in_flight.len()) as u64,
            written_rows: s.written,
            write_failures: s.failures,
            dropped_rows: s.dropped,
            connected: s.connected,
        }
    }
}
