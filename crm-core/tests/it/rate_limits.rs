//! The GCRA arithmetic and the in-process limiter, on a manual clock: exact decisions
//! and `RateLimit-*` figures (the suite checks behaviour; this checks the numbers every
//! limiter must reproduce).

use std::{sync::Arc, time::Duration};

use chrono::{TimeZone, Utc};
use crm_core::{
    ManualClock,
    rate_limit::{
        RateDecision, RateLimiter,
        gcra::{GcraLimiter, GcraQuota},
    },
};

fn allowed(limit: u32, remaining: u32, reset_after_ms: u64) -> RateDecision {
    RateDecision { allowed: true, limit, remaining, reset_after: Duration::from_millis(reset_after_ms) }
}

fn refused(limit: u32, reset_after_ms: u64) -> RateDecision {
    RateDecision { allowed: false, limit, remaining: 0, reset_after: Duration::from_millis(reset_after_ms) }
}

#[test]
fn quota_spends_one_interval_per_request_and_bursts_up_to_the_limit() {
    let quota = GcraQuota::new(4, Duration::from_millis(400));
    assert_eq!((quota.limit(), quota.interval_us()), (4, 100_000));
    let now = 1_000_000_000;
    let (first, tat) = quota.decide(None, now);
    assert_eq!(first, allowed(4, 3, 100));
    assert_eq!(tat, Some(now + 100_000));
    let (last, tat) = quota.decide(Some(now + 300_000), now);
    assert_eq!(last, allowed(4, 0, 100));
    let (over, kept) = quota.decide(tat, now + 30_000);
    assert_eq!(over, refused(4, 70), "allowed once the TAT is within the burst again");
    assert_eq!(kept, None, "a refusal stores nothing");
    let (stale, tat) = quota.decide(Some(now - 5_000_000), now);
    assert_eq!((stale, tat), (allowed(4, 3, 100), Some(now + 100_000)), "a TAT in the past is a fresh key");
}

#[test]
fn a_zero_limit_or_period_still_makes_a_working_quota() {
    assert_eq!(GcraQuota::new(0, Duration::from_secs(1)).limit(), 1);
    assert_eq!(GcraQuota::new(10, Duration::ZERO).interval_us(), 1);
}

#[tokio::test]
async fn the_in_process_limiter_reports_the_quotas_figures_as_time_passes() {
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let limiter = GcraLimiter::new(4, Duration::from_millis(400)).with_clock(clock.clone());
    let at = |ms: i64| clock.set(start + chrono::Duration::milliseconds(ms));
    let mut seen = Vec::new();
    for ms in [0, 0, 0, 0, 0, 30, 150, 150, 420, 420, 420, 420, 2000] {
        at(ms);
        seen.push(limiter.check("k").await.unwrap());
    }
    let expected = [
        allowed(4, 3, 100),
        allowed(4, 2, 100),
        allowed(4, 1, 100),
        allowed(4, 0, 100),
        refused(4, 100),
        refused(4, 70),
        allowed(4, 0, 100), // one interval refilled at 100 ms, 50 ms early
        refused(4, 50),
        allowed(4, 2, 100), // 420 ms: TAT 500, within 80 ms of three intervals back
        allowed(4, 1, 100),
        allowed(4, 0, 100),
        refused(4, 80),
        allowed(4, 3, 100), // idle well past its TAT: fresh again
    ];
    assert_eq!(seen, expected);
    at(2000);
    assert_eq!(limiter.check("other").await.unwrap(), allowed(4, 3, 100), "keys are counted apart");
}
