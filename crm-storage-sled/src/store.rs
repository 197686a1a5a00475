//! [`SledStorage`]: the handle, how it opens, and the storage contract on it.
//!
//! Each contract method calls its synchronous half (the `*_blocking` functions of
//! [`crate::shared`], [`crate::listing`], [`crate::commit`] and [`crate::outbox`]),
//! which block the calling thread on sled. Waiting for the disk takes no thread: the
//! group-commit thread ([`crate::flusher`]) answers through a oneshot that the commit
//! awaits, after its transaction is applied and its lock released.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        WriteBatch,
    },
};
use uuid::Uuid;

use crate::{
    commit::commit_blocking,
    entry::backend,
    listing::{aggregate_blocking, list_blocking},
    open::{self, Durability, OpenError, SledOptions},
    outbox,
    shared::Shared,
};

/// The sled adapter. Cheap to clone; every clone (and every open of the same
/// directory in this process) shares one `sled::Db`.
///
/// Layout: per entity kind a records tree (`records/<kind>`: `tenant ‖ id` → entry), an
/// index tree (`index/<kind>`: `tenant ‖ field ‖ 0 ‖ value ‖ id`, one entry per indexed
/// field of every record) and a uniques tree (`uniques/<kind>`: `tenant ‖ field ‖ 0 ‖
/// value` → id); plus `references` (who points at whom), `counters`, `outbox` and `meta`.
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

    /// Returns once a commit applied before the call is as durable as this handle promises.
    async fn acknowledge(&self) -> Result<(), StorageError> {
        match self.durability {
            Durability::Flush => self.flush().await,
            Durability::Background => Ok(()),
        }
    }
}

#[async_trait]
impl Storage for SledStorage {
    fn name(&self) -> &str {
        "sled"
    }

    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        self.shared.get_blocking(tenant, kind, id)
    }

    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        self.shared.get_many_blocking(tenant, kind, ids)
    }

    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        list_blocking(&self.shared, tenant, kind, query)
    }

    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        aggregate_blocking(&self.shared, tenant, kind, query)
    }

    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        self.shared.counter_blocking(tenant, key)
    }

    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        commit_blocking(&self.shared, tenant, &batch)?;
        self.acknowledge().await
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        outbox::pending_blocking(&self.shared, limit)
    }

    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        outbox::ack_blocking(&self.shared, ids)?;
        self.acknowledge().await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.shared.ping_blocking()
    }
}
