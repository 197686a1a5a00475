//! Rate limiting with its counts in Redis, so every server instance counts against one
//! quota: [`RedisRateLimiter`], the core's GCRA ([`crm_core::rate_limit::gcra`]), and
//! [`RedisStreaks`], the sign-in back-off's streaks.
//!
//! One key per limited key and quota, `rate:<limit>/<interval µs>:<key>` after the
//! prefix, holds the key's TAT in microseconds. One Lua script reads it, decides and
//! writes it back, so concurrent checks from any instance are serialised by Redis. The
//! script takes "now" from the Redis server's `TIME`, never from the caller: instances
//! whose clocks disagree still share one clock. A key expires when its TAT passes (it
//! would decide like a fresh key then), so idle callers cost nothing.

use std::{sync::LazyLock, time::Duration};

use async_trait::async_trait;
use chrono::DateTime;
use crm_core::{
    CrmError, Result,
    rate_limit::{
        RateDecision, RateLimiter,
        gcra::GcraQuota,
        sign_in::{Streak, StreakStore},
    },
};
use redis::{AsyncCommands, Script, aio::ConnectionManager};

use crate::crm_error;

/// GCRA on the server's clock, step for step [`GcraQuota::decide`]: ARGV[1] is the
/// interval, ARGV[2] the limit (µs, integers). Returns `{allowed, remaining,
/// reset_after µs}`. `%.0f` writes the TAT as a whole number: Lua would print a large
/// one in exponent form, losing microseconds.
static DECIDE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local tolerance = interval * limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
local allowed_at = next - tolerance
if now < allowed_at then return {0, 0, allowed_at - now} end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
return {1, math.floor((now + tolerance - next) / interval), interval}
",
    )
});

/// A per-key GCRA limiter in Redis (named `redis`). Cheap to clone; clones share the
/// connection.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    quota: GcraQuota,
    /// The prefix, then the quota: limiters of different quotas never share a key.
    key_prefix: String,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("key_prefix", &self.key_prefix).finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// `quota` per key, under keys starting with `prefix` (e.g. `crm:user:`; limiters
    /// of one quota on one prefix share their counts, which is the point across
    /// instances and a mistake within one).
    pub fn new(connection: ConnectionManager, prefix: &str, quota: GcraQuota) -> Self {
        let key_prefix = format!("{prefix}rate:{}/{}:", quota.limit(), quota.interval_us());
        Self { connection, quota, key_prefix }
    }

    /// The quota every key gets.
    pub fn quota(&self) -> GcraQuota {
        self.quota
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self, key: &str) -> Result<RateDecision> {
        let mut connection = self.connection.clone();
        let (allowed, remaining, reset_after_us): (u8, u32, u64) = DECIDE
            .key(format!("{}{key}", self.key_prefix))
            .arg(self.quota.interval_us())
            .arg(self.quota.limit())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| crm_error(&e))?;
        Ok(RateDecision {
            allowed: allowed == 1,
            limit: self.quota.limit(),
            remaining,
            reset_after: Duration::from_micros(reset_after_us),
        })
    }
}

/// Replaces KEYS[1]'s value if it is still ARGV[1] (`''`: absent) with ARGV[2] (`''`:
/// removed), kept ARGV[3] ms: 1 swapped, 0 not.
static SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stored = redis.call('GET', KEYS[1]) or ''
if stored ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
",
    )
});

/// Sign-in streaks in Redis (named `redis`), shared by every server instance: one key
/// per pair, `sign-in:<pair>` after the prefix, holding `failures:last µs`, expiring
/// when the rule would forget it. Cheap to clone.
#[derive(Clone)]
pub struct RedisStreaks {
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisStreaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreaks").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisStreaks {
    /// Streaks under keys starting with `prefix` (e.g. [`crate::DEFAULT_PREFIX`]).
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self { connection, prefix: prefix.into() }
    }

    fn key(&self, pair: &str) -> String {
        format!("{}sign-in:{pair}", self.prefix)
    }
}

/// A streak as stored; `''` for none. Microseconds: what the store keeps, exactly.
fn encode(streak: Option<Streak>) -> String {
    streak.map_or_else(String::new, |s| format!("{}:{}", s.failures, s.last.timestamp_micros()))
}

fn decode(stored: &str) -> Result<Streak> {
    let parsed = stored.split_once(':').and_then(|(failures, micros)| {
        Some(Streak { failures: failures.parse().ok()?, last: DateTime::from_timestamp_micros(micros.parse().ok()?)? })
    });
    parsed.ok_or_else(|| CrmError::Internal(format!("redis: a sign-in streak that does not decode: {stored:?}")))
}

#[async_trait]
impl StreakStore for RedisStreaks {
    fn name(&self) -> &str {
        "redis"
    }

    async fn get(&self, pair: &str) -> Result<Option<Streak>> {
        let mut connection = self.connection.clone();
        let stored: Option<String> = connection.get(self.key(pair)).await.map_err(|e| crm_error(&e))?;
        stored.as_deref().map(decode).transpose()
    }

    async fn swap(&self, pair: &str, current: Option<Streak>, new: Option<Streak>, keep: Duration) -> Result<bool> {
        let mut connection = self.connection.clone();
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1);
        let swapped: u8 = SWAP
            .key(self.key(pair))
            .arg(encode(current))
            .arg(encode(new))
            .arg(keep_ms)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| crm_error(&e))?;
        Ok(swapped == 1)
    }
}
