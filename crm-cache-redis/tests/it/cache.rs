//! What the cache must hold besides the conformance suite: instances sharing one
//! storage and one Redis see each other's writes at once, a value read before a commit
//! is never cached after it, another tenant's entry is never served, and the storage
//! keeps working without Redis and serves nothing stale once Redis is back.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_cache_redis::{CacheOptions, CachedStorage, testing};
use crm_core::{
    Id, TenantId,
    conformance::World,
    customers::companies::{Company, CompanyPatch, NewCompany},
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        StreamedEvent, WriteBatch, memory::MemoryStorage,
    },
};
use crm_storage_postgres::{PostgresStorage, testing as pg};
use tokio::sync::oneshot;
use uuid::Uuid;

async fn company(w: &World, name: &str) -> Company {
    w.crm.companies().create(&w.admin, NewCompany { name: name.into(), ..NewCompany::default() }).await.unwrap()
}

async fn rename(w: &World, c: &Company, name: &str) -> Company {
    let patch = CompanyPatch { version: Some(c.meta.version), name: Some(name.into()), ..CompanyPatch::default() };
    w.crm.companies().update(&w.admin, Id::from(c.meta.id), patch).await.unwrap()
}

/// The name stored in a record read back, with its version.
fn name_and_version(r: &StoredRecord) -> (String, u64) {
    (r.data.to_value()["name"].as_str().unwrap().to_owned(), r.version)
}

async fn read(s: &dyn Storage, tenant: TenantId, id: Uuid) -> Option<(String, u64)> {
    s.get(tenant, EntityKind::Company, id).await.unwrap().as_ref().map(name_and_version)
}

/// Two server instances, each with its own connections to one PostgreSQL database and
/// one Redis: a write through one is read through the other at once, though the other
/// had the record cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_read_each_others_writes_at_once() {
    let target = tokio::task::spawn_blocking(pg::shared_server).await.unwrap();
    let url = pg::create_database(target).await.unwrap();
    let prefix = testing::unique_prefix();
    let instance = async || {
        let storage = PostgresStorage::connect(&url).await.unwrap();
        Arc::new(CachedStorage::new(storage, testing::connection().await, CacheOptions::with_prefix(prefix.clone())))
    };
    let (a, b) = (instance().await, instance().await);
    let w = World::new(a.clone()).await;
    let tenant = w.admin.tenant_id();
    let mut c = company(&w, "Before").await;
    for round in 1..=5 {
        // Both instances have the current version cached…
        assert_eq!(read(&*b, tenant, c.meta.id).await, Some((c.name.clone(), c.meta.version)));
        assert_eq!(read(&*a, tenant, c.meta.id).await, Some((c.name.clone(), c.meta.version)));
        let hits = b.stats().hits;
        assert_eq!(read(&*b, tenant, c.meta.id).await, Some((c.name.clone(), c.meta.version)));
        assert_eq!(b.stats().hits, hits + 1, "round {round}: the second read through b is a cache hit");
        // …and a write through a is what b reads next.
        c = rename(&w, &c, &format!("After {round}")).await;
        assert_eq!(read(&*b, tenant, c.meta.id).await, Some((format!("After {round}"), c.meta.version)));
        let many = b.get_many(tenant, EntityKind::Company, &[c.meta.id]).await.unwrap();
        assert_eq!(many.iter().map(name_and_version).collect::<Vec<_>>(), vec![(c.name.clone(), c.meta.version)]);
    }
    w.crm.companies().delete(&w.admin, Id::from(c.meta.id), Some(c.meta.version)).await.unwrap();
    assert_eq!(read(&*b, tenant, c.meta.id).await, None, "a record deleted through a is gone through b");
}

/// A storage whose next `get` (once armed) reads, reports it read, and then waits to
/// be released before returning: the reader that read before a commit and offers
/// the cache its value after it.
struct SlowRead {
    inner: MemoryStorage,
    gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

#[async_trait]
impl Storage for SlowRead {
    fn name(&self) -> &str {
        "slow_read"
    }
    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        let read = self.inner.get(tenant, kind, id).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some((read_done, release)) = gate {
            read_done.send(()).unwrap();
            release.await.unwrap();
        }
        read
    }
    async fn get_many(&self, t: TenantId, k: EntityKind, ids: &[Uuid]) -> Result<Vec<StoredRecord>, StorageError> {
        self.inner.get_many(t, k, ids).await
    }
    async fn list(&self, t: TenantId, k: EntityKind, q: &ListQuery) -> Result<Page<StoredRecord>, StorageError> {
        self.inner.list(t, k, q).await
    }
    async fn aggregate(
        &self,
        t: TenantId,
        k: EntityKind,
        q: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.inner.aggregate(t, k, q).await
    }
    async fn counter(&self, t: TenantId, key: &str) -> Result<u64, StorageError> {
        self.inner.counter(t, key).await
    }
    async fn commit(&self, t: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        self.inner.commit(t, batch).await
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

/// A reader reads version 1 from the storage, a commit writes version 2 and
/// invalidates, then the reader offers version 1 to the cache: the cache must refuse
/// it, so every later read sees version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_read_before_a_commit_is_never_cached_after_it() {
    let slow = SlowRead { inner: MemoryStorage::new(), gate: Mutex::new(None) };
    let options = CacheOptions::with_prefix(testing::unique_prefix());
    let cache = Arc::new(CachedStorage::new(slow, testing::connection().await, options));
    let w = World::new(cache.clone()).await;
    let tenant = w.admin.tenant_id();
    let c = company(&w, "Version one").await;

    let (read_done_tx, read_done) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    *cache.inner().gate.lock().unwrap() = Some((read_done_tx, release_rx));
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { read(&*cache, tenant, c.meta.id).await }
    });
    read_done.await.unwrap();
    let v2 = rename(&w, &c, "Version two").await;
    release.send(()).unwrap();
    assert_eq!(reader.await.unwrap(), Some(("Version one".into(), 1)), "the slow reader read before the commit");

    for _ in 0..3 {
        assert_eq!(read(&*cache, tenant, c.meta.id).await, Some(("Version two".into(), v2.meta.version)));
    }
    assert!(cache.stats().hits >= 2, "version 2 is cached: {:?}", cache.stats());
}

/// An entry of another tenant found under a record's key (whatever put it there) is
/// never served: the tenant's own record, or nothing, is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_entry_is_never_served_whatever_the_keys() {
    let prefix = testing::unique_prefix();
    let mut raw = testing::connection().await;
    let cache = Arc::new(CachedStorage::new(
        MemoryStorage::new(),
        testing::connection().await,
        CacheOptions::with_prefix(prefix.clone()),
    ));
    let (ours, theirs) = (World::new(cache.clone()).await, World::new(cache.clone()).await);
    let (tenant, other) = (ours.admin.tenant_id(), theirs.admin.tenant_id());
    let mine = company(&ours, "Ours").await;
    let foreign = company(&theirs, "Theirs").await;
    assert_eq!(read(&*cache, other, foreign.meta.id).await, Some(("Theirs".into(), 1)));

    // Copy the other tenant's cached entry under our tenant's keys: under its own id
    // (which our tenant does not have) and under the id of our record.
    let generation: String = redis::cmd("GET").arg(format!("{prefix}cache:gen")).query_async(&mut raw).await.unwrap();
    let key = |t: TenantId, id: Uuid| format!("{prefix}cache:{generation}:r:{}:company:{id}", t.0);
    let entry: String = redis::cmd("GET").arg(key(other, foreign.meta.id)).query_async(&mut raw).await.unwrap();
    assert!(entry.contains("Theirs"), "the other tenant's record is cached: {entry}");
    for id in [foreign.meta.id, mine.meta.id] {
        let _: () = redis::cmd("SET").arg(key(tenant, id)).arg(&entry).query_async(&mut raw).await.unwrap();
    }

    assert_eq!(read(&*cache, tenant, foreign.meta.id).await, None, "another tenant's record served by id");
    assert_eq!(read(&*cache, tenant, mine.meta.id).await, Some(("Ours".into(), 1)), "our record, not theirs");
    let many = cache.get_many(tenant, EntityKind::Company, &[foreign.meta.id, mine.meta.id]).await.unwrap();
    assert_eq!(many.iter().map(name_and_version).collect::<Vec<_>>(), vec![("Ours".into(), 1)]);
    assert!(cache.stats().rejected >= 2, "the mismatching entries were seen and refused: {:?}", cache.stats());
}

fn quick_retry(prefix: String) -> CacheOptions {
    CacheOptions { retry_interval: Duration::from_millis(50), ..CacheOptions::with_prefix(prefix) }
}

async fn own_server() -> Arc<testing::TestRedis> {
    Arc::new(tokio::task::spawn_blocking(testing::TestRedis::start).await.unwrap().unwrap())
}

/// Redis killed mid-test: reads and writes keep working on the storage, the outage is
/// counted once however many calls fail, and once Redis is back the cache is flushed
/// and used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_reads_and_writes_keep_working_then_the_cache_comes_back() {
    let server = own_server().await;
    let redis = crm_cache_redis::connect(&server.url()).await.unwrap();
    let cache = Arc::new(CachedStorage::new(MemoryStorage::new(), redis, quick_retry(testing::unique_prefix())));
    let w = World::new(cache.clone()).await;
    let tenant = w.admin.tenant_id();
    let mut c = company(&w, "Cached").await;
    read(&*cache, tenant, c.meta.id).await;
    assert_eq!(read(&*cache, tenant, c.meta.id).await, Some(("Cached".into(), 1)));
    assert!(cache.is_up() && cache.stats().hits >= 1);

    server.kill().unwrap();
    for round in 1..=5 {
        c = rename(&w, &c, &format!("Without Redis {round}")).await;
        assert_eq!(read(&*cache, tenant, c.meta.id).await, Some((c.name.clone(), c.meta.version)));
        company(&w, &format!("New without Redis {round}")).await;
    }
    let during = cache.stats();
    assert!(!cache.is_up(), "the cache is out of use while Redis is down");
    assert_eq!(during.outages, 1, "one outage, however many calls failed: {during:?}");
    assert!(during.redis_errors >= 1, "{during:?}");

    tokio::task::spawn_blocking({
        let server = server.clone();
        move || server.restart()
    })
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut back = false;
    for _ in 0..50 {
        assert_eq!(read(&*cache, tenant, c.meta.id).await, Some((c.name.clone(), c.meta.version)));
        if cache.is_up() && cache.stats().hits > during.hits {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the cache is in use again after Redis came back: {:?}", cache.stats());
    assert_eq!(cache.stats().outages, 1);
    assert!(cache.stats().flushes >= 1);
}

/// Redis frozen mid-test (a partition: it keeps what it holds): a write made meanwhile
/// could not invalidate the cached entry, so once Redis answers again the cache must
/// be flushed before it serves anything, and the old value is never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_no_stale_value_is_served() {
    let server = own_server().await;
    let redis = crm_cache_redis::connect(&server.url()).await.unwrap();
    let cache = Arc::new(CachedStorage::new(MemoryStorage::new(), redis, quick_retry(testing::unique_prefix())));
    let w = World::new(cache.clone()).await;
    let tenant = w.admin.tenant_id();
    let c = company(&w, "Stale").await;
    read(&*cache, tenant, c.meta.id).await;
    let hits = cache.stats().hits;
    assert_eq!(read(&*cache, tenant, c.meta.id).await, Some(("Stale".into(), 1)));
    assert_eq!(cache.stats().hits, hits + 1, "version 1 is cached");

    server.pause().unwrap();
    let fresh = rename(&w, &c, "Fresh").await;
    assert_eq!(read(&*cache, tenant, c.meta.id).await, Some(("Fresh".into(), fresh.meta.version)));
    assert!(!cache.is_up(), "the frozen server put the cache out of use: {:?}", cache.stats());
    server.resume().unwrap();

    for _ in 0..40 {
        assert_eq!(
            read(&*cache, tenant, c.meta.id).await,
            Some(("Fresh".into(), fresh.meta.version)),
            "a stale value was served after the outage: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(cache.is_up(), "the cache is back in use: {:?}", cache.stats());
    assert_eq!(cache.stats().outages, 1);
}

/// The cache wraps a storage a server already holds as `Arc<dyn Storage>`: writes
/// through it reach that storage, and reads through it see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wraps_a_shared_dyn_storage() {
    let shared: Arc<dyn Storage> = MemoryStorage::shared();
    let options = CacheOptions::with_prefix(testing::unique_prefix());
    let cache = Arc::new(CachedStorage::shared(shared.clone(), testing::connection().await, options));
    assert_eq!(cache.name(), "redis_memory");
    let w = World::new(cache.clone()).await;
    let c = company(&w, "Through the cache").await;
    let tenant = w.admin.tenant_id();
    assert_eq!(read(&*cache, tenant, c.meta.id).await, Some(("Through the cache".into(), 1)));
    assert_eq!(read(&*shared, tenant, c.meta.id).await, Some(("Through the cache".into(), 1)));
    let renamed = rename(&w, &c, "Renamed").await;
    assert_eq!(read(&*cache, tenant, c.meta.id).await, Some(("Renamed".into(), renamed.meta.version)));
}
