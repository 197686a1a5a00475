//! In-process rate limiting (GCRA, through `governor`) behind the core's
//! [`RateLimiter`] contract, and the limits the server applies.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use crm_core::rate_limit::{
    RateDecision, RateLimiter,
    sign_in::{SignInPolicy, SignInThrottle},
};
use governor::{
    Quota,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

type Keyed = governor::RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Forget idle keys after this many checks, so memory follows active callers only.
const RETAIN_EVERY: u64 = 4096;

/// A per-key GCRA limiter in process memory: `limit` requests a period, bursting up to
/// the same number.
pub struct GcraLimiter {
    limiter: Keyed,
    limit: u32,
    /// One request's share of the period: the time one more request takes to refill.
    refill: Duration,
    checks: AtomicU64,
}

impl std::fmt::Debug for GcraLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcraLimiter").field("limit", &self.limit).field("refill", &self.refill).finish_non_exhaustive()
    }
}

impl GcraLimiter {
    /// A limiter of `per_minute` requests a minute per key (at least 1).
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, Duration::from_secs(60))
    }

    /// A limiter of `limit` requests (at least 1) per `period` per key (one request
    /// refills every `period / limit`, and at most every nanosecond).
    pub fn new(limit: u32, period: Duration) -> Self {
        let n = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let refill = (period / n.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(refill).expect("a non-zero refill interval").allow_burst(n);
        let limiter = governor::RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Self { limiter, limit: n.get(), refill, checks: AtomicU64::new(0) }
    }

    /// Shared, for the server's limits.
    pub fn shared(per_minute: u32) -> Arc<dyn RateLimiter> {
        Arc::new(Self::per_minute(per_minute))
    }
}

#[async_trait]
impl RateLimiter for GcraLimiter {
    fn name(&self) -> &str {
        "memory"
    }

    async fn check(&self, key: &str) -> crm_core::Result<RateDecision> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        Ok(match self.limiter.check_key(&key.to_owned()) {
            Ok(state) => RateDecision {
                allowed: true,
                limit: self.limit,
                remaining: state.remaining_burst_capacity(),
                reset_after: self.refill,
            },
            Err(not_until) => RateDecision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        })
    }
}

/// Every limit the server applies, each a pluggable [`RateLimiter`].
#[derive(Clone)]
pub struct Limits {
    /// Requests per client IP (every route).
    pub per_ip: Arc<dyn RateLimiter>,
    /// Requests per authenticated user or API key.
    pub per_user: Arc<dyn RateLimiter>,
    /// Sign-in attempts: back-off per (client IP, account), a looser limit per client IP
    /// (the core's rule; the edge supplies the IP and the email).
    pub sign_in: Arc<SignInThrottle>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("backend", &self.per_ip.name()).finish_non_exhaustive()
    }
}

impl Limits {
    /// In-process limits: `per_ip` and `per_user` requests a minute; `logins` failed
    /// sign-ins per (client IP, account) before back-off (the default back-off
    /// otherwise), and three times as many sign-in attempts a minute per client IP.
    pub fn in_memory(per_ip: u32, per_user: u32, logins: u32) -> Self {
        Self::with_sign_in(per_ip, per_user, SignInPolicy { free_failures: logins, ..SignInPolicy::default() })
    }

    /// In-process limits with this sign-in policy; each client IP gets three times its
    /// free failures in sign-in attempts a minute, across accounts.
    pub fn with_sign_in(per_ip: u32, per_user: u32, sign_in: SignInPolicy) -> Self {
        let per_client = GcraLimiter::shared(sign_in.free_failures.saturating_mul(3));
        Self {
            per_ip: GcraLimiter::shared(per_ip),
            per_user: GcraLimiter::shared(per_user),
            sign_in: Arc::new(SignInThrottle::new(per_client, sign_in)),
        }
    }
}
