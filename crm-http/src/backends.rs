//! THE choice of where the server's shared state lives: in this process, or on Redis
//! with `--redis` so that several instances share it.
//!
//! With `--redis`, sessions ([`RedisSessionStore`]), rate limits ([`RedisRateLimiter`],
//! and the sign-in back-off's streaks, [`RedisStreaks`]), the workers' leases
//! ([`RedisLeases`]), a read-through cache around the storage ([`CachedStorage`]) and the
//! job queue ([`RedisJobQueue`]) use Redis; without it, sessions, leases and jobs live in
//! the CRM's storage and limits in process, as on one server.
//!
//! Readiness: the cache can do without Redis (it reads through to the storage), but
//! sessions and rate limits cannot, so a server on Redis is not ready while Redis does
//! not answer.
//!
//! The URL's password never leaves [`RedisUrl`]: its `Debug` and `Display` mask it, and
//! so do the errors that name the server.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use crm_cache_redis::{
    CacheOptions, CachedStorage, DEFAULT_PREFIX, RedisJobQueue, RedisLeases, RedisRateLimiter, RedisSessionStore,
    RedisStreaks,
};
use crm_core::{
    Clock, SystemClock,
    jobs::{JobQueue, StorageJobQueue},
    leases::{Leases, StorageLeases},
    rate_limit::RateLimiter,
    session_store::SessionStore,
    storage::Storage,
};
use redis::aio::ConnectionManager;

use crate::{config::Config, limits::Limits};

/// A Redis URL (`redis://[user:password@]host[:port][/db]`, `rediss://…`,
/// `redis+unix:///path[?pass=…]`) that shows itself without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

/// A `--redis` value that is no Redis URL.
#[derive(Debug, thiserror::Error)]
#[error("a Redis URL starts with redis://, rediss://, redis+unix:// or unix://")]
pub struct NotARedisUrl;

impl FromStr for RedisUrl {
    type Err = NotARedisUrl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if schemes.iter().any(|s| raw.starts_with(s)) { Ok(Self(raw.to_owned())) } else { Err(NotARedisUrl) }
    }
}

impl RedisUrl {
    /// The URL with its password, for connecting only.
    fn expose(&self) -> &str {
        &self.0
    }

    /// The password, wherever the URL carries it (user info or `pass`/`password`).
    fn password(&self) -> Option<&str> {
        let (_, rest) = self.0.split_once("://")?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let in_user_info = authority.rsplit_once('@').and_then(|(info, _)| info.split_once(':')).map(|(_, p)| p);
        let in_query = rest.split_once('?').and_then(|(_, query)| {
            query.split('&').find_map(|pair| pair.strip_prefix("pass=").or_else(|| pair.strip_prefix("password=")))
        });
        in_user_info.or(in_query).filter(|p| !p.is_empty())
    }

    /// `text` with the password masked (errors of the driver may quote the URL).
    pub fn mask(&self, text: &str) -> String {
        match self.password() {
            Some(password) => text.replace(password, "***"),
            None => text.to_owned(),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mask(&self.0))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// Redis could not be reached at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {reason}")]
pub struct RedisUnavailable {
    /// The server, password masked.
    pub url: String,
    /// The driver's error, password masked.
    pub reason: String,
}

/// A Redis connection readiness asks, with how long it waits.
#[derive(Clone)]
pub struct RedisProbe(ConnectionManager);

impl fmt::Debug for RedisProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisProbe")
    }
}

impl RedisProbe {
    /// Whether Redis answers a `PING` within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let mut connection = self.0.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(timeout, ping.query_async::<String>(&mut connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("redis: {:?}", e.kind())),
            Err(_) => Err("redis: no answer in time".into()),
        }
    }
}

/// Where the server keeps what its instances share.
pub struct Backends {
    /// The storage, behind the Redis cache with `--redis`.
    pub storage: Arc<dyn Storage>,
    /// Sessions on Redis; `None`: in the CRM's storage (the CRM's default).
    pub sessions: Option<Arc<dyn SessionStore>>,
    /// The rate limits.
    pub limits: Limits,
    /// The job queue: on Redis Streams with `--redis`, else in the CRM's storage.
    pub jobs: Arc<dyn JobQueue>,
    /// The workers' leases: on Redis, or records of the storage.
    pub leases: Arc<dyn Leases>,
    /// What readiness asks besides the storage.
    pub redis: Option<RedisProbe>,
}

impl Backends {
    /// In process without `--redis`; on Redis with it, connecting first.
    pub async fn open(config: &Config, storage: Arc<dyn Storage>) -> Result<Self, RedisUnavailable> {
        let policy = config.sign_in_policy();
        let (per_ip, per_user) = (config.rate_limit_ip, config.rate_limit_user);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let Some(url) = &config.redis else {
            let limits = Limits::with_sign_in(per_ip, per_user, policy);
            let jobs = Arc::new(StorageJobQueue::new(storage.clone(), clock.clone()));
            let leases = Arc::new(StorageLeases::new(storage.clone(), clock));
            return Ok(Self { storage, sessions: None, limits, jobs, leases, redis: None });
        };
        let connection = crm_cache_redis::connect(url.expose())
            .await
            .map_err(|e| RedisUnavailable { url: url.to_string(), reason: url.mask(&e.to_string()) })?;
        let (shared, streaks) = (connection.clone(), RedisStreaks::new(connection.clone(), DEFAULT_PREFIX));
        let limiter =
            move |quota| Arc::new(RedisRateLimiter::new(shared.clone(), DEFAULT_PREFIX, quota)) as Arc<dyn RateLimiter>;
        Ok(Self {
            storage: Arc::new(CachedStorage::shared(storage, connection.clone(), CacheOptions::default())),
            sessions: Some(Arc::new(RedisSessionStore::new(connection.clone(), DEFAULT_PREFIX))),
            limits: Limits::built_with(per_ip, per_user, policy, &limiter, Arc::new(streaks)),
            jobs: Arc::new(RedisJobQueue::new(connection.clone(), DEFAULT_PREFIX, clock)),
            leases: Arc::new(RedisLeases::new(connection.clone(), DEFAULT_PREFIX)),
            redis: Some(RedisProbe(connection)),
        })
    }
}
