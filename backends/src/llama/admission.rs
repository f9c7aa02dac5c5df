//! The engine's admission queue: every request admitted but not yet in a slot waits here, and
//! only here, so the configured bound (`queue_capacity`) is the real one and the queue-depth
//! gauge counts exactly the waiting requests.
//!
//! An earlier engine moved queued jobs off a bounded channel into an unbounded list of its own
//! at every step, so the bound almost never applied, `Overloaded` was rare and the gateway's
//! spill-on-queue-depth never fired. Here the engine thread takes a job only when a slot is
//! free ([`Admission::admit`]). A job whose client went away (its event receiver dropped) is
//! dropped wherever it is seen — at the next admission, the engine's next step or the next
//! submit — so it never takes a slot and stops counting at once. The gauges are written under
//! the queue's lock together with the change they describe.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::StatCounters;

/// Something waiting in the queue that its client may abandon.
pub(super) trait Waiting {
    /// The client went away: the job's answer has nowhere to go.
    fn is_cancelled(&self) -> bool;
}

/// Why a job was not queued.
#[derive(Debug)]
pub(super) enum Refused<T> {
    /// `capacity` jobs already wait; the job is handed back.
    Full(T),
    /// The engine is shutting down.
    Closed(T),
}

/// The bounded queue between callers and the engine thread.
pub(super) struct Admission<T> {
    state: Mutex<State<T>>,
    /// Signalled when a job arrives or the queue closes.
    arrived: Condvar,
    capacity: usize,
    counters: Arc<StatCounters>,
}

struct State<T> {
    jobs: VecDeque<T>,
    closed: bool,
}

impl<T: Waiting> Admission<T> {
    /// A queue holding at most `capacity` waiting jobs, publishing its depth to `counters`.
    pub(super) fn new(capacity: usize, counters: Arc<StatCounters>) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
            }),
            arrived: Condvar::new(),
            capacity,
            counters,
        }
    }

    /// The bound this queue enforces.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves a consistent `VecDeque`; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a job, or hand it back at once when `capacity` others wait (cancelled ones do not
    /// count: they are dropped first).
    pub(super) fn push(&self, job: T) -> Result<(), Refused<T>> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed(job));
        }
        state.jobs.retain(|j| !j.is_cancelled());
        let result = if state.jobs.len() >= self.capacity {
            Err(Refused::Full(job))
        } else {
            state.jobs.push_back(job);
            self.arrived.notify_one();
            Ok(())
        };
        self.publish_depth(&state);
        result
    }

    /// Engine thread: drop cancelled jobs, then take up to `free` jobs (oldest first) for the
    /// free slots; `busy` sequences already decode. Both gauges are updated under the lock.
    pub(super) fn admit(&self, busy: usize, free: usize) -> Vec<T> {
        let mut state = self.lock();
        state.jobs.retain(|j| !j.is_cancelled());
        let take = free.min(state.jobs.len());
        let taken: Vec<T> = state.jobs.drain(..take).collect();
        self.publish_depth(&state);
        self.counters
            .busy_slots
            .store(busy + taken.len(), Ordering::SeqCst);
        taken
    }

    /// Engine thread with no sequence running: block until a job waits. `false` once the queue
    /// is closed and empty (the engine should stop).
    pub(super) fn wait_for_job(&self) -> bool {
        let mut state = self.lock();
        loop {
            state.jobs.retain(|j| !j.is_cancelled());
            self.publish_depth(&state);
            if !state.jobs.is_empty() {
                return true;
            }
            if state.closed {
                return false;
            }
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Refuse new jobs; the engine finishes what is running and queued, then stops.
    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.arrived.notify_all();
    }

    fn publish_depth(&self, state: &State<T>) {
        self.counters
            .queue_depth
            .store(state.jobs.len(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// TEST DOUBLE of a queued job: cancelled when its flag is set.
    #[derive(Debug)]
    struct FakeJob(u32, Arc<AtomicBool>);

    impl Waiting for FakeJob {
        fn is_cancelled(&self) -> bool {
            self.1.load(Ordering::SeqCst)
        }
    }

    fn job(id: u32) -> (FakeJob, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (FakeJob(id, flag.clone()), flag)
    }

    fn depth(c: &StatCounters) -> (usize, usize) {
        (
            c.queue_depth.load(Ordering::SeqCst),
            c.busy_slots.load(Ordering::SeqCst),
        )
    }

    #[test]
    fn the_bound_counts_every_waiting_job_and_cancelled_ones_free_room() {
        let counters = Arc::new(StatCounters::default());
        let queue = Admission::new(2, counters.clone());
        let (a, _) = job(1);
        let (b, b_cancel) = job(2);
        assert!(queue.push(a).is_ok());
        assert!(queue.push(b).is_ok());
        assert_eq!(depth(&counters), (2, 0));
        let (c, _) = job(3);
        let c = match queue.push(c) {
            Err(Refused::Full(c)) => c,
            other => panic!("expected Full, got {:?}", other.map(|_| ())),
        };
        assert_eq!(depth(&counters), (2, 0));
        b_cancel.store(true, Ordering::SeqCst);
        assert!(queue.push(c).is_ok(), "a cancelled job no longer counts");
        assert_eq!(depth(&counters), (2, 0));
        let taken = queue.admit(0, 1);
        assert_eq!(taken.iter().map(|j| j.0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(depth(&counters), (1, 1));
        let taken = queue.admit(1, 3);
        assert_eq!(taken.iter().map(|j| j.0).collect::<Vec<_>>(), vec![3]);
        assert_eq!(depth(&counters), (0, 2));
    }

    #[test]
    fn cancelled_jobs_stop_counting_at_the_next_admission() {
        let counters = Arc::new(StatCounters::default());
        let queue = Admission::new(4, counters.clone());
        let flags: Vec<_> = (0..3)
            .map(|i| {
                let (j, f) = job(i);
                queue.push(j).ok().unwrap();
                f
            })
            .collect();
        assert_eq!(depth(&counters), (3, 0));
        flags.iter().for_each(|f| f.store(true, Ordering::SeqCst));
        assert!(queue.admit(1, 0).is_empty());
        assert_eq!(depth(&counters), (0, 1));
    }

    #[test]
    fn an_idle_engine_wakes_for_a_job_and_stops_once_closed() {
        let counters = Arc::new(StatCounters::default());
        let queue = Arc::new(Admission::new(1, counters));
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.wait_for_job())
        };
        std::thread::sleep(Duration::from_millis(20));
        let (a, _) = job(1);
        queue.push(a).ok().unwrap();
        assert!(waiter.join().unwrap(), "woken by the job");
        assert_eq!(queue.admit(0, 1).len(), 1);
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.wait_for_job())
        };
        queue.close();
        assert!(!waiter.join().unwrap(), "closed and empty: stop");
        let (b, _) = job(2);
        assert!(matches!(queue.push(b), Err(Refused::Closed(_))));
    }
}
