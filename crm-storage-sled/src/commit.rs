//! Applying a [`WriteBatch`] in one sled transaction.
//!
//! 1. Take the tenant's commit lock ([`crate::locks`]): from here to step 4 no other
//!    commit or listing of the tenant runs, so what step 2 reads stays true.
//! 2. The core's [`check_batch`] decides on the committed state ([`View`]: versions,
//!    unique-key holders, referrers, counters): the same rules, errors and precedence as
//!    every other adapter. Nothing has been written if it refuses.
//! 3. Plan the key changes ([`Writes`]): an update or delete reads the stored entry's
//!    index data back and removes exactly the index (single-field and sorted), unique
//!    and reference keys it wrote; a written record adds its own; counters and outbox
//!    events are plain puts.
//! 4. Apply every change in one transaction over the touched trees, removals before
//!    insertions. sled recovers a transaction whole or not at all after a crash.
//!
//! There is no retry: under the lock nothing can invalidate the check, and a sled error
//! is not a conflict. The commit is durable only once the group-commit thread has
//! flushed it ([`crate::flusher`]); the caller waits for that outside the lock.

use std::str::FromStr;

use crm_core::{
    TenantId,
    storage::{EntityKind, Record, StateView, StorageError, UniqueKey, WriteBatch, WriteOp, check_batch},
};
use sled::{
    IVec, Transactional, Tree,
    transaction::{ConflictableTransactionError, TransactionError},
};
use uuid::Uuid;

use crate::{
    entry::{self, Entry, IndexData, backend, corrupt},
    keys,
    shared::Shared,
};

/// Checks and applies `batch` for `tenant`, all of it or none of it. Blocks on the
/// tenant's lock and on sled.
pub(crate) fn commit_blocking(shared: &Shared, tenant: TenantId, batch: &WriteBatch) -> Result<(), StorageError> {
    shared.locks.commit(tenant, || {
        check_batch(&View { shared, tenant }, tenant.0, batch)?;
        writes_of(shared, tenant, batch)?.apply(shared)
    })
}

/// The key changes of a checked batch.
fn writes_of(shared: &Shared, tenant: TenantId, batch: &WriteBatch) -> Result<Writes, StorageError> {
    let mut writes = Writes::default();
    for op in &batch.ops {
        match op {
            WriteOp::Insert(record) => writes.record(tenant, record)?,
            WriteOp::Update { record, .. } => {
                writes.unindex(shared, tenant, record.kind, record.id)?;
                writes.record(tenant, record)?;
            }
            WriteOp::Delete { kind, id, .. } => {
                writes.unindex(shared, tenant, *kind, *id)?;
                writes.remove(TreeRef::Records(*kind), keys::record_key(tenant, *id));
            }
            WriteOp::Check { .. } => {}
        }
    }
    for counter in &batch.counters {
        writes.put(TreeRef::Counters, keys::counter_key(tenant, &counter.key), counter.new.to_be_bytes().to_vec());
    }
    for event in &batch.events {
        writes.put(TreeRef::Outbox, event.id.as_bytes().to_vec(), serde_json::to_vec(event).map_err(backend)?);
    }
    Ok(writes)
}

/// The trees a commit writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TreeRef {
    Records(EntityKind),
    Index(EntityKind),
    Sorted(EntityKind),
    Uniques(EntityKind),
    References,
    Counters,
    Outbox,
}

impl TreeRef {
    fn tree(self, shared: &Shared) -> Result<Tree, StorageError> {
        Ok(match self {
            Self::Records(kind) => shared.kind(kind)?.records.clone(),
            Self::Index(kind) => shared.kind(kind)?.index.clone(),
            Self::Sorted(kind) => shared.kind(kind)?.sorted.clone(),
            Self::Uniques(kind) => shared.kind(kind)?.uniques.clone(),
            Self::References => shared.references.clone(),
            Self::Counters => shared.counters.clone(),
            Self::Outbox => shared.outbox.clone(),
        })
    }
}

/// A commit's key changes, removals applied before insertions so a key a batch moves
/// from one record to another ends up with its new holder.
#[derive(Default)]
pub(crate) struct Writes {
    removals: Vec<(TreeRef, Vec<u8>)>,
    puts: Vec<(TreeRef, Vec<u8>, Vec<u8>)>,
}

impl Writes {
    pub(crate) fn put(&mut self, tree: TreeRef, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((tree, key, value));
    }

    fn remove(&mut self, tree: TreeRef, key: Vec<u8>) {
        self.removals.push((tree, key));
    }

    /// Writes a record's entry with its index, unique and reference keys.
    fn record(&mut self, tenant: TenantId, record: &Record) -> Result<(), StorageError> {
        let index = IndexData::of(record);
        let value = entry::encode(record.version, &record.data, &index)?;
        self.put(TreeRef::Records(record.kind), keys::record_key(tenant, record.id), value);
        self.index(tenant, record.kind, record.id, &index);
        Ok(())
    }

    /// Adds the index (single-field and sorted), unique and reference entries of a record.
    pub(crate) fn index(&mut self, tenant: TenantId, kind: EntityKind, id: Uuid, index: &IndexData) {
        for (field, value) in &index.fields {
            self.put(TreeRef::Index(kind), keys::index_key(tenant, field, value, id), Vec::new());
        }
        for key in sorted_keys(tenant, kind, id, index) {
            self.put(TreeRef::Sorted(kind), key, Vec::new());
        }
        for (field, value) in &index.uniques {
            self.put(TreeRef::Uniques(kind), keys::unique_key(tenant, field, value), id.as_bytes().to_vec());
        }
        for (_, target_kind, target) in &index.references {
            let key = keys::reference_key(tenant, target_kind.as_str(), *target, kind.as_str(), id);
            self.put(TreeRef::References, key, Vec::new());
        }
    }

    /// Removes the index (single-field and sorted), unique and reference entries the
    /// stored record wrote.
    fn unindex(&mut self, shared: &Shared, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<(), StorageError> {
        let Some(bytes) = shared.entry_blocking(tenant, kind, id)? else {
            return Ok(());
        };
        let old = Entry::parse(&bytes)?.index()?;
        for (field, value) in &old.fields {
            self.remove(TreeRef::Index(kind), keys::index_key(tenant, field, value, id));
        }
        for key in sorted_keys(tenant, kind, id, &old) {
            self.remove(TreeRef::Sorted(kind), key);
        }
        for (field, value) in &old.uniques {
            self.remove(TreeRef::Uniques(kind), keys::unique_key(tenant, field, value));
        }
        for (_, target_kind, target) in &old.references {
            let key = keys::reference_key(tenant, target_kind.as_str(), *target, kind.as_str(), id);
            self.remove(TreeRef::References, key);
        }
        Ok(())
    }

    /// Applies every change in one sled transaction: all of it reaches the log, or none.
    pub(crate) fn apply(self, shared: &Shared) -> Result<(), StorageError> {
        let mut involved: Vec<TreeRef> = Vec::new();
        let mut slot = |tree: TreeRef| match involved.iter().position(|t| *t == tree) {
            Some(i) => i,
            None => {
                involved.push(tree);
                involved.len() - 1
            }
        };
        let removals: Vec<(usize, IVec)> = self.removals.into_iter().map(|(t, k)| (slot(t), k.into())).collect();
        let puts: Vec<(usize, IVec, IVec)> =
            self.puts.into_iter().map(|(t, k, v)| (slot(t), k.into(), v.into())).collect();
        if involved.is_empty() {
            return Ok(());
        }
        let trees = involved.iter().map(|t| t.tree(shared)).collect::<Result<Vec<_>, _>>()?;
        let applied = trees[..].transaction(|view| {
            for (i, key) in &removals {
                view[*i].remove(key)?;
            }
            for (i, key, value) in &puts {
                view[*i].insert(key, value)?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        applied.map_err(|e| match e {
            TransactionError::Storage(e) => backend(e),
            TransactionError::Abort(()) => StorageError::Backend { source: "the sled transaction aborted".into() },
        })
    }
}

/// A record's sorted index keys: one per `(filter, sort)` pair of its kind, a field the
/// record lacks counting as `Null` (as filters see it), so every record the filter
/// matches is in the walk.
pub(crate) fn sorted_keys<'a>(
    tenant: TenantId,
    kind: EntityKind,
    id: Uuid,
    index: &'a IndexData,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    keys::sorted_pairs(kind).iter().map(move |&(filter, sort)| {
        keys::sorted_key(tenant, (filter, index.field(filter)), (sort, index.field(sort)), id)
    })
}

/// Committed state as `check_batch` sees it; read under the tenant's commit lock.
struct View<'a> {
    shared: &'a Shared,
    tenant: TenantId,
}

impl StateView for View<'_> {
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError> {
        let bytes = self.shared.entry_blocking(self.tenant, kind, id)?;
        bytes.map(|b| Entry::parse(&b).map(|e| e.version)).transpose()
    }

    fn unique_owner(&self, kind: EntityKind, key: &UniqueKey) -> Result<Option<Uuid>, StorageError> {
        let uniques = &self.shared.kind(kind)?.uniques;
        let holder = uniques.get(keys::unique_key(self.tenant, key.field, &key.value)).map_err(backend)?;
        holder
            .map(|id| {
                Uuid::from_slice(&id)
                    .map_err(|_| corrupt(format_args!("the holder of a {kind} {} is not an id", key.field)))
            })
            .transpose()
    }

    fn referrers(&self, kind: EntityKind, id: Uuid) -> Result<Vec<(EntityKind, Uuid)>, StorageError> {
        let prefix = keys::referrers_prefix(self.tenant, kind.as_str(), id);
        let mut referrers = Vec::new();
        for item in self.shared.references.scan_prefix(&prefix) {
            let (key, _) = item.map_err(backend)?;
            let parsed = keys::split_referrer(&key[prefix.len()..])
                .and_then(|(by, by_id)| EntityKind::from_str(by).ok().map(|by| (by, by_id)));
            referrers.push(parsed.ok_or_else(|| corrupt(format_args!("a reference key to {kind} {id}")))?);
        }
        Ok(referrers)
    }

    fn counter(&self, key: &str) -> Result<u64, StorageError> {
        self.shared.counter_blocking(self.tenant, key)
    }
}
