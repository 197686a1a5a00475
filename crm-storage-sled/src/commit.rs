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

use std::{cell::RefCell, collections::HashMap, str::FromStr};

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
    names::{NameIds, Names},
    shared::Shared,
};

/// Checks and applies `batch` for `tenant`, all of it or none of it. Blocks on the
/// tenant's lock and on sled.
pub(crate) fn commit_blocking(shared: &Shared, tenant: TenantId, batch: &WriteBatch) -> Result<(), StorageError> {
    shared.locks.commit(tenant, || {
        check_batch(&View { shared, tenant, versions: RefCell::default() }, tenant.0, batch)?;
        writes_of(shared, tenant, batch)?.apply(shared)
    })
}

/// The key changes of a checked batch.
fn writes_of<'a>(shared: &'a Shared, tenant: TenantId, batch: &WriteBatch) -> Result<Writes<'a>, StorageError> {
    let mut writes = Writes::new(shared);
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
    Names,
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
            Self::Names => shared.names.tree().clone(),
        })
    }
}

/// A commit's key changes, removals applied before insertions so a key a batch moves
/// from one record to another ends up with its new holder; with the dictionary entries
/// of the names it uses for the first time.
pub(crate) struct Writes<'a> {
    removals: Vec<(TreeRef, Vec<u8>)>,
    puts: Vec<(TreeRef, Vec<u8>, Vec<u8>)>,
    ids: NameIds<'a>,
    names: &'a Names,
}

impl<'a> Writes<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        Self { removals: Vec::new(), puts: Vec::new(), ids: shared.names.writer(), names: &shared.names }
    }

    pub(crate) fn put(&mut self, tree: TreeRef, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((tree, key, value));
    }

    fn remove(&mut self, tree: TreeRef, key: Vec<u8>) {
        self.removals.push((tree, key));
    }

    /// Writes a record's entry with its index, unique and reference keys.
    fn record(&mut self, tenant: TenantId, record: &Record) -> Result<(), StorageError> {
        let index = IndexData::of(record);
        let document = entry::document_bytes(&record.data);
        self.record_entry(tenant, record.kind, record.id, record.version, document, &index)
    }

    /// Writes an entry from its parts with its index, unique and reference keys.
    pub(crate) fn record_entry(
        &mut self,
        tenant: TenantId,
        kind: EntityKind,
        id: Uuid,
        version: u64,
        document: &[u8],
        index: &IndexData,
    ) -> Result<(), StorageError> {
        let value = entry::encode(version, document, index, &mut self.ids)?;
        self.put(TreeRef::Records(kind), keys::record_key(tenant, id), value);
        self.index(tenant, kind, id, index)
    }

    /// Adds the index (single-field and sorted), unique and reference entries of a record.
    fn index(&mut self, tenant: TenantId, kind: EntityKind, id: Uuid, index: &IndexData) -> Result<(), StorageError> {
        for key in index_keys(&mut self.ids, tenant, kind, id, index)? {
            self.puts.push(key);
        }
        Ok(())
    }

    /// Removes the index (single-field and sorted), unique and reference entries the
    /// stored record wrote.
    fn unindex(&mut self, shared: &Shared, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<(), StorageError> {
        let Some(bytes) = shared.entry_blocking(tenant, kind, id)? else {
            return Ok(());
        };
        let old = Entry::parse(&bytes)?.index(&self.names.reader())?;
        for (tree, key, _) in index_keys(&mut self.ids, tenant, kind, id, &old)? {
            self.removals.push((tree, key));
        }
        Ok(())
    }

    /// Applies every change in one sled transaction: all of it reaches the log, or none.
    pub(crate) fn apply(mut self, shared: &Shared) -> Result<(), StorageError> {
        let pending = std::mem::take(&mut self.ids.pending);
        for (name, id) in &pending {
            self.puts.push((TreeRef::Names, name.as_bytes().to_vec(), id.to_be_bytes().to_vec()));
        }
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
        })?;
        self.names.written(&pending);
        Ok(())
    }
}

/// A key to write in a tree, with its value.
pub(crate) type KeyWrite = (TreeRef, Vec<u8>, Vec<u8>);

/// Every key a record's index data puts in the index, sorted, uniques and references
/// trees (with its value).
pub(crate) fn index_keys(
    ids: &mut NameIds<'_>,
    tenant: TenantId,
    kind: EntityKind,
    id: Uuid,
    index: &IndexData,
) -> Result<Vec<KeyWrite>, StorageError> {
    let mut keys = Vec::with_capacity(index.fields.len() * 2 + index.uniques.len() + index.references.len());
    for (field, value) in &index.fields {
        if keys::is_indexed(kind, field) {
            keys.push((TreeRef::Index(kind), keys::index_key(tenant, ids.id(field)?, value, id), Vec::new()));
        }
    }
    for key in sorted_keys(ids, tenant, kind, id, index) {
        keys.push((TreeRef::Sorted(kind), key?, Vec::new()));
    }
    for (field, value) in &index.uniques {
        keys.push((TreeRef::Uniques(kind), keys::unique_key(tenant, ids.id(field)?, value), id.as_bytes().to_vec()));
    }
    let by_kind = ids.id(kind.as_str())?;
    for (_, target_kind, target) in &index.references {
        let key = keys::reference_key(tenant, ids.id(target_kind.as_str())?, *target, by_kind, id);
        keys.push((TreeRef::References, key, Vec::new()));
    }
    Ok(keys)
}

/// A record's sorted index keys: one per `(filter, sort)` pair of its kind, a field the
/// record lacks counting as `Null` (as filters see it), so every record the filter
/// matches is in the walk.
pub(crate) fn sorted_keys<'a>(
    ids: &'a mut NameIds<'_>,
    tenant: TenantId,
    kind: EntityKind,
    id: Uuid,
    index: &'a IndexData,
) -> impl Iterator<Item = Result<Vec<u8>, StorageError>> + 'a {
    keys::sorted_pairs(kind).iter().map(move |&(filter, sort)| {
        let (filter_id, sort_id) = (ids.id(filter)?, ids.id(sort)?);
        Ok(keys::sorted_key(tenant, (filter_id, index.field(filter)), (sort_id, index.field(sort)), id))
    })
}

/// Committed state as `check_batch` sees it; read under the tenant's commit lock.
/// Versions are remembered for the batch: many records of a batch pointing at one
/// target (a bulk import's company) read it once.
struct View<'a> {
    shared: &'a Shared,
    tenant: TenantId,
    versions: RefCell<HashMap<(EntityKind, Uuid), Option<u64>>>,
}

impl StateView for View<'_> {
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError> {
        if let Some(known) = self.versions.borrow().get(&(kind, id)) {
            return Ok(*known);
        }
        let bytes = self.shared.entry_blocking(self.tenant, kind, id)?;
        let version = bytes.map(|b| Entry::version_of(&b)).transpose()?;
        self.versions.borrow_mut().insert((kind, id), version);
        Ok(version)
    }

    fn unique_owner(&self, kind: EntityKind, key: &UniqueKey) -> Result<Option<Uuid>, StorageError> {
        let Some(field) = self.shared.names.id(key.field) else { return Ok(None) };
        let uniques = &self.shared.kind(kind)?.uniques;
        let holder = uniques.get(keys::unique_key(self.tenant, field, &key.value)).map_err(backend)?;
        holder
            .map(|id| {
                Uuid::from_slice(&id)
                    .map_err(|_| corrupt(format_args!("the holder of a {kind} {} is not an id", key.field)))
            })
            .transpose()
    }

    fn referrers(&self, kind: EntityKind, id: Uuid) -> Result<Vec<(EntityKind, Uuid)>, StorageError> {
        let Some(target_kind) = self.shared.names.id(kind.as_str()) else { return Ok(Vec::new()) };
        let prefix = keys::referrers_prefix(self.tenant, target_kind, id);
        let mut referrers = Vec::new();
        for item in self.shared.references.scan_prefix(&prefix) {
            let (key, _) = item.map_err(backend)?;
            let names = self.shared.names.reader();
            let parsed = keys::split_referrer(&key[prefix.len()..]).and_then(|(by, by_id)| {
                let by = names.name(by).ok()?;
                EntityKind::from_str(by).ok().map(|by| (by, by_id))
            });
            referrers.push(parsed.ok_or_else(|| corrupt(format_args!("a reference key to {kind} {id}")))?);
        }
        Ok(referrers)
    }

    fn counter(&self, key: &str) -> Result<u64, StorageError> {
        self.shared.counter_blocking(self.tenant, key)
    }
}
