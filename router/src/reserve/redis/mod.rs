//! [`RedisLedger`]: reservations, settled spend and rate-limit buckets in a Redis shared by every
//! replica (`store: redis://host:port/db`), so N gateways hold one budget, not N.
//!
//! Keys (one Redis, not a cluster: a script's keys must live on one node):
//! - `triage:budget:{scope}:{day|month}:{date}` — a hash `settled`, `reserved` (micro-dollars)
//!   per budget window, the period in the name so a new day is a new key (no reset race), with
//!   a TTL past the window's end (2 days for a day, 32 for a month, renewed on every write);
//! - `…:holds` beside it — a sorted set of live reservations `id:amount` scored by deadline
//!   (ms, Redis' clock); admission sweeps the expired ones of the windows it touches first, so
//!   a crashed replica's reservations free themselves;
//! - `triage:rate:{scope}` — the key's token buckets (see [`super::rate`]);
//! - `triage:hold:seq` — reservation ids, unique across replicas.
//!
//! Admission is one `EVALSHA` of `admit.lua` (one round trip: rate limits, seeding, sweep,
//! check and reserve, atomically); settlement is one of `settle.lua`, sent in the background
//! (the request does not wait; a reservation never under-counts, so the invariant holds while
//! it is in flight). Redis' `TIME` is the only clock, so replicas' clocks need not agree.
//!
//! While Redis does not answer, [`StoreHealth`] fails calls fast (one probe per back-off, 100 ms
//! doubling to 5 s) and the connection manager reconnects; the gateway applies
//! `store_failure`. A settlement that cannot be sent is retried with the same back-off for a
//! minute, then logged as lost (the SQLite ledger row still has it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::OnceCell;

use super::rate::{RateKind, RateLimited};
use super::{
    Ask, Denied, Micros, Refusal, ReservationId, ReservationLedger, Settlement, StoreHealth,
    StoreUrl, WindowKey, WindowState,
};

/// The longest a call waits for Redis before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a settlement is retried while Redis is down.
const SETTLE_RETRY_FOR: Duration = Duration::from_secs(60);

/// Why a Redis ledger could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisLedgerError {
    /// The URL does not parse as a Redis connection address.
    #[error("store {url}: not a usable Redis URL ({kind})")]
    BadUrl {
        /// The URL, password hidden.
        url: StoreUrl,
        /// What the redis crate objected to (its error kind; the URL is never repeated).
        kind: String,
    },
}

/// The parts settlements share with the ledger from background tasks.
struct Shared {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    admit: Script,
    settle: Script,
    health: StoreHealth,
    /// What each window looked like in the last reply (for the policy's budget guard).
    seen: Mutex<HashMap<WindowKey, WindowState>>,
    /// Settled spend this process read from its own ledger per window: sent with every
    /// admission touching the window, used only when Redis has no such window yet. Forgotten
    /// whenever a call fails, so that a Redis which comes back empty is seeded with the spend
    /// the ledger holds then, not with what it held when this process first read it.
    seeds: Mutex<HashMap<WindowKey, Micros>>,
}

/// Reservations, spend and rate limits kept in Redis.
pub struct RedisLedger {
    url: StoreUrl,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger")
            .field("url", &self.url)
            .field("up", &self.shared.health.is_up())
            .finish_non_exhaustive()
    }
}

impl RedisLedger {
    /// A ledger on the Redis at `url`. Nothing is connected yet: the first admission connects
    /// (inside the gateway's runtime), and an unreachable Redis is a runtime state, not an
    /// error here.
    pub fn new(url: &StoreUrl) -> Result<Self, RedisLedgerError> {
        let client = redis::Client::open(url.expose()).map_err(|e| RedisLedgerError::BadUrl {
            url: url.clone(),
            kind: format!("{:?}", e.kind()),
        })?;
        Ok(Self {
            url: url.clone(),
            shared: Arc::new(Shared {
                client,
                conn: OnceCell::new(),
                admit: Script::new(include_str!("admit.lua")),
                settle: Script::new(include_str!("settle.lua")),
                health: StoreHealth::default(),
                seen: Mutex::new(HashMap::new()),
                seeds: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The Redis key of a budget window: `triage:budget:{scope}:{day|month}:{date}`.
    pub fn window_key(key: &WindowKey) -> String {
        let (kind, date) = match key.period.split_once(':') {
            Some(("d", date)) => ("day", date),
            Some(("m", date)) => ("month", date),
            _ => ("period", key.period.as_str()),
        };
        format!("triage:budget:{}:{kind}:{date}", key.scope)
    }

    /// The Redis key of a tenant's rate-limit buckets.
    pub fn rate_key(scope: &str) -> String {
        format!("triage:rate:{scope}")
    }

    fn seeds(&self) -> std::sync::MutexGuard<'_, HashMap<WindowKey, Micros>> {
        self.shared.seeds()
    }

    async fn admit(&self, ask: Ask) -> Result<ReservationId, Denied> {
        let shared = &self.shared;
        if !shared.health.may_try() {
            return Err(Denied::Unreachable(format!(
                "{} did not answer; next attempt after the back-off",
                self.url
            )));
        }
        let mut inv = shared.admit.prepare_invoke();
        let rate_scope = ask.rate.as_ref().map_or("-", |r| r.scope.as_str());
        inv.key("triage:hold:seq").key(Self::rate_key(rate_scope));
        let hold_ms = ask
            .expires
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1);
        let (rpm, tpm, tokens) = ask.rate.as_ref().map_or((0, 0, 0), |r| {
            (
                r.limit.requests_per_minute.unwrap_or(0),
                r.limit.tokens_per_minute.unwrap_or(0),
                r.tokens,
            )
        });
        inv.arg(ask.amount)
            .arg(u64::try_from(hold_ms).unwrap_or(u64::MAX))
            .arg(rpm)
            .arg(tpm)
            .arg(tokens);
        {
            let seeds = self.seeds();
            for claim in &ask.claims {
                let name = Self::window_key(&claim.key);
                inv.key(&name).key(format!("{name}:holds"));
                inv.arg(claim.limit)
                    .arg(seeds.get(&claim.key).copied().unwrap_or(-1))
                    .arg(ttl_secs(&claim.key));
            }
        }
        let reply: Vec<i64> = match shared.call(&inv, "admit").await {
            Ok(r) => r,
            Err(e) => return Err(Denied::Unreachable(format!("{}: {e}", self.url))),
        };
        let malformed = || {
            Denied::Unreachable(format!(
                "{}: unexpected admission reply {reply:?}",
                self.url
            ))
        };
        match reply.first().copied() {
            Some(1) => {
                let keys = ask.claims.iter().map(|c| &c.key);
                shared.remember(keys, reply.get(2..).unwrap_or_default());
                Ok(ReservationId(
                    reply.get(1).copied().map_or(0, |id| id.max(0) as u64),
                ))
            }
            Some(2) => {
                let (Some(&i), Some(&settled), Some(&reserved)) =
                    (reply.get(1), reply.get(2), reply.get(3))
                else {
                    return Err(malformed());
                };
                let claim = usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| ask.claims.get(i))
                    .ok_or_else(malformed)?;
                shared.remember([&claim.key], &[settled, reserved]);
                Err(Denied::Budget(Refusal {
                    key: claim.key.clone(),
                    limit: claim.limit,
                    settled,
                    reserved,
                    amount: ask.amount,
                }))
            }
            Some(3) => {
                let (Some(&kind), Some(&retry), Some(&limit), Some(&asked)) =
                    (reply.get(1), reply.get(2), reply.get(3), reply.get(4))
                else {
                    return Err(malformed());
                };
                Err(Denied::Rate(RateLimited {
                    scope: rate_scope.to_string(),
                    kind: if kind == 1 {
                        RateKind::Requests
                    } else {
                        RateKind::Tokens
                    },
                    limit: limit.max(0) as u64,
                    asked: asked.max(0) as u64,
                    retry_after: u64::try_from(retry).ok().map(Duration::from_millis),
                }))
            }
            _ => Err(malformed()),
        }
    }
}

impl Shared {
    fn seeds(&self) -> std::sync::MutexGuard<'_, HashMap<WindowKey, Micros>> {
        self.seeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run a script with a deadline, recording the store's health.
    async fn call(
        &self,
        inv: &redis::ScriptInvocation<'_>,
        what: &'static str,
    ) -> Result<Vec<i64>, String> {
        let result = tokio::time::timeout(CALL_TIMEOUT, async {
            let conn = self
                .conn
                .get_or_try_init(|| async {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(CALL_TIMEOUT))
                        .set_response_timeout(Some(CALL_TIMEOUT))
                        .set_number_of_retries(2)
                        .set_max_delay(Duration::from_secs(1));
                    ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                })
                .await?;
            let mut conn = conn.clone();
            inv.invoke_async::<Vec<i64>>(&mut conn).await
        })
        .await;
        let error = match result {
            Ok(Ok(reply)) => {
                self.health.succeeded(what);
                return Ok(reply);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
        };
        self.health.failed(what, &error);
        // Redis may come back empty (restarted without persistence): its windows must then
        // start from the spend the ledger holds at that time, so read it again.
        self.seeds().clear();
        Err(error)
    }

    /// Keep the amounts a reply carried (`settled, reserved` per key, in order).
    fn remember<'a>(&self, keys: impl IntoIterator<Item = &'a WindowKey>, values: &[i64]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for (key, pair) in keys.into_iter().zip(values.chunks_exact(2)) {
            seen.insert(
                key.clone(),
                WindowState {
                    settled: pair[0],
                    reserved: pair[1],
                },
            );
        }
    }

    /// Send a settlement, retrying with the health back-off for [`SETTLE_RETRY_FOR`].
    async fn settle(&self, s: Settlement) {
        let mut inv = self.settle.prepare_invoke();
        let rate_scope = s.refund.as_ref().map_or("-", |r| r.scope.as_str());
        inv.key(RedisLedger::rate_key(rate_scope));
        for key in &s.keys {
            let name = RedisLedger::window_key(key);
            inv.key(&name).key(format!("{name}:holds"));
        }
        let member = match s.id {
            Some(ReservationId(id)) if id > 0 => format!("{id}:{}", s.reserved),
            _ => String::new(),
        };
        let (refund, tpm) = s.refund.as_ref().map_or((0, 0), |r| {
            (r.tokens, r.limit.tokens_per_minute.unwrap_or(0))
        });
        inv.arg(member)
            .arg(s.reserved)
            .arg(s.cost)
            .arg(refund)
            .arg(tpm);
        for key in &s.keys {
            inv.arg(ttl_secs(key));
        }
        let started = Instant::now();
        loop {
            if self.health.may_try() {
                if let Ok(reply) = self.call(&inv, "settle").await {
                    self.remember(&s.keys, &reply);
                    return;
                }
            }
            if started.elapsed() > SETTLE_RETRY_FOR {
                tracing::error!(
                    cost_micros = s.cost,
                    windows = s.keys.len(),
                    "a settlement could not reach the shared store; its cost is missing there (the ledger row has it)"
                );
                return;
            }
            tokio::time::sleep(super::health::MIN_BACKOFF).await;
        }
    }
}

/// Seconds a window's keys live after a write: past the end of its day or month.
fn ttl_secs(key: &WindowKey) -> u64 {
    if key.period.starts_with("d:") {
        2 * 86_400
    } else {
        32 * 86_400
    }
}

impl ReservationLedger for RedisLedger {
    fn is_loaded(&self, key: &WindowKey) -> bool {
        self.seeds().contains_key(key)
    }

    fn load(&self, key: &WindowKey, settled: Micros) {
        self.seeds().entry(key.clone()).or_insert(settled);
    }

    fn reserve(&self, ask: Ask) -> BoxFuture<'_, Result<ReservationId, Denied>> {
        Box::pin(self.admit(ask))
    }

    fn settle(&self, settlement: Settlement) {
        let nothing_to_do = settlement.cost == 0
            && settlement.id.is_none_or(|ReservationId(id)| id == 0)
            && settlement.refund.as_ref().is_none_or(|r| r.tokens == 0);
        if nothing_to_do {
            return;
        }
        let shared = self.shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { shared.settle(settlement).await });
            }
            Err(_) => tracing::error!(
                "a settlement was made outside the gateway's runtime; the shared store misses it"
            ),
        }
    }

    fn window(&self, key: &WindowKey) -> WindowState {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    fn health(&self) -> Option<&StoreHealth> {
        Some(&self.shared.health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_name_scope_and_period() {
        let day = WindowKey {
            scope: "alice".into(),
            period: "d:2026-12-02".into(),
        };
        let month = WindowKey {
            scope: "*".into(),
            period: "m:2026-12".into(),
        };
        assert_eq!(
            RedisLedger::window_key(&day),
            "triage:budget:alice:day:2026-12-02"
        );
        assert_eq!(
            RedisLedger::window_key(&month),
            "triage:budget:*:month:2026-12"
        );
        assert!(ttl_secs(&day) < ttl_secs(&month));
    }

    #[test]
    fn a_bad_url_is_an_error_that_hides_the_password() {
        let url = StoreUrl::parse("redis://:hunter2@[::1").unwrap_or_else(|e| panic!("{e}"));
        let err = RedisLedger::new(&url).map(|_| ()).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
