//! GCRA (the generic cell rate algorithm): the arithmetic every limiter of this
//! workspace decides with, and [`GcraLimiter`], the in-process limiter built on it.
//!
//! A key's whole state is one instant, its *theoretical arrival time* (TAT): when the
//! key would have used its quota up had requests come at the steady rate. A quota of
//! `limit` requests per `period` spends `interval = period / limit` per request and
//! tolerates a TAT up to `limit × interval` ahead of now (the burst). So:
//!
//! 1. `tat = max(stored TAT, now)` (a key never seen, or idle past its TAT, is fresh);
//! 2. `next = tat + interval`; the request is allowed when `now ≥ next − tolerance`,
//!    and then `next` is stored;
//! 3. allowed: `remaining = ⌊(now + tolerance − next) / interval⌋`, `reset_after =
//!    interval` (one more request refills); refused: `remaining = 0`, `reset_after =
//!    next − tolerance − now` (when the request would be allowed).
//!
//! Times are whole microseconds since the Unix epoch, so a store that counts in
//! integers (Redis's Lua script in crm-cache-redis mirrors [`GcraQuota::decide`] step
//! by step) reaches the same decisions and figures for the same inputs.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;

use super::{RateDecision, RateLimiter};
use crate::{
    crm::{Clock, SystemClock},
    error::Result,
};

/// A quota of `limit` requests per period, bursting up to `limit`, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraQuota {
    limit: u32,
    interval_us: u64,
}

impl GcraQuota {
    /// `limit` requests (at least 1) per `period`: one refills every `period / limit`,
    /// rounded down to the microsecond, and at most every microsecond.
    pub fn new(limit: u32, period: Duration) -> Self {
        let limit = limit.max(1);
        let interval = period.as_micros() / u128::from(limit);
        Self { limit, interval_us: u64::try_from(interval).unwrap_or(u64::MAX).max(1) }
    }

    /// Requests per period (the burst).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Microseconds one request spends, and one refill takes.
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// How far ahead of now a key's TAT may be: the whole burst.
    fn tolerance_us(&self) -> u64 {
        self.interval_us.saturating_mul(u64::from(self.limit))
    }

    /// The decision on a request at `now_us` for a key whose stored TAT is `tat_us`
    /// (`None`: never seen or forgotten), and the TAT to store when it is allowed.
    pub fn decide(&self, tat_us: Option<u64>, now_us: u64) -> (RateDecision, Option<u64>) {
        let tolerance = self.tolerance_us();
        let next = tat_us.unwrap_or(now_us).max(now_us).saturating_add(self.interval_us);
        let allowed_at = next.saturating_sub(tolerance);
        if now_us < allowed_at {
            let reset_after = Duration::from_micros(allowed_at - now_us);
            return (RateDecision { allowed: false, limit: self.limit, remaining: 0, reset_after }, None);
        }
        let remaining = (now_us.saturating_add(tolerance) - next) / self.interval_us;
        let decision = RateDecision {
            allowed: true,
            limit: self.limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after: Duration::from_micros(self.interval_us),
        };
        (decision, Some(next))
    }
}

/// Forget idle keys after this many checks, so memory follows active callers only.
const PRUNE_EVERY: u64 = 4096;

/// A per-key GCRA limiter in process memory (named `memory`): counts of one process
/// only, for a single server; several servers share counts through Redis instead.
pub struct GcraLimiter {
    quota: GcraQuota,
    clock: Arc<dyn Clock>,
    tats: Mutex<HashMap<String, u64>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for GcraLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcraLimiter").field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl GcraLimiter {
    /// A limiter of `limit` requests (at least 1) per `period` per key.
    pub fn new(limit: u32, period: Duration) -> Self {
        Self::from_quota(GcraQuota::new(limit, period))
    }

    /// A limiter of `quota` per key.
    pub fn from_quota(quota: GcraQuota) -> Self {
        Self { quota, clock: Arc::new(SystemClock), tats: Mutex::default(), checks: AtomicU64::new(0) }
    }

    /// A limiter of `per_minute` requests a minute per key (at least 1).
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, Duration::from_secs(60))
    }

    /// Shared, as the edges hold limiters.
    pub fn shared(per_minute: u32) -> Arc<dyn RateLimiter> {
        Arc::new(Self::per_minute(per_minute))
    }

    /// Uses this clock (tests move a manual one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The quota every key gets.
    pub fn quota(&self) -> GcraQuota {
        self.quota
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp_micros()).unwrap_or(0)
    }
}

#[async_trait]
impl RateLimiter for GcraLimiter {
    fn name(&self) -> &str {
        "memory"
    }

    async fn check(&self, key: &str) -> Result<RateDecision> {
        let now = self.now_us();
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            // A TAT in the past decides like no TAT at all.
            tats.retain(|_, tat| *tat > now);
        }
        let (decision, next) = self.quota.decide(tats.get(key).copied(), now);
        if let Some(next) = next {
            tats.insert(key.to_owned(), next);
        }
        Ok(decision)
    }
}
