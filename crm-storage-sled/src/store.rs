//! [`SledStorage`]: the handle, how it opens, and the storage contract on it.
//!
//! Every sled call may block: a read that misses the page cache goes to the disk, a
//! listing may read every record of a kind, a commit waits for its tenant's lock
//! ([`crate::locks`]). On a runtime worker that would park the worker and every task
//! queued behind it, so each contract method hands its synchronous half (the
//! `*_blocking` functions of [`crate::shared`], [`crate::listing`], [`crate::commit`] and
//! [`crate::outbox`]) to tokio's blocking pool and awaits it. Point reads of a few keys
//! are the exception: a key's lookup takes no lock and at most one page read, less than
//! the hop to the pool costs, so they run on the calling task.
//!
//! A caller that drops the future does not stop that half: a commit still runs to the
//! end of its sled transaction (applied whole or not at all) and is simply not
//! acknowledged. Waiting for the disk takes no thread: the group-commit thread
//! ([`crate::flusher`]) answers through a oneshot that the commit awaits, after its
//! transaction is applied and its lock released.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        StreamedEvent, WriteBatch,
    },
};
use tokio::{runtime::Handle, sync::OwnedSemaphorePermit, task::JoinError};
use uuid::Uuid;

use crate::{
    commit::commit_blocking,
    entry::backend,
    listing::{aggregate_blocking, list_blocking, may_scan},
    open::{self, Durability, OpenError, SledOptions},
    outbox,
    shared::Shared,
};

/// Point reads of up to this many keys run on the calling task (see `get`); more go to
/// the blocking pool.
const INLINE_READS: usize = 8;

/// The sled adapter. Cheap to clone; every clone (and every open of the same
/// directory in this process) shares one `sled::Db`.
///
/// Its [`Storage`] methods (but point reads) run their sled calls on tokio's blocking
/// pool, so they must be called inside a tokio runtime (either flavor); outside one they
/// fail with [`StorageError::Unavailable`].
///
/// Layout (format 3; names of fields and kinds are numbers from the store's dictionary):
/// per entity kind a records tree (`r/<kind>`: `tenant ‖ id` → entry), an index tree
/// (`i/<kind>`: `tenant ‖ field ‖ value ‖ id`, one entry per indexed field of every
/// record), a sorted index tree (`s/<kind>`: `tenant ‖ filter ‖ value ‖ sort ‖ value ‖ id`,
/// one entry per equality filter and sort pair the core declares) and a uniques tree
/// (`u/<kind>`: `tenant ‖ field ‖ value` → id); plus `refs` (who points at whom),
/// `names` (the dictionary), `counters`, `outbox` and `meta`.
#[derive(Clone)]
pub struct SledStorage {
    shared: Arc<Shared>,
    durability: Durability,
}

impl std::fmt::Debug for SledStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStorage")
            .field("path", &self.shared.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl SledStorage {
    /// Opens the store in `path` (created if missing) with the default options: every
    /// commit is on disk before it returns. Blocks while sled reads the directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens the store in `path` with `options`. Within one process, every open of the
    /// same directory shares one `sled::Db`. Blocks while sled reads the directory.
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<Self, OpenError> {
        Ok(Self { shared: open::open_shared(path.as_ref(), &options)?, durability: options.durability })
    }

    /// A store in a new temporary directory that is removed when the last handle drops:
    /// for tests.
    pub fn temporary() -> Result<Self, OpenError> {
        let options = SledOptions::default();
        Ok(Self { shared: open::open_temporary(&options)?, durability: options.durability })
    }

    /// The data directory (`None` for a temporary store).
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The flush policy of this handle.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// A handle on the same store with another flush policy (e.g. a bulk load in
    /// [`Durability::Background`] followed by [`SledStorage::flush`]).
    pub fn with_durability(&self, durability: Durability) -> Self {
        Self { shared: self.shared.clone(), durability }
    }

    /// Writes everything applied so far to disk.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.shared.flusher.flush().await
    }

    /// The bytes the store occupies on disk. Blocks while it walks the directory.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.shared.db.size_on_disk().map_err(backend)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Runs `call` on tokio's blocking pool and waits for it without blocking the
    /// runtime. Once started it runs to the end, even if this future is dropped.
    pub(crate) async fn on_blocking_pool<T, E>(
        &self,
        call: impl FnOnce(&Shared) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let runtime = Handle::try_current().map_err(|_| {
            StorageError::Unavailable(
                "crm-storage-sled runs its sled calls on tokio's blocking pool: call it inside a tokio runtime".into(),
            )
        })?;
        let shared = Arc::clone(&self.shared);
        match runtime.spawn_blocking(move || call(&shared)).await {
            Ok(result) => result,
            Err(failure) => Err(E::from(join_failure(failure))),
        }
    }

    /// Waits for a turn to scan ([`SledOptions::scan_concurrency`]). The permit moves
    /// into the blocking half, so it is returned when the scan ends, even if the caller
    /// stopped waiting.
    async fn scan_permit(&self) -> Result<OwnedSemaphorePermit, StorageError> {
        Arc::clone(&self.shared.scans)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Unavailable("the store is closing".into()))
    }

    /// Returns once a commit applied before the call is as durable as this handle promises.
    async fn acknowledge(&self) -> Result<(), StorageError> {
        match self.durability {
            Durability::Flush => self.flush().await,
            Durability::Background => Ok(()),
        }
    }
}

/// A blocking call that panicked (sled panics on some corruption) or that the runtime
/// dropped while shutting down.
fn join_failure(failure: JoinError) -> StorageError {
    if !failure.is_panic() {
        return StorageError::Unavailable("the runtime shut down during a sled call".into());
    }
    let panic = failure.into_panic();
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    StorageError::Backend { source: format!("a sled call panicked: {message}").into() }
}

#[async_trait]
impl Storage for SledStorage {
    fn name(&self) -> &str {
        "sled"
    }

    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        // One key: a lookup in sled's page cache, or one page read on a miss. A hop to
        // the blocking pool (a thread woken, a result sent back) cost more than the
        // read itself: the by-id request path does it inline.
        self.shared.get_blocking(tenant, kind, id)
    }

    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        if ids.len() <= INLINE_READS {
            return self.shared.get_many_blocking(tenant, kind, ids);
        }
        let ids = ids.to_vec();
        self.on_blocking_pool(move |shared| shared.get_many_blocking(tenant, kind, &ids)).await
    }

    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        let permit = if may_scan(kind, query) { Some(self.scan_permit().await?) } else { None };
        let query = query.clone();
        self.on_blocking_pool(move |shared| {
            let _permit = permit;
            list_blocking(shared, tenant, kind, &query)
        })
        .await
    }

    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        let permit = self.scan_permit().await?;
        let query = query.clone();
        self.on_blocking_pool(move |shared| {
            let _permit = permit;
            aggregate_blocking(shared, tenant, kind, &query)
        })
        .await
    }

    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        let key = key.to_owned();
        self.on_blocking_pool(move |shared| shared.counter_blocking(tenant, &key)).await
    }

    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.on_blocking_pool(move |shared| commit_blocking(shared, tenant, &batch)).await?;
        self.acknowledge().await
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        self.on_blocking_pool(move |shared| outbox::pending_blocking(shared, limit)).await
    }

    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        let ids = ids.to_vec();
        self.on_blocking_pool(move |shared| outbox::ack_blocking(shared, &ids)).await?;
        self.acknowledge().await
    }

    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        self.on_blocking_pool(move |shared| outbox::stream_blocking(shared, tenant, after, limit)).await
    }

    async fn outbox_position(&self) -> Result<u64, StorageError> {
        self.on_blocking_pool(outbox::position_blocking).await
    }

    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        let pruned = self.on_blocking_pool(move |shared| outbox::prune_blocking(shared, acked_before, limit)).await?;
        self.acknowledge().await?;
        Ok(pruned)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.on_blocking_pool(Shared::ping_blocking).await
    }
}

#[cfg(test)]
mod tests {
    use std::{
        num::NonZeroUsize,
        sync::{Barrier, mpsc},
        thread,
        time::Duration,
    };

    use crm_core::storage::{CounterUpdate, FieldValue, Record, WriteOp};
    use serde_json::json;

    use super::*;

    const BUSY: TenantId = TenantId(Uuid::from_u128(1));
    const OTHER: TenantId = TenantId(Uuid::from_u128(2));

    /// Holds `tenant`'s commit lock on a thread of its own until the sender is used.
    fn hold_commit_lock(storage: &SledStorage, tenant: TenantId) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
        let (release, released) = mpsc::channel::<()>();
        let entered = Arc::new(Barrier::new(2));
        let (shared, inside) = (Arc::clone(&storage.shared), Arc::clone(&entered));
        let holder = thread::spawn(move || {
            shared.locks.commit(tenant, || {
                inside.wait();
                released.recv().expect("the test releases the lock");
            });
        });
        entered.wait();
        (release, holder)
    }

    /// Three companies and a counter advance from 0 to 1.
    fn batch() -> WriteBatch {
        let company = |n: u128| Record {
            kind: EntityKind::Company,
            id: Uuid::from_u128(n),
            version: 1,
            data: crm_core::storage::Document::from(json!({ "n": n })),
            fields: vec![("n", FieldValue::Int(n as i64))],
            uniques: Vec::new(),
            references: Vec::new(),
        };
        WriteBatch {
            ops: (1..=3).map(|n| WriteOp::Insert(company(n))).collect(),
            counters: vec![CounterUpdate { key: "batches".into(), expected: 0, new: 1 }],
            events: Vec::new(),
        }
    }

    /// A temporary store where `turns` scans may run at once.
    fn store_with_scans(turns: usize) -> SledStorage {
        let scan_concurrency = NonZeroUsize::new(turns).expect("at least one turn");
        let options = SledOptions { scan_concurrency, ..SledOptions::default() };
        SledStorage { shared: open::open_temporary(&options).expect("store"), durability: options.durability }
    }

    fn everything() -> ListQuery {
        ListQuery { with_total: true, ..ListQuery::default() }
    }

    // One runtime thread: a listing blocked on that thread would stop the whole test.
    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_listing_parks_no_runtime_thread_and_no_other_tenant() {
        // Two turns to scan: one for the waiting listing, one for the other tenant's.
        let storage = store_with_scans(2);
        let (release, holder) = hold_commit_lock(&storage, BUSY);
        let waiting = tokio::spawn({
            let storage = storage.clone();
            async move { storage.list(BUSY, EntityKind::Company, &everything()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;

        storage.commit(OTHER, batch()).await.expect("the other tenant commits");
        let page = storage.list(OTHER, EntityKind::Company, &everything()).await.expect("the other tenant lists");
        assert_eq!(page.total, Some(3));
        assert!(!waiting.is_finished(), "the listing ran inside the busy tenant's commit");

        release.send(()).expect("holder alive");
        let page = waiting.await.expect("joined").expect("listed once the commit is done");
        assert_eq!(page.total, Some(0));
        holder.join().expect("holder finished");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn scans_wait_for_a_turn_and_pages_do_not() {
        let storage = store_with_scans(1);
        storage.commit(BUSY, batch()).await.expect("committed");
        let turn = Arc::clone(&storage.shared.scans).acquire_owned().await.expect("the only turn");

        let page = ListQuery { limit: 2, ..ListQuery::default() };
        let listed = storage.list(BUSY, EntityKind::Company, &page).await.expect("a page needs no turn");
        assert_eq!(listed.items.len(), 2);
        let scan = tokio::spawn({
            let storage = storage.clone();
            async move { storage.list(BUSY, EntityKind::Company, &everything()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!scan.is_finished(), "a counting listing ran without a turn");

        drop(turn);
        let counted = scan.await.expect("joined").expect("listed once a turn is free");
        assert_eq!(counted.total, Some(3));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_commit_is_applied_whole() {
        let storage = SledStorage::temporary().expect("store");
        let (release, holder) = hold_commit_lock(&storage, BUSY);
        let commit = tokio::spawn({
            let storage = storage.clone();
            async move { storage.commit(BUSY, batch()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        commit.abort();
        assert!(commit.await.is_err_and(|e| e.is_cancelled()), "the caller went away");

        release.send(()).expect("holder alive");
        holder.join().expect("holder finished");
        // The blocking half still runs to its end: the whole batch lands, never a part.
        let mut waited = Duration::ZERO;
        while storage.counter(BUSY, "batches").await.expect("counter") == 0 && waited < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        let page = storage.list(BUSY, EntityKind::Company, &everything()).await.expect("listed");
        assert_eq!((storage.counter(BUSY, "batches").await.expect("counter"), page.total), (1, Some(3)));
    }

    /// Advances `tenant`'s counter from what it reads, inserting the record it numbers;
    /// a conflict (another writer got there first) reads again.
    async fn number_one_record(storage: &SledStorage, tenant: TenantId) {
        loop {
            let done = storage.counter(tenant, "batches").await.expect("counter");
            let mut numbered = batch();
            numbered.ops.truncate(1);
            if let WriteOp::Insert(record) = &mut numbered.ops[0] {
                record.id = Uuid::from_u128(u128::from(done) + 1);
            }
            numbered.counters[0] = CounterUpdate { key: "batches".into(), expected: done, new: done + 1 };
            match storage.commit(tenant, numbered).await {
                Ok(()) => return,
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenants_commit_side_by_side_and_lose_no_write() {
        let storage = SledStorage::temporary().expect("store").with_durability(Durability::Background);
        let (tenants, writers, each) = (4, 3, 20);
        let mut tasks = Vec::new();
        for tenant in (1..=tenants).map(|t| TenantId(Uuid::from_u128(t))) {
            for _ in 0..writers {
                let storage = storage.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..each {
                        number_one_record(&storage, tenant).await;
                    }
                }));
            }
        }
        for task in tasks {
            task.await.expect("writer finished");
        }
        for tenant in (1..=tenants).map(|t| TenantId(Uuid::from_u128(t))) {
            let expected = writers * each;
            assert_eq!(storage.counter(tenant, "batches").await.expect("counter"), expected);
            let page = storage.list(tenant, EntityKind::Company, &everything()).await.expect("listed");
            assert_eq!(page.total, Some(expected), "every numbered record of {tenant:?} is there once");
        }
    }

    #[test]
    fn outside_a_runtime_calls_fail_instead_of_panicking() {
        let storage = SledStorage::temporary().expect("store");
        let ping = futures::executor::block_on(storage.ping());
        assert!(matches!(ping, Err(StorageError::Unavailable(_))), "{ping:?}");
    }
}
