//! [`LocalLedger`]: the reservation ledger of one process — every window's settled amount and
//! live reservations behind one mutex, so checking and reserving across windows is atomic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{Claim, Micros, Refusal, ReservationId, ReservationLedger, WindowKey, WindowState};

#[derive(Debug, Default)]
struct Window {
    settled: Micros,
    /// Live reservations: id → (amount, expiry).
    held: HashMap<ReservationId, (Micros, Instant)>,
}

impl Window {
    fn reserved(&self, now: Instant) -> Micros {
        self.held
            .values()
            .filter(|(_, exp)| *exp > now)
            .map(|(a, _)| *a)
            .sum()
    }

    fn purge(&mut self, now: Instant) {
        self.held.retain(|_, (_, exp)| *exp > now);
    }
}

#[derive(Debug, Default)]
struct Inner {
    windows: HashMap<WindowKey, Window>,
    next_id: u64,
}

/// Reservations and settled spend of one process.
#[derive(Debug, Default)]
pub struct LocalLedger {
    inner: Mutex<Inner>,
}

impl LocalLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent integers: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReservationLedger for LocalLedger {
    fn is_loaded(&self, key: &WindowKey) -> bool {
        self.lock().windows.contains_key(key)
    }

    fn load(&self, key: &WindowKey, settled: Micros) {
        self.lock()
            .windows
            .entry(key.clone())
            .or_insert_with(|| Window {
                settled,
                held: HashMap::new(),
            });
    }

    fn reserve(
        &self,
        claims: &[Claim],
        amount: Micros,
        expires: Instant,
    ) -> Result<ReservationId, Refusal> {
        let now = Instant::now();
        let mut inner = self.lock();
        for claim in claims {
            let w = inner.windows.entry(claim.key.clone()).or_default();
            w.purge(now);
            let reserved = w.reserved(now);
            if w.settled + reserved + amount > claim.limit {
                return Err(Refusal {
                    key: claim.key.clone(),
                    limit: claim.limit,
                    settled: w.settled,
                    reserved,
                    amount,
                });
            }
        }
        inner.next_id += 1;
        let id = ReservationId(inner.next_id);
        for claim in claims {
            if let Some(w) = inner.windows.get_mut(&claim.key) {
                w.held.insert(id, (amount, expires));
            }
        }
        Ok(id)
    }

    fn settle(&self, id: Option<ReservationId>, keys: &[WindowKey], cost: Micros) {
        let mut inner = self.lock();
        for key in keys {
            let w = inner.windows.entry(key.clone()).or_default();
            if let Some(id) = id {
                w.held.remove(&id);
            }
            w.settled += cost;
        }
    }

    fn release(&self, id: ReservationId) {
        let mut inner = self.lock();
        for w in inner.windows.values_mut() {
            w.held.remove(&id);
        }
    }

    fn window(&self, key: &WindowKey) -> WindowState {
        let now = Instant::now();
        self.lock()
            .windows
            .get(key)
            .map(|w| WindowState {
                settled: w.settled,
                reserved: w.reserved(now),
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::reserve::Hold;

    fn key(scope: &str, period: &str) -> WindowKey {
        WindowKey {
            scope: scope.into(),
            period: period.into(),
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    #[test]
    fn reserves_in_every_window_or_in_none() {
        let l = LocalLedger::new();
        let g = key("*", "d:2026-01-31");
        let t = key("alice", "d:2026-01-31");
        l.load(&t, 80);
        let claims = [
            Claim {
                key: g.clone(),
                limit: 1_000,
            },
            Claim {
                key: t.clone(),
                limit: 100,
            },
        ];
        let id = l.reserve(&claims, 20, later()).unwrap();
        // The tenant window has 0 room left: refused, and the global window is untouched.
        let refused = l.reserve(&claims, 1, later()).unwrap_err();
        assert_eq!(refused.key, t);
        assert_eq!((refused.settled, refused.reserved), (80, 20));
        assert!(refused.held_by_reservations());
        assert!(refused
            .to_string()
            .contains("held by outstanding reservations"));
        assert_eq!(
            l.window(&g),
            WindowState {
                settled: 0,
                reserved: 20
            }
        );
        // Settling moves the reservation to the real cost, in both windows at once.
        l.settle(Some(id), &[g.clone(), t.clone()], 15);
        assert_eq!(
            l.window(&g),
            WindowState {
                settled: 15,
                reserved: 0
            }
        );
        assert_eq!(
            l.window(&t),
            WindowState {
                settled: 95,
                reserved: 0
            }
        );
        l.reserve(&claims, 5, later()).unwrap();
        let spent = l.reserve(&claims, 1, later()).unwrap_err();
        assert_eq!(spent.key, t);
    }

    #[test]
    fn a_new_period_is_a_new_window() {
        let l = LocalLedger::new();
        let d1 = key("*", "d:2026-01-31");
        let d2 = key("*", "d:2026-02-01");
        l.load(&d1, 100);
        assert!(l
            .reserve(
                &[Claim {
                    key: d1.clone(),
                    limit: 100
                }],
                1,
                later()
            )
            .is_err());
        assert!(!l.is_loaded(&d2));
        l.reserve(
            &[Claim {
                key: d2.clone(),
                limit: 100,
            }],
            100,
            later(),
        )
        .unwrap();
        assert_eq!(l.window(&d1).settled, 100);
        assert_eq!(l.window(&d2).reserved, 100);
        // Loading a known window does not overwrite what this process counted.
        l.load(&d2, 7);
        assert_eq!(l.window(&d2).settled, 0);
    }

    #[test]
    fn expired_reservations_stop_counting() {
        let l = LocalLedger::new();
        let d = key("*", "d:2026-01-31");
        let claims = [Claim {
            key: d.clone(),
            limit: 10,
        }];
        // Already past its deadline: holds nothing.
        l.reserve(&claims, 10, Instant::now() - Duration::from_millis(1))
            .unwrap();
        assert_eq!(l.window(&d).reserved, 0);
        l.reserve(&claims, 10, later()).unwrap();
        assert!(l.reserve(&claims, 1, later()).is_err());
    }

    #[test]
    fn a_dropped_hold_releases_and_a_settled_one_counts_once() {
        let l: Arc<dyn ReservationLedger> = Arc::new(LocalLedger::new());
        let d = key("*", "m:2026-01");
        let claims = [Claim {
            key: d.clone(),
            limit: 50,
        }];
        let id = l.reserve(&claims, 50, later()).unwrap();
        drop(Hold::new(l.clone(), Some(id), vec![d.clone()], 50));
        assert_eq!(l.window(&d), WindowState::default());
        let id = l.reserve(&claims, 50, later()).unwrap();
        Hold::new(l.clone(), Some(id), vec![d.clone()], 50).settle(0.000_012);
        assert_eq!(
            l.window(&d),
            WindowState {
                settled: 12,
                reserved: 0
            }
        );
    }
}
