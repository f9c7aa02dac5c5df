//! Per-key rate limits: requests and tokens per minute, as token buckets.
//!
//! Why token buckets rather than a sliding-window log: a bucket is two numbers per key (a level
//! and the time it was last refilled), so checking it in a Redis script is O(1) whatever the
//! rate, and refunding the tokens a request reserved but did not use is one addition. A bucket
//! holds at most one minute's allowance (`requests_per_minute`, `tokens_per_minute`), starts
//! full and refills continuously at allowance/60 per second: a burst may spend a whole minute's
//! allowance at once, and then requests are admitted at the steady rate. That is the same
//! bound a sliding one-minute window gives (never more than a minute's allowance plus what
//! refilled during the window).
//!
//! A request takes one request token and its worst-case tokens (prompt + `max_tokens`, or the
//! budgets' default cap) from the tokens bucket; when it ends, the tokens it did not use go
//! back. A request whose worst case exceeds `tokens_per_minute` can never be admitted and is
//! refused as such. The same arithmetic runs in [`super::LocalLedger`] (in process) and in the
//! Redis admission script (`redis/admit.lua`), on the server's clock.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One key's allowance per minute (`None`: that dimension is not limited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Prompt + completion tokens per minute.
    pub tokens_per_minute: Option<u64>,
}

/// `rate_limits:` — the default allowance of every API key and named tenants' own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Every key's allowance, unless its tenant has its own.
    pub per_key: Option<RateLimit>,
    /// Named tenants' allowances, replacing `per_key`.
    pub tenants: BTreeMap<String, RateLimit>,
}

impl RateLimits {
    /// The allowance of `tenant`'s key (none for unauthenticated requests or without limits).
    pub fn for_tenant(&self, tenant: Option<&str>) -> Option<RateLimit> {
        let t = tenant?;
        self.tenants.get(t).copied().or(self.per_key)
    }
}

/// A request's claim on a key's buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateAsk {
    /// The tenant (API key label) whose buckets are charged.
    pub scope: String,
    /// Its allowance.
    pub limit: RateLimit,
    /// The tokens this request may use at most.
    pub tokens: u64,
}

/// Which bucket had no room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateKind {
    /// `requests_per_minute`.
    Requests,
    /// `tokens_per_minute`.
    Tokens,
}

/// A request refused by a rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// The tenant whose limit it is.
    pub scope: String,
    /// The bucket.
    pub kind: RateKind,
    /// Its allowance per minute.
    pub limit: u64,
    /// What the request needed from it.
    pub asked: u64,
    /// When it will have room (`None`: never, the request alone exceeds the allowance).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            RateKind::Requests => "requests",
            RateKind::Tokens => "tokens",
        };
        match self.retry_after {
            Some(wait) => write!(
                f,
                "rate limit of tenant {}: {} {what} per minute reached; retry in {:.1} s",
                self.scope,
                self.limit,
                wait.as_secs_f64()
            ),
            None => write!(
                f,
                "rate limit of tenant {}: this request may use {} {what}, more than the {} {what} per minute allowed (lower `max_tokens`)",
                self.scope, self.asked, self.limit
            ),
        }
    }
}

impl std::error::Error for RateLimited {}

/// A token bucket's state: its level and when it was last refilled (milliseconds on some clock).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    level: f64,
    at_ms: f64,
}

impl Bucket {
    /// A full bucket of `capacity` at `now_ms`.
    pub(crate) fn full(capacity: u64, now_ms: f64) -> Self {
        Self {
            level: capacity as f64,
            at_ms: now_ms,
        }
    }

    /// The level at `now_ms`: refilled at `capacity` per minute, never above `capacity`.
    fn level(&self, capacity: u64, now_ms: f64) -> f64 {
        let refill = (now_ms - self.at_ms).max(0.0) * capacity as f64 / 60_000.0;
        (self.level + refill).min(capacity as f64)
    }

    /// Whether `need` fits now; if not, how long until it does (`None`: never).
    pub(crate) fn check(
        &self,
        capacity: u64,
        need: u64,
        now_ms: f64,
    ) -> Result<(), Option<Duration>> {
        if need > capacity {
            return Err(None);
        }
        let level = self.level(capacity, now_ms);
        if level >= need as f64 {
            Ok(())
        } else {
            let ms = (need as f64 - level) * 60_000.0 / capacity as f64;
            Err(Some(Duration::from_millis(ms.ceil() as u64)))
        }
    }

    /// Take `amount` now (after [`Self::check`]).
    pub(crate) fn take(&mut self, capacity: u64, amount: u64, now_ms: f64) {
        self.level = self.level(capacity, now_ms) - amount as f64;
        self.at_ms = now_ms;
    }

    /// Give back `amount` now, up to `capacity`.
    pub(crate) fn refund(&mut self, capacity: u64, amount: u64, now_ms: f64) {
        self.level = (self.level(capacity, now_ms) + amount as f64).min(capacity as f64);
        self.at_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_admits_a_minute_then_refills_at_the_steady_rate() {
        let mut b = Bucket::full(60, 0.0);
        for _ in 0..60 {
            assert_eq!(b.check(60, 1, 0.0), Ok(()));
            b.take(60, 1, 0.0);
        }
        // Empty: one more needs one second (60 per minute).
        assert_eq!(b.check(60, 1, 0.0), Err(Some(Duration::from_secs(1))));
        assert_eq!(b.check(60, 1, 1_000.0), Ok(()));
        // Never above capacity, however long it rests.
        assert_eq!(b.check(60, 61, 1e9), Err(None));
        assert_eq!(b.check(60, 60, 1e9), Ok(()));
    }

    #[test]
    fn refunds_return_unused_tokens_up_to_capacity() {
        let mut b = Bucket::full(1_000, 0.0);
        b.take(1_000, 900, 0.0);
        assert!(b.check(1_000, 200, 0.0).is_err());
        b.refund(1_000, 850, 0.0);
        assert_eq!(b.check(1_000, 950, 0.0), Ok(()));
        b.refund(1_000, 5_000, 0.0);
        assert_eq!(b.check(1_000, 1_000, 0.0), Ok(()));
    }

    #[test]
    fn tenants_replace_the_per_key_default() {
        let own = RateLimit {
            requests_per_minute: Some(5),
            tokens_per_minute: None,
        };
        let default = RateLimit {
            requests_per_minute: Some(1),
            tokens_per_minute: Some(10),
        };
        let limits = RateLimits {
            per_key: Some(default),
            tenants: [("alice".to_string(), own)].into(),
        };
        assert_eq!(limits.for_tenant(Some("alice")), Some(own));
        assert_eq!(limits.for_tenant(Some("bob")), Some(default));
        assert_eq!(limits.for_tenant(None), None);
    }
}
