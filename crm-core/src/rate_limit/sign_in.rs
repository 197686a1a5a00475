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
//! and could otherwise rotate addresses to start afresh. The pairs live in this
//! process, like the in-process limiters; servers sharing a database each count their
//! own.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

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
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            free_failures: 10,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
        }
    }
}

impl SignInPolicy {
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
#[derive(Clone, Copy, Debug)]
struct Streak {
    failures: u32,
    last: DateTime<Utc>,
}

/// Forget stale pairs every this many admissions, so memory follows active attackers.
const PRUNE_EVERY: u64 = 4096;

/// The sign-in rule (see the module doc): admit or refuse an attempt, then settle it
/// with its outcome.
pub struct SignInThrottle {
    per_client: Arc<dyn RateLimiter>,
    policy: SignInPolicy,
    clock: Arc<dyn Clock>,
    streaks: Mutex<HashMap<String, Streak>>,
    admissions: AtomicU64,
}

impl std::fmt::Debug for SignInThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInThrottle")
            .field("per_client", &self.per_client.name())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SignInThrottle {
    /// Back-off per pair by `policy`, and every attempt from a client counted against
    /// `per_client` (keyed `sign-in:<client>`).
    pub fn new(per_client: Arc<dyn RateLimiter>, policy: SignInPolicy) -> Self {
        Self {
            per_client,
            policy,
            clock: Arc::new(SystemClock),
            streaks: Mutex::new(HashMap::new()),
            admissions: AtomicU64::new(0),
        }
    }

    /// Uses this clock for the back-off (tests move a manual one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
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
        if let Some(refused) = self.locked(&key, self.clock.now()) {
            return Ok(refused);
        }
        let client = self.per_client.check(&format!("sign-in:{}", attempt.client_key())).await?;
        if !client.allowed {
            return Ok(client);
        }
        let now = self.clock.now();
        let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        self.prune(&mut streaks, now);
        let streak = streaks.entry(key).or_insert(Streak { failures: 0, last: now });
        if self.is_forgotten(streak, now) {
            streak.failures = 0;
        }
        // A concurrent attempt may have been charged since `locked` looked.
        if let Some(wait) = self.wait(streak, now) {
            return Ok(self.refusal(wait));
        }
        streak.failures = streak.failures.saturating_add(1);
        streak.last = now;
        let pair = RateDecision {
            allowed: true,
            limit: self.policy.free_failures,
            remaining: self.policy.free_failures.saturating_sub(streak.failures),
            reset_after: self.policy.forget_after,
        };
        Ok(if pair.remaining < client.remaining { pair } else { client })
    }

    /// Settles an admitted attempt with the outcome of its sign-in: success clears the
    /// pair, a refused sign-in (`Unauthenticated`) stays charged, anything else (the
    /// storage was down) is refunded.
    pub fn settle<T>(&self, attempt: &SignInAttempt, outcome: &Result<T>) {
        let key = attempt.pair_key();
        let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(_) => {
                streaks.remove(&key);
            }
            Err(CrmError::Unauthenticated) => {}
            Err(_) => {
                if let Some(streak) = streaks.get_mut(&key) {
                    streak.failures = streak.failures.saturating_sub(1);
                }
            }
        }
    }

    /// The refusal of a pair that must still wait at `now`, if it must.
    fn locked(&self, key: &str, now: DateTime<Utc>) -> Option<RateDecision> {
        let streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        let streak = streaks.get(key).filter(|s| !self.is_forgotten(s, now))?;
        self.wait(streak, now).map(|wait| self.refusal(wait))
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

    fn prune(&self, streaks: &mut HashMap<String, Streak>, now: DateTime<Utc>) {
        if self.admissions.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            streaks.retain(|_, streak| !self.is_forgotten(streak, now));
        }
    }
}
