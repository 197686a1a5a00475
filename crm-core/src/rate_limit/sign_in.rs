//! Sign-in throttling: who may try a password now.
//!
//! The rule keys on the pair (client address, account), not on either alone: keyed on
//! the address only, one address (an office behind one NAT, an attacker) would lock out
//! every account it tries; keyed on the account only, an attacker anywhere could lock a
//! named account out from everywhere. So:
//!
//! 1. Each pair gets [`SignInPolicy::free_failures`] failed attempts; after the last of
//!    them it waits [`SignInPolicy::first_delay`] before its next attempt, and each
//!    further failure doubles the wait, up to [`SignInPolicy::max_delay`]. Waiting
//!    never extends a wait: only failures do.
//! 2. A success clears its pair; a pair with no failure for
//!    [`SignInPolicy::forget_after`] starts afresh.
//! 3. Every attempt from an address, whatever the account, also counts against a
//!    looser per-address [`RateLimiter`], so one address cannot try many accounts
//!    quickly (password spraying).
//!
//! An attempt is charged as a failure when it is admitted, before its password is
//! checked, so concurrent attempts cannot slip past the count while the first are
//! still hashing; success clears it, and an attempt that ended for another reason
//! (storage down) is refunded.
//!
//! IPv6 clients are keyed by their /64 network: one host usually holds a whole /64
//! and could otherwise rotate addresses to start afresh. The pairs' streaks live in a
//! [`StreakStore`]: this process's ([`MemoryStreaks`], the default) or one every server
//! instance shares (Redis), so that instances behind one load balancer count one
//! streak. The store only keeps streaks and swaps them atomically; the rule is decided
//! here, then written with a compare-and-swap, and decided again when another attempt
//! changed the streak meanwhile.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{RateDecision, RateLimiter};
use crate::{
    crm::{Clock, SystemClock},
    error::{CrmError, Result},
    id::TenantId,
};

/// How failed sign-ins slow a pair (address, account) down. The defaults: 10 free
/// failures, then 1 s, 2 s, 4 s… up to 15 minutes between attempts, forgotten after an
/// hour without failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Failures a pair may have before it must wait.
    pub free_failures: u32,
    /// The wait after the last free failure; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// A pair with no failure for this long starts afresh; keep it well above
    /// `max_delay`, or waiting out a lock would also reset the count.
    pub forget_after: Duration,
    /// The shortest time a refused sign-in takes from its arrival to its answer (zero:
    /// none). Unknown emails already cost one verification at the current parameters;
    /// an account whose password hash was imported at other parameters (bcrypt) costs
    /// its own until its owner signs in. Set this above the slowest such verification
    /// and every refusal takes the same time.
    pub failure_floor: Duration,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            free_failures: 10,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            failure_floor: Duration::ZERO,
        }
    }
}

impl SignInPolicy {
    /// How much longer a refused sign-in that took `elapsed` so far waits before it
    /// answers (see [`SignInPolicy::failure_floor`]).
    pub fn hold_refusal(&self, elapsed: Duration) -> Duration {
        self.failure_floor.saturating_sub(elapsed)
    }

    /// The wait after a pair's `failures`-th failure (none while failures are free).
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(self.free_failures.max(1)) else { return Duration::ZERO };
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// One sign-in attempt, as the edge saw it: from which client, for which account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInAttempt {
    /// The account: tenant and email, the email as sign-in finds it (trimmed, lower case).
    account: String,
    /// The client: an IPv4 address or an IPv6 /64 network; `None` when unknown.
    client: Option<IpAddr>,
}

impl SignInAttempt {
    /// An attempt to sign in as `email` in `tenant` from `client` (the client IP the
    /// edge trusts, `None` when it has none).
    pub fn new(tenant: TenantId, email: &str, client: Option<IpAddr>) -> Self {
        Self { account: format!("{tenant}:{}", email.trim().to_lowercase()), client: client.map(network) }
    }

    fn client_key(&self) -> String {
        self.client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }

    fn pair_key(&self) -> String {
        format!("{}|{}", self.client_key(), self.account)
    }
}

/// What a client is keyed by: an IPv4 address as it is (also when mapped into IPv6),
/// an IPv6 address by its /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// A pair's failures in a row and when the last one was charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streak {
    /// Failures in a row (admitted attempts not yet cleared or refunded).
    pub failures: u32,
    /// When the last failure was charged.
    pub last: DateTime<Utc>,
}

/// Where the pairs' streaks live. Every implementation runs `streak_store_suite!`.
#[async_trait]
pub trait StreakStore: Send + Sync + 'static {
    /// A short name for diagnostics (`memory`, `redis`).
    fn name(&self) -> &str;
    /// The streak of `pair`, if it has one.
    async fn get(&self, pair: &str) -> Result<Option<Streak>>;
    /// Replaces the streak of `pair` with `new` (`None` removes it) if it is still
    /// `current`, atomically; false, changing nothing, when it is not. A stored streak
    /// may be forgotten `keep` after it was written.
    async fn swap(&self, pair: &str, current: Option<Streak>, new: Option<Streak>, keep: Duration) -> Result<bool>;
}

/// Streaks in this process's memory: one server's counts.
#[derive(Debug, Default)]
pub struct MemoryStreaks {
    /// Each streak with when it may be forgotten.
    streaks: Mutex<HashMap<String, (Streak, DateTime<Utc>)>>,
    swaps: AtomicU64,
}

#[async_trait]
impl StreakStore for MemoryStreaks {
    fn name(&self) -> &str {
        "memory"
    }

    async fn get(&self, pair: &str) -> Result<Option<Streak>> {
        Ok(self.streaks.lock().unwrap_or_else(PoisonError::into_inner).get(pair).map(|(streak, _)| *streak))
    }

    async fn swap(&self, pair: &str, current: Option<Streak>, new: Option<Streak>, keep: Duration) -> Result<bool> {
        let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        if streaks.get(pair).map(|(streak, _)| *streak) != current {
            return Ok(false);
        }
        match new {
            Some(streak) => {
                let forget_at = streak.last + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
                if self.swaps.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
                    // Memory follows active attackers: a new streak's time is "now".
                    streaks.retain(|_, (_, forget)| *forget > streak.last);
                }
                streaks.insert(pair.to_owned(), (streak, forget_at));
            }
            None => {
                streaks.remove(pair);
            }
        }
        Ok(true)
    }
}

/// Forget stale pairs every this many swaps, so memory follows active attackers.
const PRUNE_EVERY: u64 = 4096;

/// How often an attempt decides again after other attempts changed its pair's streak
/// first; past that, the pair is under a concurrent barrage and the attempt is refused.
const SWAP_ATTEMPTS: usize = 16;

/// The sign-in rule (see the module doc): admit or refuse an attempt, then settle it
/// with its outcome.
pub struct SignInThrottle {
    per_client: Arc<dyn RateLimiter>,
    policy: SignInPolicy,
    clock: Arc<dyn Clock>,
    streaks: Arc<dyn StreakStore>,
}

impl std::fmt::Debug for SignInThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInThrottle")
            .field("per_client", &self.per_client.name())
            .field("streaks", &self.streaks.name())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SignInThrottle {
    /// Back-off per pair by `policy` (streaks in this process), and every attempt from a
    /// client counted against `per_client` (keyed `sign-in:<client>`).
    pub fn new(per_client: Arc<dyn RateLimiter>, policy: SignInPolicy) -> Self {
        Self { per_client, policy, clock: Arc::new(SystemClock), streaks: Arc::new(MemoryStreaks::default()) }
    }

    /// Uses this clock for the back-off (tests move a manual one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps the streaks in `store` (one shared by every server instance).
    pub fn with_streaks(mut self, store: Arc<dyn StreakStore>) -> Self {
        self.streaks = store;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &SignInPolicy {
        &self.policy
    }

    /// Whether `attempt` may check a password now. An admitted attempt is charged as a
    /// failure until [`SignInThrottle::settle`] says otherwise. The decision reports the
    /// tighter of the pair's back-off and the client's limit; a refusal's `reset_after`
    /// is the wait after which the attempt is admitted (unless other attempts meanwhile
    /// spend the client's limit).
    pub async fn admit(&self, attempt: &SignInAttempt) -> Result<RateDecision> {
        let key = attempt.pair_key();
        let (mut current, now) = (self.streaks.get(&key).await?, self.clock.now());
        if let Some(wait) = self.live(current, now).and_then(|s| self.wait(&s, now)) {
            return Ok(self.refusal(wait));
        }
        let client = self.per_client.check(&format!("sign-in:{}", attempt.client_key())).await?;
        if !client.allowed {
            return Ok(client);
        }
        for _ in 0..SWAP_ATTEMPTS {
            let now = self.clock.now();
            let streak = self.live(current, now).unwrap_or(Streak { failures: 0, last: now });
            // A concurrent attempt may have been charged since the first look.
            if let Some(wait) = self.wait(&streak, now) {
                return Ok(self.refusal(wait));
            }
            let charged = Streak { failures: streak.failures.saturating_add(1), last: now };
            if self.streaks.swap(&key, current, Some(charged), self.policy.forget_after).await? {
                let pair = RateDecision {
                    allowed: true,
                    limit: self.policy.free_failures,
                    remaining: self.policy.free_failures.saturating_sub(charged.failures),
                    reset_after: self.policy.forget_after,
                };
                return Ok(if pair.remaining < client.remaining { pair } else { client });
            }
            current = self.streaks.get(&key).await?;
        }
        Ok(self.refusal(self.policy.first_delay))
    }

    /// Settles an admitted attempt with the outcome of its sign-in: success clears the
    /// pair, a refused sign-in (`Unauthenticated`) stays charged, anything else (the
    /// storage was down) is refunded. Fails only when the streak store does.
    pub async fn settle<T>(&self, attempt: &SignInAttempt, outcome: &Result<T>) -> Result<()> {
        let key = attempt.pair_key();
        for _ in 0..SWAP_ATTEMPTS {
            let current = self.streaks.get(&key).await?;
            let settled = match (outcome, current) {
                (Err(CrmError::Unauthenticated), _) | (_, None) => return Ok(()),
                (Ok(_), Some(_)) => None,
                (Err(_), Some(s)) => Some(Streak { failures: s.failures.saturating_sub(1), ..s }),
            };
            if self.streaks.swap(&key, current, settled, self.policy.forget_after).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The streak unless it is forgotten at `now`.
    fn live(&self, streak: Option<Streak>, now: DateTime<Utc>) -> Option<Streak> {
        streak.filter(|s| !self.is_forgotten(s, now))
    }

    /// How long `streak` must still wait at `now`, if at all.
    fn wait(&self, streak: &Streak, now: DateTime<Utc>) -> Option<Duration> {
        // A clock that went back counts as no time elapsed.
        let elapsed = (now - streak.last).to_std().unwrap_or(Duration::ZERO);
        self.policy.delay_after(streak.failures).checked_sub(elapsed).filter(|wait| !wait.is_zero())
    }

    fn refusal(&self, wait: Duration) -> RateDecision {
        RateDecision { allowed: false, limit: self.policy.free_failures, remaining: 0, reset_after: wait }
    }

    fn is_forgotten(&self, streak: &Streak, now: DateTime<Utc>) -> bool {
        (now - streak.last).to_std().is_ok_and(|idle| idle >= self.policy.forget_after)
    }
}
