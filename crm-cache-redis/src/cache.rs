//! [`CachedStorage`]: a read-through Redis cache of records in front of any storage.
//!
//! `get` and `get_many` answer from Redis what it holds and read the rest from the
//! inner storage, then offer what they read to the cache; `commit` goes to the inner
//! storage and then invalidates every record the batch touched. Listings, aggregates,
//! counters and the outbox pass straight through: only point reads are cached.
//!
//! Keys (after the prefix): `cache:gen` holds the cache's generation, a random token
//! that is part of every other key; `cache:<gen>:r:<tenant>:<kind>:<id>` holds a record
//! as `<version>|<json>`, the JSON naming its tenant, kind and id again;
//! `cache:<gen>:t:<tenant>:<kind>:<id>` is a tombstone holding the lowest version
//! the cache may still take for that record.
//!
//! The one race that matters: a reader reads version 1 from the storage, a commit
//! writes version 2 and invalidates, and only then does the reader offer version 1 to
//! the cache. So:
//! 1. invalidation deletes the entry and leaves a tombstone with the committed version
//!    (one Lua script);
//! 2. an offer names the generation seen before the storage was read, and is taken
//!    (one Lua script) only if the generation is still that one, no tombstone is
//!    newer than the offered version, and no entry at least as new is there;
//! 3. tombstones live `tombstone_ttl`, and an offer made later than half of that after
//!    its read is dropped by the reader, so no tombstone expires under a pending offer.
//!
//! When Redis fails, the cache is out of use: calls go to the inner storage alone, the
//! outage is logged once and counted ([`CacheStats::outages`]). Commits made meanwhile
//! invalidated nothing, so before it is used again the cache is flushed: the first
//! call after `retry_interval` that reaches Redis writes a new generation, which hides
//! every earlier entry (they expire by their TTL; nothing is deleted in bulk). A
//! generation that vanished (Redis restarted empty) is replaced by a new one too, and
//! an offer whose generation changed is refused, so a value read before an outage is
//! never cached after it. What another instance cached stays visible to it until its
//! `entry_ttl` if only this instance lost Redis: that bounds the staleness of a
//! partition.
//!
//! Every entry read back is checked against the tenant, kind and id asked for; one
//! that disagrees (whatever wrote it) is not served and counted
//! ([`CacheStats::rejected`]).

use std::{
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, Document, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError,
        StoredRecord, StreamedEvent, WriteBatch, WriteOp,
    },
};
use redis::{Script, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Looks records up: returns the generation (making one if there is none) and, per
/// suffix, the entry or false.
static LOOKUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local gen = redis.call('GET', KEYS[1])
if not gen then redis.call('SET', KEYS[1], ARGV[1]); gen = ARGV[1] end
local entries = {}
for i = 3, #ARGV do
  entries[#entries + 1] = redis.call('GET', ARGV[2] .. gen .. ':r:' .. ARGV[i]) or false
end
return {gen, entries}
",
    )
});

/// Takes the offered entries (suffix, version, value triples) read under generation
/// ARGV[1], each unless a tombstone or an entry at least as new says otherwise.
static OFFER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local base = ARGV[2] .. ARGV[1]
local taken = 0
for i = 4, #ARGV, 3 do
  local version = tonumber(ARGV[i + 1])
  local floor = tonumber(redis.call('GET', base .. ':t:' .. ARGV[i]) or '0')
  local current = redis.call('GET', base .. ':r:' .. ARGV[i])
  local cached = current and tonumber(string.match(current, '^(%d+)|')) or 0
  if version >= floor and version > cached then
    redis.call('SET', base .. ':r:' .. ARGV[i], ARGV[i + 2], 'PX', ARGV[3])
    taken = taken + 1
  end
end
return taken
",
    )
});

/// Invalidates (suffix, committed version) pairs: deletes the entries and raises their
/// tombstones.
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local gen = redis.call('GET', KEYS[1])
if not gen then redis.call('SET', KEYS[1], ARGV[1]); gen = ARGV[1] end
local base = ARGV[2] .. gen
for i = 4, #ARGV, 2 do
  redis.call('DEL', base .. ':r:' .. ARGV[i])
  local tombstone = base .. ':t:' .. ARGV[i]
  local floor = tonumber(redis.call('GET', tombstone) or '0')
  if tonumber(ARGV[i + 1]) > floor then
    redis.call('SET', tombstone, ARGV[i + 1], 'PX', ARGV[3])
  else
    redis.call('PEXPIRE', tombstone, ARGV[3])
  end
end
return 1
",
    )
});

/// How a [`CachedStorage`] uses Redis.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// What every key starts with (default [`crate::DEFAULT_PREFIX`]); instances that
    /// share a storage must share the prefix.
    pub prefix: String,
    /// How long an entry lives: the longest a value can be served stale when an
    /// instance that wrote it could not invalidate (it lost Redis, others did not).
    pub entry_ttl: Duration,
    /// How long a tombstone refuses older versions; a reader drops its offer once half
    /// of this has passed since it read.
    pub tombstone_ttl: Duration,
    /// While Redis is out, how often a call tries it again (and flushes the cache).
    pub retry_interval: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            prefix: crate::DEFAULT_PREFIX.to_owned(),
            entry_ttl: Duration::from_secs(600),
            tombstone_ttl: Duration::from_secs(120),
            retry_interval: Duration::from_secs(1),
        }
    }
}

impl CacheOptions {
    /// The defaults with another key prefix.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), ..Self::default() }
    }
}

/// What the cache did since it was made (counters only grow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Records served from Redis.
    pub hits: u64,
    /// Records asked for that Redis did not have (read from the storage).
    pub misses: u64,
    /// Entries found under a record's key that named another tenant, kind or id, or
    /// did not decode: never served.
    pub rejected: u64,
    /// Times Redis went from working to failing.
    pub outages: u64,
    /// Redis calls that failed.
    pub redis_errors: u64,
    /// New generations written after an outage (each hides every earlier entry).
    pub flushes: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    outages: AtomicU64,
    redis_errors: AtomicU64,
    flushes: AtomicU64,
}

/// Whether the cache may be used: `Down` until a new generation has been written.
#[derive(Clone, Copy)]
enum Health {
    Up,
    /// `tried`: when a call last tried Redis (None: try at the next call).
    Down {
        tried: Option<Instant>,
    },
}

/// A record as the cache keeps it: with the tenant, kind and id it belongs to, so a
/// read can check it answers the question asked.
#[derive(Serialize, Deserialize)]
struct Entry {
    tenant: Uuid,
    kind: EntityKind,
    id: Uuid,
    version: u64,
    data: Document,
}

/// A [`Storage`] whose point reads go through a Redis cache. See the module docs for
/// the keys, the invalidation rule and what happens when Redis fails.
pub struct CachedStorage<S: ?Sized> {
    inner: Arc<S>,
    redis: ConnectionManager,
    options: CacheOptions,
    name: String,
    health: Mutex<Health>,
    counters: Counters,
}

impl<S: Storage + ?Sized> std::fmt::Debug for CachedStorage<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStorage").field("inner", &self.inner.name()).field("options", &self.options).finish()
    }
}

/// What a lookup found: the generation it saw, the records it may serve, the ids left
/// for the storage, and when it started (for the offer's deadline).
struct Lookup {
    generation: String,
    hits: Vec<StoredRecord>,
    missing: Vec<Uuid>,
    started: Instant,
}

impl<S: Storage> CachedStorage<S> {
    /// `inner` behind a cache in the Redis server `redis` is connected to. Its name is
    /// `redis_` and the inner storage's (`redis_postgres`).
    pub fn new(inner: S, redis: ConnectionManager, options: CacheOptions) -> Self {
        CachedStorage::shared(Arc::new(inner), redis, options)
    }
}

impl<S: Storage + ?Sized> CachedStorage<S> {
    /// [`CachedStorage::new`] around a storage already shared, such as the
    /// `Arc<dyn Storage>` a server holds.
    pub fn shared(inner: Arc<S>, redis: ConnectionManager, options: CacheOptions) -> Self {
        let name = format!("redis_{}", inner.name());
        Self { inner, redis, options, name, health: Mutex::new(Health::Up), counters: Counters::default() }
    }

    /// The storage behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The counters so far (for metrics).
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            rejected: get(&c.rejected),
            outages: get(&c.outages),
            redis_errors: get(&c.redis_errors),
            flushes: get(&c.flushes),
        }
    }

    /// Whether the cache is in use now (false from a Redis failure until Redis is back
    /// and the cache flushed).
    pub fn is_up(&self) -> bool {
        matches!(*self.health.lock().unwrap_or_else(PoisonError::into_inner), Health::Up)
    }

    fn generation_key(&self) -> String {
        format!("{}cache:gen", self.options.prefix)
    }

    fn base(&self) -> String {
        format!("{}cache:", self.options.prefix)
    }

    fn suffix(tenant: TenantId, kind: EntityKind, id: Uuid) -> String {
        format!("{}:{}:{id}", tenant.0, kind.as_str())
    }

    fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Records a failed Redis call; the first after a working one starts an outage.
    fn failed(&self, during: &str, e: &redis::RedisError) {
        self.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if let Health::Up = *health {
            self.counters.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                during,
                error = %crate::crm_error(e),
                "redis cache unavailable: reading and writing through to the storage until it is back"
            );
        }
        // A failed invalidation may leave a stale entry that others serve: try to
        // flush at the very next call rather than after the retry interval.
        *health = Health::Down { tried: None };
    }

    /// Whether the cache may be used now; after an outage, the first call allowed to
    /// try writes a new generation (the flush) and puts the cache back in use.
    async fn usable(&self) -> bool {
        {
            let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            match *health {
                Health::Up => return true,
                Health::Down { tried: Some(at) } if at.elapsed() < self.options.retry_interval => return false,
                Health::Down { .. } => *health = Health::Down { tried: Some(Instant::now()) },
            }
        }
        let flushed: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.generation_key())
            .arg(Uuid::new_v4().simple().to_string())
            .query_async(&mut self.connection())
            .await;
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match flushed {
            Ok(()) => {
                self.counters.flushes.fetch_add(1, Ordering::Relaxed);
                tracing::info!("redis cache back: flushed (new generation) and in use again");
                *health = Health::Up;
                true
            }
            Err(e) => {
                self.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                *health = Health::Down { tried: Some(Instant::now()) };
                tracing::debug!(error = %crate::crm_error(&e), "redis cache still unavailable");
                false
            }
        }
    }

    /// Looks `ids` up in the cache; `None` when the cache is out of use or fails.
    async fn lookup(&self, tenant: TenantId, kind: EntityKind, ids: &[Uuid]) -> Option<Lookup> {
        if !self.usable().await {
            return None;
        }
        let started = Instant::now();
        let mut invocation = LOOKUP.key(self.generation_key());
        invocation.arg(Uuid::new_v4().simple().to_string()).arg(self.base());
        for id in ids {
            invocation.arg(Self::suffix(tenant, kind, *id));
        }
        let found: (String, Vec<Option<String>>) = match invocation.invoke_async(&mut self.connection()).await {
            Ok(found) => found,
            Err(e) => {
                self.failed("lookup", &e);
                return None;
            }
        };
        let (generation, entries) = found;
        let mut lookup = Lookup { generation, hits: Vec::new(), missing: Vec::new(), started };
        for (id, entry) in ids.iter().zip(entries) {
            match entry.map(|e| self.servable(&e, tenant, kind, *id)) {
                Some(Some(record)) => lookup.hits.push(record),
                _ => lookup.missing.push(*id),
            }
        }
        self.counters.hits.fetch_add(lookup.hits.len() as u64, Ordering::Relaxed);
        self.counters.misses.fetch_add(lookup.missing.len() as u64, Ordering::Relaxed);
        Some(lookup)
    }

    /// The record in a cache entry, if it is the one asked for.
    fn servable(&self, raw: &str, tenant: TenantId, kind: EntityKind, id: Uuid) -> Option<StoredRecord> {
        let entry = raw.split_once('|').and_then(|(_, json)| serde_json::from_str::<Entry>(json).ok());
        match entry {
            Some(e) if e.tenant == tenant.0 && e.kind == kind && e.id == id => {
                Some(StoredRecord { kind: e.kind, id: e.id, version: e.version, data: e.data })
            }
            _ => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%kind, %id, "a redis cache entry does not match the record asked for: not served");
                None
            }
        }
    }

    /// Offers records read from the storage to the cache (see the module docs).
    async fn offer(&self, tenant: TenantId, lookup: &Lookup, records: &[StoredRecord]) {
        if records.is_empty() || lookup.started.elapsed() > self.options.tombstone_ttl / 2 {
            return;
        }
        let mut invocation = OFFER.key(self.generation_key());
        invocation.arg(&lookup.generation).arg(self.base()).arg(millis(self.options.entry_ttl));
        for r in records {
            let entry = Entry { tenant: tenant.0, kind: r.kind, id: r.id, version: r.version, data: r.data.clone() };
            // A record whose JSON does not serialize again is simply not cached.
            let Ok(json) = serde_json::to_string(&entry) else { continue };
            invocation.arg(Self::suffix(tenant, r.kind, r.id)).arg(r.version).arg(format!("{}|{json}", r.version));
        }
        if let Err(e) = invocation.invoke_async::<u64>(&mut self.connection()).await {
            self.failed("offer", &e);
        }
    }

    /// Invalidates what a batch touched, with the versions it committed.
    async fn invalidate(&self, tenant: TenantId, touched: &[(EntityKind, Uuid, u64)]) {
        if touched.is_empty() || !self.usable().await {
            return;
        }
        let mut invocation = INVALIDATE.key(self.generation_key());
        invocation.arg(Uuid::new_v4().simple().to_string()).arg(self.base()).arg(millis(self.options.tombstone_ttl));
        for (kind, id, version) in touched {
            invocation.arg(Self::suffix(tenant, *kind, *id)).arg(*version);
        }
        if let Err(e) = invocation.invoke_async::<u64>(&mut self.connection()).await {
            self.failed("invalidate", &e);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Each record a batch changes, with the lowest version the cache may hold after it.
fn touched(batch: &WriteBatch) -> Vec<(EntityKind, Uuid, u64)> {
    batch
        .ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Insert(r) | WriteOp::Update { record: r, .. } => Some((r.kind, r.id, r.version)),
            WriteOp::Delete { kind, id, expected_version } => Some((*kind, *id, expected_version + 1)),
            WriteOp::Check { .. } => None,
        })
        .collect()
}

/// Whether a commit may have written: refusals write nothing by contract; success and
/// failures of the backend itself (a lost connection mid-commit) may have.
fn may_have_written(result: &Result<(), StorageError>) -> bool {
    matches!(result, Ok(()) | Err(StorageError::Unavailable(_) | StorageError::Backend { .. }))
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for CachedStorage<S> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        let Some(lookup) = self.lookup(tenant, kind, &[id]).await else {
            return self.inner.get(tenant, kind, id).await;
        };
        if let Some(hit) = lookup.hits.first() {
            return Ok(Some(hit.clone()));
        }
        let read = self.inner.get(tenant, kind, id).await?;
        self.offer(tenant, &lookup, read.as_slice()).await;
        Ok(read)
    }

    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(mut lookup) = self.lookup(tenant, kind, ids).await else {
            return self.inner.get_many(tenant, kind, ids).await;
        };
        if lookup.missing.is_empty() {
            return Ok(lookup.hits);
        }
        let read = self.inner.get_many(tenant, kind, &lookup.missing).await?;
        self.offer(tenant, &lookup, &read).await;
        lookup.hits.extend(read);
        Ok(lookup.hits)
    }

    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        self.inner.list(tenant, kind, query).await
    }

    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.inner.aggregate(tenant, kind, query).await
    }

    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        self.inner.counter(tenant, key).await
    }

    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        let touched = touched(&batch);
        let result = self.inner.commit(tenant, batch).await;
        if may_have_written(&result) {
            self.invalidate(tenant, &touched).await;
        }
        result
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        self.inner.outbox_pending(limit).await
    }

    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        self.inner.outbox_ack(ids).await
    }
    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        self.inner.outbox_stream(tenant, after, limit).await
    }
    async fn outbox_position(&self) -> Result<u64, StorageError> {
        self.inner.outbox_position().await
    }
    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        self.inner.outbox_prune(acked_before, limit).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }
}
