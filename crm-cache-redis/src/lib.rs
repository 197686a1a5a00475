//! Redis for crm-core: sessions shared by every server instance ([`RedisSessionStore`]),
//! rate limits counted across instances ([`RedisRateLimiter`]), leases for work one
//! instance does at a time ([`RedisLeases`]), a read-through record cache in front of
//! any storage ([`CachedStorage`]) and a job queue on Redis Streams ([`RedisJobQueue`]).
//!
//! Everything here assumes one standalone Redis server (or a primary with replicas):
//! the Lua scripts build some of their keys from arguments, which Redis Cluster does not
//! allow. Every key starts with a caller-chosen prefix (`crm:` by default) and carries
//! its tenant, so several CRMs or test runs can share one server.
//!
//! Connections come from [`connect`]: one multiplexed `ConnectionManager`, cloned by
//! every user. A connection belongs to the tokio runtime that made it.

mod cache;
mod jobs;
mod leases;
mod rate_limits;
mod sessions;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

pub use cache::{CacheOptions, CacheStats, CachedStorage};
pub use jobs::RedisJobQueue;
pub use leases::RedisLeases;
pub use rate_limits::{RedisRateLimiter, RedisStreaks};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
pub use sessions::{DEFAULT_SESSION_RETENTION, RedisSessionStore};

/// The key prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "crm:";

/// A reconnecting, multiplexed connection to the Redis server at `url`
/// (`redis://…`, `rediss://…` or `redis+unix:///path`), made on the current tokio
/// runtime. Commands time out after a second and a lost server is retried once per
/// command, so callers that can do without Redis (the cache) are not held up long.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_with_config(client, config).await
}

/// A Redis failure in the CRM's terms: a lost or slow server is `Unavailable` (the call
/// may succeed later), anything else internal. An unavailable server is named by its
/// error kind only, never by its URL.
fn crm_error(e: &redis::RedisError) -> crm_core::CrmError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        crm_core::CrmError::Unavailable(format!("redis: {:?}", e.kind()))
    } else {
        crm_core::CrmError::Internal(format!("redis: {e}"))
    }
}
