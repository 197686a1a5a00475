//! The [`RateLimiter`] conformance cases: what the HTTP edge relies on from any limiter
//! (in process, Redis…). Each case takes a factory that builds a fresh limiter allowing
//! `limit` requests per `period` to each key, and panics, with a message naming what
//! broke, when the limiter misbehaves.
//!
//! What the cases hold, for any algorithm (GCRA, windows, logs):
//! - a fresh key allows `limit` requests in a burst, `remaining` counting down to 0,
//!   and refuses the next, with `remaining` 0;
//! - every decision reports the quota's `limit`, and a `reset_after` of at most
//!   `period`; a refusal's is above zero and honest: after waiting that long (give or
//!   take [`SLACK`], for stores that count in milliseconds) a request is allowed;
//! - waiting a refusal's `Retry-After` ([`RateDecision::retry_after_secs`], whole
//!   seconds) is always enough, with no slack: the seconds never round the wait down;
//! - a whole `period` after exhaustion, `limit` requests are allowed again;
//! - keys are independent, whatever characters they hold;
//! - concurrent checks of one key allow exactly `limit`, each seeing its own
//!   `remaining`.
//!
//! Whether a refused request counts is left open. Keys carry a random part, so
//! limiters sharing a server do not meet; short periods (a few hundred milliseconds)
//! keep the suite fast, long ones (an hour) make "nothing refills meanwhile" certain.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use uuid::Uuid;

use super::support::sleep;
use crate::rate_limit::{RateDecision, RateLimiter};

/// Calls `$callback!($args; case, case, …)` with the list of every rate-limiter case:
/// the one place they are enumerated.
#[doc(hidden)]
#[macro_export]
macro_rules! __rate_limiter_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* ;
            first_limit_requests_are_allowed_then_refused,
            refusal_reset_after_is_honest,
            waiting_retry_after_seconds_is_enough,
            quota_refills_within_one_period,
            keys_are_independent,
            limit_is_reported_consistently,
            concurrent_checks_never_exceed_the_limit,
        }
    };
}

/// Every rate-limiter case, by name.
pub const CASES: &[&str] = crate::__rate_limiter_cases!(__conformance_names!());

/// Expands the rate-limiter suite for one implementation, like
/// [`conformance_suite!`](crate::conformance_suite) does for storages:
///
/// ```ignore
/// mod rate_limiter_suite {
///     crm_core::rate_limiter_suite!(redis, |limit, period| async move { my_limiter(limit, period).await });
/// }
/// ```
///
/// That is a module named after the implementation with one `#[tokio::test]` per case
/// (a failure names both), and a check that the limiter's `name()` is the module's name
/// or its first `_`-separated part (`memory_gcra` runs a limiter named `memory`). The
/// factory takes `(limit: u32, period: Duration)` and returns a fresh
/// `Arc<dyn RateLimiter>` allowing `limit` requests per `period` to each key; it is
/// called at least once per case. Wrapping the invocations in a module named
/// `rate_limiter_suite` is what `scripts/test.sh` counts.
#[macro_export]
macro_rules! rate_limiter_suite {
    ($implementation:ident, $factory:expr) => {
        mod $implementation {
            #[allow(unused_imports)]
            use super::*;
            $crate::__rate_limiter_cases!(__rate_limiter_emit!($implementation, $factory));
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __rate_limiter_emit {
    ($implementation:ident, $factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                ::std::eprintln!(
                    "rate-limiter case `{}` on implementation `{}`",
                    ::std::stringify!($case),
                    ::std::stringify!($implementation),
                );
                $crate::conformance::rate_limiter::$case($factory).await;
            }
        )*

        /// Checks the factory builds the limiter this suite is named after, and prints
        /// how many cases run on it.
        #[::tokio::test]
        async fn suite_runs_on_the_named_implementation() {
            let limiter = $crate::conformance::rate_limiter::build($factory, 1, ::std::time::Duration::from_secs(60)).await;
            let (module, name) = (::std::stringify!($implementation), limiter.name());
            ::std::assert!(
                !name.is_empty() && (module == name || module.strip_prefix(name).is_some_and(|r| r.starts_with('_'))),
                "suite `{module}` runs on a limiter named `{name}`",
            );
            ::std::eprintln!(
                "rate-limiter conformance: {} cases on implementation `{module}`",
                $crate::conformance::rate_limiter::CASES.len(),
            );
        }
    };
}

/// Calls the factory: gives a closure its `(u32, Duration)` signature.
#[doc(hidden)]
pub async fn build<F, Fut>(make: F, limit: u32, period: Duration) -> Arc<dyn RateLimiter>
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    make(limit, period).await
}

/// How far an honest `reset_after` may fall short of the real wait (rounding to ms).
pub const SLACK: Duration = Duration::from_millis(10);

/// A period nothing refills within while a case runs.
const HOUR: Duration = Duration::from_secs(3600);

/// A key no other case or run uses.
fn key(name: &str) -> String {
    format!("conformance:{}:{name}", Uuid::new_v4().simple())
}

async fn check(limiter: &Arc<dyn RateLimiter>, key: &str) -> RateDecision {
    limiter.check(key).await.unwrap()
}

/// What every decision of a `limit` per `period` limiter holds.
fn assert_sound(d: &RateDecision, limit: u32, period: Duration) {
    assert_eq!(d.limit, limit, "every decision reports the quota's limit: {d:?}");
    assert!(d.remaining < limit, "remaining is below the limit after a request: {d:?}");
    assert!(d.reset_after <= period, "reset_after is at most the period ({period:?}): {d:?}");
    if !d.allowed {
        assert_eq!(d.remaining, 0, "a refusal leaves nothing remaining: {d:?}");
        assert!(d.reset_after > Duration::ZERO, "a refusal says when to retry: {d:?}");
    }
}

/// Checks `key` until a refusal (a slow machine may refill a little meanwhile) and
/// returns the refusal.
async fn exhaust(limiter: &Arc<dyn RateLimiter>, key: &str, limit: u32, period: Duration) -> RateDecision {
    for _ in 0..limit + 100 {
        let d = check(limiter, key).await;
        assert_sound(&d, limit, period);
        if !d.allowed {
            return d;
        }
    }
    panic!("{limit} requests per {period:?} never refused");
}

/// A fresh key allows `limit` requests with `remaining` counting down, then refuses.
pub async fn first_limit_requests_are_allowed_then_refused<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = make(5, HOUR).await;
    let k = key("countdown");
    for i in 0..5 {
        let d = check(&limiter, &k).await;
        assert_sound(&d, 5, HOUR);
        assert!(d.allowed, "request {} of 5 must be allowed: {d:?}", i + 1);
        assert_eq!(d.remaining, 4 - i, "remaining after request {} of 5: {d:?}", i + 1);
    }
    for _ in 0..3 {
        let d = check(&limiter, &k).await;
        assert_sound(&d, 5, HOUR);
        assert!(!d.allowed, "a request beyond the limit must be refused: {d:?}");
    }
}

/// A refusal's `reset_after` is honest: a request right after it is refused too, and
/// one after waiting that long is allowed.
pub async fn refusal_reset_after_is_honest<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let period = Duration::from_millis(500);
    let limiter = make(2, period).await;
    // A machine that stalls past the promised time between two checks proves nothing:
    // try again on a new key.
    for _ in 0..5 {
        let k = key("honest");
        let refused = exhaust(&limiter, &k, 2, period).await;
        let at = Instant::now();
        let again = check(&limiter, &k).await;
        if at.elapsed() + SLACK >= refused.reset_after {
            continue;
        }
        assert_sound(&again, 2, period);
        assert!(!again.allowed, "allowed before the refusal's reset_after ({refused:?}) passed: {again:?}");
        sleep(again.reset_after + SLACK).await;
        let after = check(&limiter, &k).await;
        assert_sound(&after, 2, period);
        assert!(after.allowed, "refused after waiting reset_after ({again:?}): {after:?}");
        return;
    }
    panic!("the machine stalled past every refusal's reset_after");
}

/// Waiting the whole seconds a refusal's `Retry-After` announces gets the request
/// accepted: a wait of 1.5 s is announced as 2, never 1. (A period that is not a whole
/// number of seconds is what tells rounding up from rounding down.)
pub async fn waiting_retry_after_seconds_is_enough<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let period = Duration::from_millis(1500);
    let limiter = make(1, period).await;
    let k = key("retry-after");
    let refused = exhaust(&limiter, &k, 1, period).await;
    let announced = Duration::from_secs(refused.retry_after_secs());
    assert!(
        announced >= refused.reset_after,
        "Retry-After of {announced:?} is shorter than the wait of {:?}: {refused:?}",
        refused.reset_after,
    );
    sleep(announced).await;
    let after = check(&limiter, &k).await;
    assert_sound(&after, 1, period);
    assert!(after.allowed, "refused after waiting Retry-After ({announced:?}) of {refused:?}: {after:?}");
}

/// A whole period after exhausting a key, `limit` requests in a row are allowed again.
pub async fn quota_refills_within_one_period<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let period = Duration::from_millis(300);
    let limiter = make(3, period).await;
    let k = key("refill");
    exhaust(&limiter, &k, 3, period).await;
    sleep(period + SLACK).await;
    for i in 0..3 {
        let d = check(&limiter, &k).await;
        assert_sound(&d, 3, period);
        assert!(d.allowed, "request {} of 3 a period after exhaustion must be allowed: {d:?}", i + 1);
    }
}

/// Exhausting one key leaves every other key its whole quota, however alike the keys.
pub async fn keys_are_independent<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = make(3, HOUR).await;
    let base = key("ip");
    let others = [
        format!("{base}:"),
        format!("{base} "),
        format!("{base}:10.0.0.1"),
        format!("{base}*"),
        format!("{base}ünïcødé/κλειδί"),
        base.to_uppercase(),
        key(""),
    ];
    let refused = exhaust(&limiter, &base, 3, HOUR).await;
    assert!(!refused.allowed);
    for other in &others {
        let d = check(&limiter, other).await;
        assert_sound(&d, 3, HOUR);
        assert!(d.allowed && d.remaining == 2, "key {other:?} is charged for {base:?}: {d:?}");
    }
    let d = check(&limiter, &base).await;
    assert!(!d.allowed, "the exhausted key stays refused while others are used: {d:?}");
}

/// Every decision reports its limiter's quota, allowed or refused, with limiters of
/// different quotas alive side by side.
pub async fn limit_is_reported_consistently<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let one = make(1, HOUR).await;
    let seven = make(7, HOUR).await;
    let many = make(1000, HOUR).await;
    let k = key("shared");
    let d = check(&one, &k).await;
    assert_sound(&d, 1, HOUR);
    assert!(d.allowed && d.remaining == 0, "a limit of 1 allows one request: {d:?}");
    let d = check(&one, &k).await;
    assert_sound(&d, 1, HOUR);
    assert!(!d.allowed, "a limit of 1 refuses the second: {d:?}");
    // The same key on other limiters is theirs alone.
    for i in 0..9 {
        let d = check(&seven, &k).await;
        assert_sound(&d, 7, HOUR);
        assert_eq!(d.allowed, i < 7, "request {} against a limit of 7: {d:?}", i + 1);
    }
    let d = check(&many, &k).await;
    assert_sound(&d, 1000, HOUR);
    assert!(d.allowed && d.remaining == 999, "{d:?}");
}

/// Concurrent checks of one key allow exactly `limit` requests, each allowed one seeing
/// its own `remaining`.
pub async fn concurrent_checks_never_exceed_the_limit<F, Fut>(make: F)
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = make(10, HOUR).await;
    let k = key("burst");
    let decisions = join_all((0..64).map(|_| limiter.check(&k))).await;
    let decisions: Vec<RateDecision> = decisions.into_iter().map(Result::unwrap).collect();
    for d in &decisions {
        assert_sound(d, 10, HOUR);
    }
    let mut remaining: Vec<u32> = decisions.iter().filter(|d| d.allowed).map(|d| d.remaining).collect();
    assert_eq!(remaining.len(), 10, "64 concurrent requests against a limit of 10 allowed {}", remaining.len());
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u32>>(), "each allowed request sees its own remaining");
    assert!(!check(&limiter, &k).await.allowed, "the key is exhausted after the burst");
}
