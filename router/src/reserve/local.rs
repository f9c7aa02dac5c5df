//! [`LocalLedger`]: the reservation ledger of one process — every window's settled amount,
//! live reservations and every key's rate-limit buckets behind one mutex, so checking and
//! reserving across windows is atomic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use futures::future::BoxFuture;

use super::rate::{Bucket, RateKind, RateLimited};
use super::{
    Ask, Denied, Micros, Refusal, ReservationId, ReservationLedger, Settlement, WindowKey,
    WindowState,
};

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

/// A key's two buckets: requests and tokens.
#[derive(Debug, Default)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

#[derive(Debug, Default)]
struct Inner {
    windows: HashMap<WindowKey, Window>,
    buckets: HashMap<String, Buckets>,
    next_id: u64,
}

/// Reservations, settled spend and rate-limit buckets of one process.
#[derive(Debug)]
pub struct LocalLedger {
    inner: Mutex<Inner>,
    /// The buckets' clock.
    epoch: Instant,
}

impl Default for LocalLedger {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            epoch: Instant::now(),
        }
    }
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

    fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1e3
    }

    /// Rate limits first (nothing charged when one refuses), then every budget window.
    fn reserve_now(&self, ask: &Ask) -> Result<ReservationId, Denied> {
        let now = Instant::now();
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        if let Some(rate) = &ask.rate {
            let b = inner.buckets.entry(rate.scope.clone()).or_default();
            let dims = [
                (
                    RateKind::Requests,
                    rate.limit.requests_per_minute,
                    1,
                    &mut b.requests,
                ),
                (
                    RateKind::Tokens,
                    rate.limit.tokens_per_minute,
                    rate.tokens,
                    &mut b.tokens,
                ),
            ];
            let mut take = Vec::new();
            for (kind, limit, need, bucket) in dims {
                let Some(cap) = limit else { continue };
                let bucket = bucket.get_or_insert_with(|| Bucket::full(cap, now_ms));
                if let Err(retry_after) = bucket.check(cap, need, now_ms) {
                    return Err(Denied::Rate(RateLimited {
                        scope: rate.scope.clone(),
                        kind,
                        limit: cap,
                        asked: need,
                        retry_after,
                    }));
                }
                take.push((bucket, cap, need));
            }
            for (bucket, cap, need) in take {
                bucket.take(cap, need, now_ms);
            }
        }
        for claim in &ask.claims {
            let w = inner.windows.entry(claim.key.clone()).or_default();
            w.purge(now);
            let reserved = w.reserved(now);
            if w.settled + reserved + ask.amount > claim.limit {
                return Err(Denied::Budget(Refusal {
                    key: claim.key.clone(),
                    limit: claim.limit,
                    settled: w.settled,
                    reserved,
                    amount: ask.amount,
                }));
            }
        }
        inner.next_id += 1;
        let id = ReservationId(inner.next_id);
        if ask.amount > 0 {
            for claim in &ask.claims {
                if let Some(w) = inner.windows.get_mut(&claim.key) {
                    w.held.insert(id, (ask.amount, ask.expires));
                }
            }
        }
        Ok(id)
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

    fn reserve(&self, ask: Ask) -> BoxFuture<'_, Result<ReservationId, Denied>> {
        Box::pin(std::future::ready(self.reserve_now(&ask)))
    }

    fn settle(&self, s: Settlement) {
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        for key in &s.keys {
            let w = inner.windows.entry(key.clone()).or_default();
            if let Some(id) = s.id {
                w.held.remove(&id);
            }
            w.settled += s.cost;
        }
        if let Some(r) = s.refund {
            let bucket = inner
                .buckets
                .get_mut(&r.scope)
                .and_then(|b| b.tokens.as_mut());
            if let (Some(bucket), Some(cap)) = (bucket, r.limit.tokens_per_minute) {
                bucket.refund(cap, r.tokens, now_ms);
            }
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

    use futures::FutureExt;

    use super::*;
    use crate::reserve::{Claim, Hold, RateAsk, RateLimit};

    /// Reserve without a rate limit (the local ledger answers at once).
    fn reserve(
        l: &dyn ReservationLedger,
        claims: &[Claim],
        amount: Micros,
        expires: Instant,
    ) -> Result<ReservationId, Denied> {
        l.reserve(Ask {
            claims: claims.to_vec(),
            amount,
            expires,
            rate: None,
        })
        .now_or_never()
        .unwrap()
    }

    fn settle(l: &LocalLedger, id: Option<ReservationId>, keys: &[WindowKey], cost: Micros) {
        l.settle(Settlement {
            id,
            reserved: 0,
            keys: keys.to_vec(),
            cost,
            refund: None,
        });
    }

    fn budget(d: Denied) -> Refusal {
        match d {
            Denied::Budget(r) => r,
            other => panic!("not a budget refusal: {other}"),
        }
    }

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
        let id = reserve(&l, &claims, 20, later()).unwrap();
        // The tenant window has 0 room left: refused, and the global window is untouched.
        let refused = reserve(&l, &claims, 1, later()).unwrap_err();
        let refused = budget(refused);
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
        settle(&l, Some(id), &[g.clone(), t.clone()], 15);
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
        reserve(&l, &claims, 5, later()).unwrap();
        let spent = budget(reserve(&l, &claims, 1, later()).unwrap_err());
        assert_eq!(spent.key, t);
    }

    #[test]
    fn a_new_period_is_a_new_window() {
        let l = LocalLedger::new();
        let d1 = key("*", "d:2026-01-31");
        let d2 = key("*", "d:2026-02-01");
        l.load(&d1, 100);
        assert!(reserve(
            &l,
            &[Claim {
                key: d1.clone(),
                limit: 100
            }],
            1,
            later()
        )
        .is_err());
        assert!(!l.is_loaded(&d2));
        reserve(
            &l,
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
        reserve(&l, &claims, 10, Instant::now() - Duration::from_millis(1)).unwrap();
        assert_eq!(l.window(&d).reserved, 0);
        reserve(&l, &claims, 10, later()).unwrap();
        assert!(reserve(&l, &claims, 1, later()).is_err());
    }

    #[test]
    fn a_dropped_hold_releases_and_a_settled_one_counts_once() {
        let l: Arc<dyn ReservationLedger> = Arc::new(LocalLedger::new());
        let d = key("*", "m:2026-01");
        let claims = [Claim {
            key: d.clone(),
            limit: 50,
        }];
        let id = reserve(&*l, &claims, 50, later()).unwrap();
        drop(Hold::new(l.clone(), Some(id), vec![d.clone()], 50));
        assert_eq!(l.window(&d), WindowState::default());
        let id = reserve(&*l, &claims, 50, later()).unwrap();
        Hold::new(l.clone(), Some(id), vec![d.clone()], 50).settle(0.000_012, 0);
        assert_eq!(
            l.window(&d),
            WindowState {
                settled: 12,
                reserved: 0
            }
        );
    }

    #[test]
    fn rate_limits_refuse_without_charging_and_refund_unused_tokens() {
        let l = LocalLedger::new();
        let share = |tokens| RateAsk {
            scope: "alice".into(),
            limit: RateLimit {
                requests_per_minute: Some(3),
                tokens_per_minute: Some(1_000),
            },
            tokens,
        };
        let ask = |tokens| Ask {
            claims: Vec::new(),
            amount: 0,
            expires: later(),
            rate: Some(share(tokens)),
        };
        let take = |tokens| l.reserve(ask(tokens)).now_or_never().unwrap();
        take(600).unwrap();
        match take(2_000).unwrap_err() {
            Denied::Rate(r) => {
                assert_eq!(r.retry_after, None, "never fits");
                assert!(r
                    .to_string()
                    .contains("more than the 1000 tokens per minute"));
            }
            other => panic!("{other}"),
        }
        // 400 tokens left: a 600-token request is refused and takes no request token.
        match take(600).unwrap_err() {
            Denied::Rate(r) => {
                assert_eq!((r.kind, r.limit, r.asked), (RateKind::Tokens, 1_000, 600));
                assert!(r.retry_after.is_some());
            }
            other => panic!("{other}"),
        }
        // The first request used 100 of its 600: 500 come back.
        l.settle(Settlement {
            id: None,
            reserved: 0,
            keys: Vec::new(),
            cost: 0,
            refund: Some(share(500)),
        });
        take(600).unwrap();
        take(1).unwrap();
        match take(1).unwrap_err() {
            Denied::Rate(r) => assert_eq!(r.kind, RateKind::Requests),
            other => panic!("{other}"),
        }
    }
}
