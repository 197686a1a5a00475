//! What the Redis limiter adds to the suite: the in-process limiter's decisions and
//! figures for the same requests, one quota across instances, keys that expire.

use std::time::Duration;

use crm_cache_redis::{RedisRateLimiter, testing};
use crm_core::rate_limit::{
    RateDecision, RateLimiter,
    gcra::{GcraLimiter, GcraQuota},
};
use redis::AsyncCommands;

async fn redis_limiter(prefix: &str, quota: GcraQuota) -> RedisRateLimiter {
    RedisRateLimiter::new(testing::connection().await, prefix, quota)
}

/// The two limiters read different clocks a moment apart: allowed, limit and
/// remaining must match exactly (the sequence keeps every boundary ≥ 50 ms away), a
/// refusal's wait within this.
const CLOCK_SKEW: Duration = Duration::from_millis(20);

fn assert_same(step: usize, memory: &RateDecision, redis: &RateDecision) {
    let same_counts = (memory.allowed, memory.limit, memory.remaining) == (redis.allowed, redis.limit, redis.remaining);
    assert!(same_counts, "step {step}: in process {memory:?}, on Redis {redis:?}");
    let gap = memory.reset_after.abs_diff(redis.reset_after);
    let exact = memory.allowed && gap.is_zero();
    assert!(exact || (!memory.allowed && gap <= CLOCK_SKEW), "step {step}: in process {memory:?}, on Redis {redis:?}");
}

/// Bursts, refusals, partial and whole refills: the in-process limiter and the Redis
/// one, fed the same requests at the same moments, decide alike with the same figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_decides_like_the_in_process_limiter() {
    let quota = GcraQuota::new(4, Duration::from_secs(1));
    let memory = GcraLimiter::new(4, Duration::from_secs(1));
    let redis = redis_limiter(&testing::unique_prefix(), quota).await;
    // (pause before, checks): refills of 250 ms each, paused to land mid-interval.
    let script = [(0, 5), (375, 2), (675, 4), (1500, 5)];
    let mut step = 0;
    let mut refusals = 0;
    for (pause_ms, checks) in script {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        for _ in 0..checks {
            let (m, r) = (memory.check("k").await.unwrap(), redis.check("k").await.unwrap());
            assert_same(step, &m, &r);
            refusals += usize::from(!m.allowed);
            step += 1;
        }
    }
    assert!(refusals >= 3, "the sequence reaches refusals ({refusals})");
}

/// Two instances (each its own connection and limiter) spend one quota between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_prefix_share_one_quota() {
    let prefix = testing::unique_prefix();
    let quota = GcraQuota::new(6, Duration::from_secs(3600));
    let (a, b) = (redis_limiter(&prefix, quota).await, redis_limiter(&prefix, quota).await);
    let mut allowed = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        allowed += usize::from(limiter.check("user-1").await.unwrap().allowed);
    }
    assert_eq!(allowed, 6, "10 requests spread over two instances with a quota of 6");
    let other_prefix = redis_limiter(&testing::unique_prefix(), quota).await;
    assert!(other_prefix.check("user-1").await.unwrap().allowed, "another prefix counts apart");
}

/// A key lives until its TAT: idle callers leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_when_idle() {
    let prefix = testing::unique_prefix();
    let limiter = redis_limiter(&prefix, GcraQuota::new(3, Duration::from_millis(300))).await;
    limiter.check("idle").await.unwrap();
    limiter.check("idle").await.unwrap();
    let key = format!("{prefix}rate:3/100000:idle");
    let mut connection = testing::connection().await;
    let ttl: i64 = connection.pttl(&key).await.unwrap();
    assert!((150..=200).contains(&ttl), "the key lives until its TAT, 200 ms ahead: {ttl} ms");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let exists: bool = connection.exists(&key).await.unwrap();
    assert!(!exists, "the key expired with its TAT");
    let fresh = limiter.check("idle").await.unwrap();
    assert_eq!(fresh.remaining, 2, "an expired key is a fresh one: {fresh:?}");
}
