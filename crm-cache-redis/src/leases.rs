//! [`RedisLeases`]: the core's lease contract on Redis, for servers that share a Redis.
//!
//! One key per lease, `lease:<name>` after the prefix, holds `<epoch>:<holder>` and
//! expires with the lease (`PX`), so a dead holder's lease lapses on Redis's clock
//! without anyone deleting it. Epochs come from `INCR` on `lease-epoch:<name>`, a key
//! that never expires, so they grow across grants, releases and expiries. Each
//! decision is one Lua script (a `SET NX PX` for a free lease, a compare before a
//! renewal or release), so racing acquirers on any instance are serialised by Redis.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use crm_core::{
    CrmError, Result,
    leases::{Grant, Leases},
};
use redis::{Script, aio::ConnectionManager};

use crate::crm_error;

/// KEYS[1] the lease, KEYS[2] its epoch counter; ARGV[1] the holder, ARGV[2] the TTL
/// in ms. Returns the epoch granted, or 0 while another holder has the lease.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stored = redis.call('GET', KEYS[1])
if stored then
  local sep = string.find(stored, ':', 1, true)
  if string.sub(stored, sep + 1) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(stored, 1, sep - 1))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return epoch
",
    )
});

/// KEYS[1] the lease; ARGV[1] the holder. Deletes the lease if the holder has it: 1, else 0.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local sep = string.find(stored, ':', 1, true)
if string.sub(stored, sep + 1) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// KEYS[1] the lease. Returns `{value, ms left}`, or `{'', 0}` when nobody holds it.
static HOLDER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stored = redis.call('GET', KEYS[1])
if not stored then return {'', 0} end
return {stored, redis.call('PTTL', KEYS[1])}
",
    )
});

/// Leases on Redis (named `redis`), timed by Redis's clock. Cheap to clone.
#[derive(Clone)]
pub struct RedisLeases {
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLeases").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisLeases {
    /// Leases under keys starting with `prefix` (e.g. [`crate::DEFAULT_PREFIX`]).
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self { connection, prefix: prefix.into() }
    }

    fn key(&self, lease: &str) -> String {
        format!("{}lease:{lease}", self.prefix)
    }
}

/// A TTL as whole milliseconds, at least one (Redis refuses `PX 0`).
fn ttl_ms(ttl: Duration) -> i64 {
    ttl.num_milliseconds().max(1)
}

#[async_trait]
impl Leases for RedisLeases {
    fn name(&self) -> &str {
        "redis"
    }

    async fn acquire(&self, lease: &str, holder: &str, ttl: Duration) -> Result<Option<Grant>> {
        let mut connection = self.connection.clone();
        let epoch: u64 = ACQUIRE
            .key(self.key(lease))
            .key(format!("{}lease-epoch:{lease}", self.prefix))
            .arg(holder)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| crm_error(&e))?;
        let expires_at = Utc::now() + Duration::milliseconds(ttl_ms(ttl));
        Ok((epoch > 0).then(|| Grant { holder: holder.to_owned(), epoch, expires_at }))
    }

    async fn release(&self, lease: &str, holder: &str) -> Result<bool> {
        let mut connection = self.connection.clone();
        let released: u8 =
            RELEASE.key(self.key(lease)).arg(holder).invoke_async(&mut connection).await.map_err(|e| crm_error(&e))?;
        Ok(released == 1)
    }

    async fn holder(&self, lease: &str) -> Result<Option<Grant>> {
        let mut connection = self.connection.clone();
        let (stored, left_ms): (String, i64) =
            HOLDER.key(self.key(lease)).invoke_async(&mut connection).await.map_err(|e| crm_error(&e))?;
        if stored.is_empty() {
            return Ok(None);
        }
        let (epoch, holder) =
            stored.split_once(':').ok_or_else(|| CrmError::Internal(format!("redis: malformed lease {stored:?}")))?;
        let epoch = epoch.parse().map_err(|_| CrmError::Internal(format!("redis: malformed lease {stored:?}")))?;
        Ok(Some(Grant { holder: holder.to_owned(), epoch, expires_at: Utc::now() + Duration::milliseconds(left_ms) }))
    }
}
