//! Whether the shared store answers: one state per ledger, a log line per change (not per
//! request), an error count for `/metrics`, and the back-off that spaces out attempts while it
//! is down, so a dead store costs a request nothing but a clock read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first wait before trying a store that just failed; doubled per failure up to
/// [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts while the store is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Reachability of a shared store, as `/metrics` and `/readyz` report it.
#[derive(Debug)]
pub struct StoreHealth {
    up: AtomicBool,
    errors: AtomicU64,
    /// While down: the next time an attempt is allowed, and the current back-off.
    retry: Mutex<(Instant, Duration)>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            retry: Mutex::new((Instant::now(), MIN_BACKOFF)),
        }
    }
}

impl StoreHealth {
    /// Whether the last attempt succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Failed calls so far (`triage_store_errors_total`).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether a call may go to the store now: always while up; while down, once per back-off.
    pub fn may_try(&self) -> bool {
        if self.is_up() {
            return true;
        }
        let mut retry = self.retry.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= retry.0 {
            // This caller probes; the others keep failing fast until it reports.
            retry.0 = now + retry.1;
            true
        } else {
            false
        }
    }

    /// A call succeeded; returns whether the store just came back (logged once).
    pub fn succeeded(&self, what: &str) -> bool {
        let came_back = !self.up.swap(true, Ordering::Relaxed);
        if came_back {
            *self.retry.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), MIN_BACKOFF);
            tracing::info!(what, "shared store reachable again");
        }
        came_back
    }

    /// A call failed: count it, log once when the store goes down, lengthen the back-off.
    pub fn failed(&self, what: &str, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let went_down = self.up.swap(false, Ordering::Relaxed);
        let mut retry = self.retry.lock().unwrap_or_else(|p| p.into_inner());
        if went_down {
            *retry = (Instant::now() + MIN_BACKOFF, MIN_BACKOFF);
            tracing::error!(
                what,
                error,
                "shared store unreachable; admission follows store_failure until it answers"
            );
        } else {
            retry.1 = (retry.1 * 2).min(MAX_BACKOFF);
            retry.0 = Instant::now() + retry.1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_means_one_probe_per_backoff_and_up_again_resets() {
        let h = StoreHealth::default();
        assert!(h.may_try());
        h.failed("admit", "connection refused");
        assert!(!h.is_up());
        assert_eq!(h.errors(), 1);
        // Inside the first back-off nobody tries.
        assert!(!h.may_try());
        std::thread::sleep(MIN_BACKOFF + Duration::from_millis(20));
        assert!(h.may_try(), "one probe after the back-off");
        assert!(!h.may_try(), "and only one");
        assert!(h.succeeded("admit"));
        assert!(!h.succeeded("admit"), "only the change is reported");
        assert!(h.may_try());
    }
}
