//! The limits the server applies, each behind the core's [`RateLimiter`] contract: in
//! process ([`GcraLimiter`], the core's GCRA) or shared by several servers.

use std::{sync::Arc, time::Duration};

pub use crm_core::rate_limit::gcra::GcraLimiter;
use crm_core::rate_limit::{
    RateLimiter,
    gcra::GcraQuota,
    sign_in::{MemoryStreaks, SignInPolicy, SignInThrottle, StreakStore},
};

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
        let streaks = Arc::new(MemoryStreaks::default());
        Self::built_with(per_ip, per_user, sign_in, &|quota| Arc::new(GcraLimiter::from_quota(quota)), streaks)
    }

    /// The same limits with their counts where `limiter` and `streaks` keep them:
    /// `limiter` builds a limiter for a quota a minute (the limiters' keys, `ip:…`,
    /// `user:…`, `key:…`, `sign-in:…`, never meet), `streaks` holds the sign-in
    /// back-off of every (client IP, account).
    pub fn built_with(
        per_ip: u32,
        per_user: u32,
        sign_in: SignInPolicy,
        limiter: &dyn Fn(GcraQuota) -> Arc<dyn RateLimiter>,
        streaks: Arc<dyn StreakStore>,
    ) -> Self {
        let per_minute = |limit: u32| limiter(GcraQuota::new(limit, MINUTE));
        let per_client = per_minute(sign_in.free_failures.saturating_mul(3));
        Self {
            per_ip: per_minute(per_ip),
            per_user: per_minute(per_user),
            sign_in: Arc::new(SignInThrottle::new(per_client, sign_in).with_streaks(streaks)),
        }
    }
}

/// The period of every server limit.
const MINUTE: Duration = Duration::from_secs(60);
