//! The rate-limiting contract: edges ask a [`RateLimiter`] before serving a caller, and
//! deployments choose where the counts live (in process, Redis…). [`gcra`] holds the
//! one arithmetic every limiter decides with, and the in-process limiter; [`sign_in`]
//! holds the sign-in rule on top of it: back-off per address and account, a looser
//! limit per address.

pub mod gcra;
pub mod sign_in;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// The answer to one request against a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go ahead.
    pub allowed: bool,
    /// Requests allowed per window (for `RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (for `RateLimit-Remaining`).
    pub remaining: u32,
    /// When a refused request may retry, or the window refills (for `Retry-After`
    /// and `RateLimit-Reset`).
    pub reset_after: Duration,
}

impl RateDecision {
    /// `reset_after` in whole seconds, for `Retry-After` and `RateLimit-Reset`: rounded
    /// up, since a client that waits the announced seconds must be accepted (1.5 s is
    /// 2, never 1), and at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let whole = self.reset_after.as_secs();
        let rounded_up = if self.reset_after.subsec_nanos() > 0 { whole.saturating_add(1) } else { whole };
        rounded_up.max(1)
    }
}

/// Counts requests per key (an IP, a user, an account) and decides whether one more
/// is allowed. Shared across tasks as `Arc<dyn RateLimiter>`. Every implementation runs
/// `rate_limiter_suite!`.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// A short name for diagnostics (`memory`, `redis`).
    fn name(&self) -> &str;
    /// Counts one request for `key` and says whether it is allowed.
    async fn check(&self, key: &str) -> Result<RateDecision>;
}
