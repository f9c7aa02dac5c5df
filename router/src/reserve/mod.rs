//! Budget reservations and rate limits: why budgets and per-key limits hold under concurrency,
//! on one process or many.
//!
//! Checking spend before a call and adding it after lets N concurrent requests all pass a nearly
//! spent budget. Instead every request that may spend money *reserves* its worst-case cost
//! against every budget window that applies before any backend is called, and the reservation is
//! replaced by the real cost when the answer ends. The invariant, per window:
//! `settled + reserved ≤ limit` — a reservation is taken for all windows at once or for none.
//! The same admission step takes the request's share of its key's rate limits ([`rate`]:
//! requests and tokens per minute, token buckets).
//!
//! Amounts are integer micro-dollars ([`Micros`]), so sums are exact. A window is named by its
//! scope (`*` for the whole gateway, else the tenant) and its period (`d:2026-01-31`,
//! `m:2026-01`), so a new day is simply a new key and no reset can race with a request.
//!
//! [`ReservationLedger`] is the seam: [`LocalLedger`] keeps everything in this process;
//! [`RedisLedger`] keeps it in a Redis shared by replicas (`store: redis://…`), one server-side
//! script per admission and per settlement. [`Hold`] is the guard a request carries: settling
//! it records the real cost, dropping it unsettled releases the reservation, and a reservation
//! whose deadline passed is dropped by the ledger itself, so nothing leaks.

mod health;
mod local;
pub mod rate;
mod redis;
mod shared;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;

pub use health::StoreHealth;
pub use local::LocalLedger;
pub use rate::{RateAsk, RateLimit, RateLimited, RateLimits};
pub use redis::RedisLedger;
pub use shared::{SharedConfig, StoreFailure, StoreUrl};

/// Money in millionths of a US dollar.
pub type Micros = i64;

/// USD to micro-dollars, rounded up (a reservation or a cost is never under-counted).
pub fn micros_up(usd: f64) -> Micros {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).ceil() as Micros
    } else {
        0
    }
}

/// A limit in USD to micro-dollars, rounded down (a limit is never over-stated).
pub fn micros_down(usd: f64) -> Micros {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).floor() as Micros
    } else {
        0
    }
}

/// One budget window: a scope and a period.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    /// `*` for the whole gateway, else the tenant (API key).
    pub scope: String,
    /// `d:YYYY-MM-DD` or `m:YYYY-MM` (UTC), as [`crate::ledger::budget_periods`] names them.
    pub period: String,
}

impl fmt::Display for WindowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = if self.scope == "*" {
            "global".to_string()
        } else {
            format!("tenant {}", self.scope)
        };
        let period = if self.period.starts_with("d:") {
            "daily"
        } else {
            "monthly"
        };
        write!(
            f,
            "{scope} {period} budget ({})",
            &self.period[2.min(self.period.len())..]
        )
    }
}

/// A window a reservation must fit in, with its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The window.
    pub key: WindowKey,
    /// Its limit in micro-dollars.
    pub limit: Micros,
}

/// Identifies one reservation in a ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(pub u64);

/// Why a reservation was refused: the first window it did not fit in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: ${:.6} spent + ${:.6} reserved + this request's ${:.6} > ${:.6}{}",
    *settled as f64 / 1e6, *reserved as f64 / 1e6, *amount as f64 / 1e6, *limit as f64 / 1e6,
    if *reserved > 0 && settled + amount <= *limit { " (held by outstanding reservations)" } else { "" })]
pub struct Refusal {
    /// The window that had no room.
    pub key: WindowKey,
    /// Its limit.
    pub limit: Micros,
    /// Settled in it.
    pub settled: Micros,
    /// Reserved in it by requests still running.
    pub reserved: Micros,
    /// What this request asked for.
    pub amount: Micros,
}

impl Refusal {
    /// Whether outstanding reservations, not settled spend, left no room.
    pub fn held_by_reservations(&self) -> bool {
        self.reserved > 0 && self.settled + self.amount <= self.limit
    }
}

/// Settled and reserved amounts of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowState {
    /// Real cost of finished requests.
    pub settled: Micros,
    /// Worst-case cost of requests still running.
    pub reserved: Micros,
}

/// What one admission asks of a ledger: a reservation of `amount` in every claimed window (none
/// when `amount` is 0) and a share of a key's rate limits.
#[derive(Clone, Debug)]
pub struct Ask {
    /// The windows the reservation must fit in.
    pub claims: Vec<Claim>,
    /// The worst-case cost, micro-dollars.
    pub amount: Micros,
    /// When the reservation expires by itself (the request's deadline).
    pub expires: Instant,
    /// The key's rate limits and the tokens this request may use, when limits apply.
    pub rate: Option<RateAsk>,
}

/// Why an admission was not granted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// A budget window had no room (the rate limits were charged: the request may still run
    /// on the budget's `on_exhausted` backend).
    #[error(transparent)]
    Budget(Refusal),
    /// A rate limit had no room; nothing was charged.
    #[error(transparent)]
    Rate(RateLimited),
    /// The shared store could not be asked (unreachable, timed out, or an error reply).
    #[error("the shared store is unreachable: {0}")]
    Unreachable(String),
}

/// What ends a reservation: its real cost (0 for a release) and the tokens to give back to the
/// key's token bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation, if one was taken.
    pub id: Option<ReservationId>,
    /// What it reserved.
    pub reserved: Micros,
    /// The windows the cost counts in.
    pub keys: Vec<WindowKey>,
    /// The real cost.
    pub cost: Micros,
    /// Tokens to return to a key's token bucket (`tokens`: reserved minus used).
    pub refund: Option<RateAsk>,
}

/// Where reservations, settled spend per window and rate-limit buckets are kept: in process
/// ([`LocalLedger`]) or in a store shared by replicas ([`RedisLedger`]).
pub trait ReservationLedger: Send + Sync + fmt::Debug {
    /// Whether the window's settled spend is known (else call [`Self::load`] first).
    fn is_loaded(&self, key: &WindowKey) -> bool;
    /// Seed a window's settled spend (from the persistent ledger); ignored if already known.
    fn load(&self, key: &WindowKey, settled: Micros);
    /// Take the rate-limit share, then reserve `ask.amount` in every claimed window or in none:
    /// admitted only if for each, `settled + reserved + amount ≤ limit`. The reservation is
    /// dropped at `ask.expires`. Atomic: concurrent asks, here or on other replicas, see each
    /// other whole.
    fn reserve(&self, ask: Ask) -> BoxFuture<'_, Result<ReservationId, Denied>>;
    /// Replace a reservation (if any, and not expired) by its real cost, and refund tokens.
    /// Does not wait: a shared ledger applies it in the background.
    fn settle(&self, settlement: Settlement);
    /// A window's amounts now (expired reservations not counted); a shared ledger answers with
    /// what it last saw.
    fn window(&self, key: &WindowKey) -> WindowState;
    /// Reachability of a shared store (`None`: nothing shared, nothing can fail).
    fn health(&self) -> Option<&StoreHealth> {
        None
    }
}

/// The guard a request carries from admission to its ledger row: [`Hold::settle`] records the
/// real cost exactly once; dropped unsettled, it releases its reservation.
#[derive(Debug)]
pub struct Hold {
    ledger: Arc<dyn ReservationLedger>,
    id: Option<ReservationId>,
    keys: Vec<WindowKey>,
    reserved: Micros,
    /// The rate-limit share taken at admission.
    tokens: Option<RateAsk>,
    done: bool,
}

impl Hold {
    /// A guard over reservation `id` (none for a request that reserved nothing but whose cost
    /// still counts) in `keys`.
    pub fn new(
        ledger: Arc<dyn ReservationLedger>,
        id: Option<ReservationId>,
        keys: Vec<WindowKey>,
        reserved: Micros,
    ) -> Self {
        Self {
            ledger,
            id,
            keys,
            reserved,
            tokens: None,
            done: false,
        }
    }

    /// The same guard, also owing the rate-limit share `taken` (its unused tokens are given
    /// back when it is settled).
    pub fn with_tokens(mut self, taken: RateAsk) -> Self {
        self.tokens = Some(taken);
        self
    }

    /// What was reserved, in micro-dollars.
    pub fn reserved(&self) -> Micros {
        self.reserved
    }

    /// Replace the reservation by the real cost; `tokens_used` (prompt + completion of every
    /// call) is what the key's token bucket keeps.
    pub fn settle(mut self, cost_usd: f64, tokens_used: u64) {
        self.done = true;
        self.finish(micros_up(cost_usd), tokens_used);
    }

    fn finish(&mut self, cost: Micros, tokens_used: u64) {
        let refund = self.tokens.take().map(|mut taken| {
            taken.tokens = taken.tokens.saturating_sub(tokens_used);
            taken
        });
        self.ledger.settle(Settlement {
            id: self.id,
            reserved: self.reserved,
            keys: std::mem::take(&mut self.keys),
            cost,
            refund,
        });
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done && (self.id.is_some() || self.tokens.is_some()) {
            self.finish(0, 0);
        }
    }
}

/// Carries a request's [`Hold`] from the routing decision to the request's tracker (a decision
/// is cloned and compared; the hold is taken out exactly once).
#[derive(Clone, Debug, Default)]
pub struct HoldSlot(Option<Arc<std::sync::Mutex<Option<Hold>>>>);

impl HoldSlot {
    /// A slot holding `hold`.
    pub fn new(hold: Hold) -> Self {
        Self(Some(Arc::new(std::sync::Mutex::new(Some(hold)))))
    }

    /// Take the hold out (once; later calls get `None`).
    pub fn take(&self) -> Option<Hold> {
        let slot = self.0.as_ref()?;
        slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl PartialEq for HoldSlot {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
