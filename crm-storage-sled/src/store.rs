//! [`SledStorage`]: the storage contract on sled trees.

use std::{
    collections::HashMap,
    ops::Bound,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use async_trait::async_trait;
use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, Aggregation, Cursor, EntityKind, FieldValue, Filter, FilterOp, ListQuery,
        OutboxEvent, Page, StateView, Storage, StorageError, StoredRecord, UniqueKey, WriteBatch, WriteOp, check_batch,
        row_matches,
    },
};
use sled::{IVec, Transactional, Tree};
use uuid::Uuid;

use crate::{
    entry::{self, Entry, IndexData, backend, corrupt},
    flusher::Flusher,
    keys,
    open::{self, Durability, OpenError, SledOptions},
};

/// The sled adapter. Cheap to clone; every clone shares one `sled::Db`.
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

/// The trees of one entity kind.
pub(crate) struct KindTrees {
    pub(crate) records: Tree,
    pub(crate) index: Tree,
    pub(crate) uniques: Tree,
}

/// What every handle on one data directory shares.
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    path: Option<PathBuf>,
    kinds: HashMap<EntityKind, KindTrees>,
    pub(crate) references: Tree,
    pub(crate) counters: Tree,
    pub(crate) outbox: Tree,
    pub(crate) meta: Tree,
    flusher: Flusher,
    /// Commits hold it exclusively while they check and apply; multi-tree reads
    /// (listings, aggregates) hold it shared, so they never see half of a commit.
    pub(crate) lock: RwLock<()>,
}

impl Shared {
    pub(crate) fn new(db: sled::Db, path: Option<PathBuf>) -> sled::Result<Self> {
        let flusher = Flusher::start(db.clone())?;
        let mut kinds = HashMap::new();
        for &kind in EntityKind::ALL {
            let name = kind.as_str();
            kinds.insert(
                kind,
                KindTrees {
                    records: db.open_tree(format!("records/{name}"))?,
                    index: db.open_tree(format!("index/{name}"))?,
                    uniques: db.open_tree(format!("uniques/{name}"))?,
                },
            );
        }
        Ok(Self {
            references: db.open_tree("references")?,
            counters: db.open_tree("counters")?,
            outbox: db.open_tree("outbox")?,
            meta: db.open_tree("meta")?,
            flusher,
            kinds,
            path,
            db,
            lock: RwLock::new(()),
        })
    }

    pub(crate) fn kind(&self, kind: EntityKind) -> Result<&KindTrees, StorageError> {
        self.kinds.get(&kind).ok_or_else(|| StorageError::Invalid(format!("no trees for kind {kind}")))
    }

    pub(crate) fn read_lock(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.lock.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SledStorage {
    /// Opens the store in `path` (created if missing) with the default options: every
    /// commit is on disk before it returns.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens the store in `path` with `options`. Within one process, every open of the
    /// same directory shares one `sled::Db`.
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

    /// The bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.shared.db.size_on_disk().map_err(backend)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    async fn acknowledge(&self) -> Result<(), StorageError> {
        match self.durability {
            Durability::Flush => self.flush().await,
            Durability::Background => Ok(()),
        }
    }

    fn commit_now(&self, tenant: TenantId, batch: &WriteBatch) -> Result<(), StorageError> {
        let shared = &*self.shared;
        let _exclusive = shared.write_lock();
        let view = View { shared, tenant };
        check_batch(&view, tenant.0, batch)?;

        let mut writes = Writes::default();
        for op in &batch.ops {
            let (kind, id) = op.target();
            match op {
                WriteOp::Insert(record) | WriteOp::Update { record, .. } => {
                    if matches!(op, WriteOp::Update { .. }) {
                        writes.unindex(shared, tenant, kind, id)?;
                    }
                    let index = IndexData::of(record);
                    let value = entry::encode(record.version, &record.data, &index)?;
                    writes.put(TreeRef::Records(kind), keys::record_key(tenant, id), value);
                    writes.index(tenant, kind, id, &index);
                }
                WriteOp::Delete { .. } => {
                    writes.unindex(shared, tenant, kind, id)?;
                    writes.remove(TreeRef::Records(kind), keys::record_key(tenant, id));
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
        writes.apply(shared)
    }

    /// The rows of a listing, under the shared lock.
    fn list_now(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        let shared = &*self.shared;
        let _shared_lock = shared.read_lock();
        let reader = Reader { trees: shared.kind(kind)?, tenant };
        let total = if query.with_total { Some(reader.count(&query.filters, query.search.as_ref())?) } else { None };
        let mut rows = reader.rows(query)?;
        let next = if rows.len() > query.limit {
            rows.truncate(query.limit);
            rows.last().map(|row| Cursor { value: row.sort_value.clone(), id: row.id })
        } else {
            None
        };
        let items =
            rows.iter().map(|row| Entry::parse(&row.bytes)?.to_stored(kind, row.id)).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next, total })
    }
}

/// The trees a commit writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TreeRef {
    Records(EntityKind),
    Index(EntityKind),
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

    /// Adds the index, unique and reference entries of a record.
    pub(crate) fn index(&mut self, tenant: TenantId, kind: EntityKind, id: Uuid, index: &IndexData) {
        for (field, value) in &index.fields {
            self.put(TreeRef::Index(kind), keys::index_key(tenant, field, value, id), Vec::new());
        }
        for (field, value) in &index.uniques {
            self.put(TreeRef::Uniques(kind), keys::unique_key(tenant, field, value), id.as_bytes().to_vec());
        }
        for (_, target_kind, target) in &index.references {
            let key = keys::reference_key(tenant, target_kind.as_str(), *target, kind.as_str(), id);
            self.put(TreeRef::References, key, Vec::new());
        }
    }

    /// Removes the index, unique and reference entries the stored record wrote.
    fn unindex(&mut self, shared: &Shared, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<(), StorageError> {
        let Some(bytes) = shared.kind(kind)?.records.get(keys::record_key(tenant, id)).map_err(backend)? else {
            return Ok(());
        };
        let old = Entry::parse(&bytes)?.index()?;
        for (field, value) in &old.fields {
            self.remove(TreeRef::Index(kind), keys::index_key(tenant, field, value, id));
        }
        for (field, value) in &old.uniques {
            self.remove(TreeRef::Uniques(kind), keys::unique_key(tenant, field, value));
        }
        for (_, target_kind, target) in &old.references {
            self.remove(
                TreeRef::References,
                keys::reference_key(tenant, target_kind.as_str(), *target, kind.as_str(), id),
            );
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
        trees[..]
            .transaction(|view| {
                for (i, key) in &removals {
                    view[*i].remove(key)?;
                }
                for (i, key, value) in &puts {
                    view[*i].insert(key, value)?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => backend(e),
                sled::transaction::TransactionError::Abort(()) => {
                    StorageError::Backend { source: "the sled transaction aborted".into() }
                }
            })
    }
}

/// Committed state as `check_batch` sees it; read under the exclusive lock.
struct View<'a> {
    shared: &'a Shared,
    tenant: TenantId,
}

impl StateView for View<'_> {
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError> {
        let bytes = self.shared.kind(kind)?.records.get(keys::record_key(self.tenant, id)).map_err(backend)?;
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
        read_counter(&self.shared.counters, self.tenant, key)
    }
}

/// A counter's value: 0 if it was never written, an error if it does not decode.
fn read_counter(counters: &Tree, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
    let Some(value) = counters.get(keys::counter_key(tenant, key)).map_err(backend)? else {
        return Ok(0);
    };
    decode_counter(key, &value)
}

/// A stored counter value: exactly 8 bytes, big-endian.
pub(crate) fn decode_counter(key: &str, value: &[u8]) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(format_args!("counter {key:?} holds {} bytes, not an 8-byte number", value.len())))
}

/// A candidate row of a listing: its id, stored value and sort value.
struct Row {
    id: Uuid,
    bytes: IVec,
    sort_value: FieldValue,
}

/// Reads one kind of one tenant.
struct Reader<'a> {
    trees: &'a KindTrees,
    tenant: TenantId,
}

/// The filter whose index drives a walk in id order.
enum Driver<'q> {
    /// One value's entries, already in id order: walked lazily.
    Eq(&'static str, &'q FieldValue),
    /// Several values' entries, merged into id order.
    In(&'static str, &'q [FieldValue]),
    /// A range of one field's entries, collected and put in id order.
    Range(&'static str, Bound<&'q FieldValue>, Bound<&'q FieldValue>),
}

impl<'q> Driver<'q> {
    /// The most selective index the filters allow: an equality, then a set, then a range.
    fn choose(filters: &'q [Filter]) -> Option<Self> {
        let eq = filters.iter().find_map(|f| match &f.op {
            FilterOp::Eq(v) => Some(Self::Eq(f.field, v)),
            _ => None,
        });
        let set = || {
            filters.iter().find_map(|f| match &f.op {
                FilterOp::In(vs) => Some(Self::In(f.field, vs)),
                _ => None,
            })
        };
        let range = || {
            let first = filters.iter().find(|f| matches!(f.op, FilterOp::Gte(_) | FilterOp::Lt(_)))?;
            let (lower, upper) = range_bounds(filters, first.field);
            Some(Self::Range(first.field, lower, upper))
        };
        eq.or_else(set).or_else(range)
    }
}

/// How a listing finds its rows.
enum Plan<'q> {
    /// Walk the sort field's index (within the range its filters allow).
    SortIndex(&'static str),
    /// Collect what a filter's index selects, then sort it by the sort field.
    SortSelection(Driver<'q>),
    /// Walk what a filter's index selects, in id order.
    IdSelection(Driver<'q>),
    /// Walk every record in id order.
    All,
}

/// The bounds the `Gte`/`Lt` filters on `field` put on its values.
fn range_bounds<'q>(filters: &'q [Filter], field: &str) -> (Bound<&'q FieldValue>, Bound<&'q FieldValue>) {
    let mut bounds = (Bound::Unbounded, Bound::Unbounded);
    for filter in filters.iter().filter(|f| f.field == field) {
        match &filter.op {
            FilterOp::Gte(v) => bounds.0 = Bound::Included(v),
            FilterOp::Lt(v) => bounds.1 = Bound::Excluded(v),
            FilterOp::Eq(_) | FilterOp::In(_) => {}
        }
    }
    bounds
}

impl Reader<'_> {
    fn record(&self, id: Uuid) -> Result<Option<IVec>, StorageError> {
        self.trees.records.get(keys::record_key(self.tenant, id)).map_err(backend)
    }

    /// Ids in one field's index, in `(value, id)` order, between two index keys.
    fn index_ids(
        &self,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = Result<Uuid, StorageError>> + '_> {
        let range = self.trees.index.range::<Vec<u8>, _>((lower, upper));
        let ids = move |item: sled::Result<(IVec, IVec)>| {
            let (key, _) = item.map_err(backend)?;
            keys::trailing_id(&key).ok_or_else(|| corrupt("an index key without a record id"))
        };
        if descending { Box::new(range.rev().map(ids)) } else { Box::new(range.map(ids)) }
    }

    /// The index keys bounding one field's entries with values in `(lower, upper)`.
    fn value_bounds(
        &self,
        field: &str,
        lower: Bound<&FieldValue>,
        upper: Bound<&FieldValue>,
    ) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let prefix = keys::index_field_prefix(self.tenant, field);
        let lower = match lower {
            Bound::Included(v) => Bound::Included(keys::index_value_prefix(self.tenant, field, v)),
            Bound::Excluded(v) => after_value(keys::index_value_prefix(self.tenant, field, v), Bound::Included),
            Bound::Unbounded => Bound::Included(prefix.clone()),
        };
        let upper = match upper {
            Bound::Included(v) => after_value(keys::index_value_prefix(self.tenant, field, v), Bound::Excluded),
            Bound::Excluded(v) => Bound::Excluded(keys::index_value_prefix(self.tenant, field, v)),
            Bound::Unbounded => keys::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        (lower, upper)
    }

    /// The ids a driver selects, in id order, strictly after `after` in the listing's direction.
    fn driven_ids(
        &self,
        driver: &Driver<'_>,
        after: Option<Uuid>,
        descending: bool,
    ) -> Result<Box<dyn Iterator<Item = Result<Uuid, StorageError>> + '_>, StorageError> {
        if let Driver::Eq(field, value) = driver {
            let prefix = keys::index_value_prefix(self.tenant, field, value);
            let mut lower = Bound::Included(prefix.clone());
            let mut upper = keys::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
            if let Some(id) = after {
                let mut at = prefix;
                at.extend_from_slice(id.as_bytes());
                if descending { upper = Bound::Excluded(at) } else { lower = Bound::Excluded(at) }
            }
            return Ok(self.index_ids(lower, upper, descending));
        }
        let mut ids = Vec::new();
        let mut collect = |lower, upper| -> Result<(), StorageError> {
            for id in self.index_ids(lower, upper, false) {
                ids.push(id?);
            }
            Ok(())
        };
        match driver {
            Driver::In(field, values) => {
                for value in *values {
                    let (lower, upper) = self.value_bounds(field, Bound::Included(value), Bound::Included(value));
                    collect(lower, upper)?;
                }
            }
            Driver::Range(field, lower, upper) => {
                let (lower, upper) = self.value_bounds(field, *lower, *upper);
                collect(lower, upper)?;
            }
            Driver::Eq(..) => {}
        }
        ids.sort_unstable();
        ids.dedup();
        if descending {
            ids.reverse();
        }
        let after_cursor = move |id: &Uuid| after.is_none_or(|a| if descending { *id < a } else { *id > a });
        Ok(Box::new(ids.into_iter().filter(after_cursor).map(Ok)))
    }

    /// Every record of the tenant in id order, strictly after `after`.
    fn all_rows(
        &self,
        after: Option<Uuid>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = Result<(Uuid, IVec), StorageError>> + '_> {
        let prefix = keys::tenant_prefix(self.tenant);
        let mut lower = Bound::Included(prefix.clone());
        let mut upper = keys::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        if let Some(id) = after {
            let at = keys::record_key(self.tenant, id);
            if descending { upper = Bound::Excluded(at) } else { lower = Bound::Excluded(at) }
        }
        let range = self.trees.records.range::<Vec<u8>, _>((lower, upper));
        let rows = |item: sled::Result<(IVec, IVec)>| {
            let (key, value) = item.map_err(backend)?;
            let id = keys::trailing_id(&key).ok_or_else(|| corrupt("a record key without an id"))?;
            Ok((id, value))
        };
        if descending { Box::new(range.rev().map(rows)) } else { Box::new(range.map(rows)) }
    }

    /// The listing's rows, at most `limit + 1` (the extra one says a next page exists).
    fn rows(&self, query: &ListQuery) -> Result<Vec<Row>, StorageError> {
        let wanted = query.limit.saturating_add(1);
        let sort = query.sort;
        let matches = |index: &IndexData| row_matches(|name| index.field(name), &query.filters, query.search.as_ref());
        let sort_value = |index: &IndexData| sort.field.map_or(FieldValue::Null, |f| index.field(f).clone());
        let mut rows = Vec::new();
        // In id order under a lone equality, the index entry already proves the match
        // (the read lock keeps index and records in step): skip decoding the index data.
        let proven = sort.field.is_none()
            && query.search.is_none()
            && matches!(query.filters.as_slice(), [Filter { op: FilterOp::Eq(_), .. }]);
        let row_of = |id: Uuid, bytes: IVec| -> Result<Option<Row>, StorageError> {
            if proven {
                return Ok(Some(Row { id, sort_value: FieldValue::Null, bytes }));
            }
            let index = Entry::parse(&bytes)?.index()?;
            Ok(matches(&index).then(|| Row { id, sort_value: sort_value(&index), bytes }))
        };
        // Collects the matching rows of `ids` until there are `limit`.
        let walk = |ids: Box<dyn Iterator<Item = Result<Uuid, StorageError>> + '_>, rows: &mut Vec<Row>, limit| {
            for id in ids {
                let id = id?;
                if let Some(bytes) = self.record(id)?
                    && let Some(row) = row_of(id, bytes)?
                {
                    rows.push(row);
                    if rows.len() >= limit {
                        break;
                    }
                }
            }
            Ok::<_, StorageError>(())
        };
        let plan = match (sort.field, Driver::choose(&query.filters)) {
            // Sorted by a field with no selective filter, or within a range of that field.
            (Some(field), None) => Plan::SortIndex(field),
            (Some(field), Some(Driver::Range(range_field, ..))) if range_field == field => Plan::SortIndex(field),
            // Sorted by the field an equality selects: its entries are in id order.
            (Some(field), Some(Driver::Eq(eq_field, value))) if eq_field == field => {
                Plan::IdSelection(Driver::Eq(eq_field, value))
            }
            (Some(_), Some(driver)) => Plan::SortSelection(driver),
            (None, Some(driver)) => Plan::IdSelection(driver),
            (None, None) => Plan::All,
        };
        match plan {
            Plan::SortIndex(field) => {
                let (lower_value, upper_value) = range_bounds(&query.filters, field);
                let (mut lower, mut upper) = self.value_bounds(field, lower_value, upper_value);
                if let Some(cursor) = &query.after {
                    let at = keys::index_key(self.tenant, field, &cursor.value, cursor.id);
                    if sort.descending { upper = Bound::Excluded(at) } else { lower = Bound::Excluded(at) }
                }
                walk(self.index_ids(lower, upper, sort.descending), &mut rows, wanted)?;
            }
            // Sorted by a field within a filter's selection: order the selection.
            Plan::SortSelection(driver) => {
                walk(self.driven_ids(&driver, None, false)?, &mut rows, usize::MAX)?;
                rows.sort_unstable_by(|a, b| {
                    let ord = a.sort_value.cmp(&b.sort_value).then(a.id.cmp(&b.id));
                    if sort.descending { ord.reverse() } else { ord }
                });
                if let Some(cursor) = &query.after {
                    rows.retain(|row| cursor.compare(&row.sort_value, row.id, sort.descending).is_gt());
                }
                rows.truncate(wanted);
            }
            // Id order within a filter's selection.
            Plan::IdSelection(driver) => {
                let after = query.after.as_ref().map(|c| c.id);
                walk(self.driven_ids(&driver, after, sort.descending)?, &mut rows, wanted)?;
            }
            // Id order over everything (creation order: ids are UUID v7).
            Plan::All => {
                for row in self.all_rows(query.after.as_ref().map(|c| c.id), sort.descending) {
                    let (id, bytes) = row?;
                    if let Some(row) = row_of(id, bytes)? {
                        rows.push(row);
                        if rows.len() >= wanted {
                            break;
                        }
                    }
                }
            }
        }
        Ok(rows)
    }

    /// Calls `f` with the index data of every row the filters' driver selects (or every
    /// row), unfiltered.
    fn for_each_candidate(&self, filters: &[Filter], mut f: impl FnMut(&IndexData)) -> Result<(), StorageError> {
        match Driver::choose(filters) {
            Some(driver) => {
                for id in self.driven_ids(&driver, None, false)? {
                    if let Some(bytes) = self.record(id?)? {
                        f(&Entry::parse(&bytes)?.index()?);
                    }
                }
            }
            None => {
                for row in self.all_rows(None, false) {
                    let (_, bytes) = row?;
                    f(&Entry::parse(&bytes)?.index()?);
                }
            }
        }
        Ok(())
    }

    fn count(&self, filters: &[Filter], search: Option<&crm_core::storage::TextSearch>) -> Result<u64, StorageError> {
        // One equality and nothing else: the index entries are the answer.
        if filters.len() == 1
            && search.is_none()
            && let Some(driver @ Driver::Eq(..)) = Driver::choose(filters)
        {
            let mut count = 0;
            for id in self.driven_ids(&driver, None, false)? {
                id?;
                count += 1;
            }
            return Ok(count);
        }
        let mut count = 0;
        self.for_each_candidate(filters, |index| {
            if row_matches(|name| index.field(name), filters, search) {
                count += 1;
            }
        })?;
        Ok(count)
    }
}

/// The bound just past every key starting with a value's prefix, as `Included` (a lower
/// bound) or `Excluded` (an upper bound).
fn after_value(prefix: Vec<u8>, bound: fn(Vec<u8>) -> Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    keys::prefix_end(&prefix).map_or(Bound::Unbounded, bound)
}

#[async_trait]
impl Storage for SledStorage {
    fn name(&self) -> &str {
        "sled"
    }

    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        let bytes = self.shared.kind(kind)?.records.get(keys::record_key(tenant, id)).map_err(backend)?;
        bytes.map(|b| Entry::parse(&b)?.to_stored(kind, id)).transpose()
    }

    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let records = &self.shared.kind(kind)?.records;
        let mut found = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(bytes) = records.get(keys::record_key(tenant, id)).map_err(backend)? {
                found.push(Entry::parse(&bytes)?.to_stored(kind, id)?);
            }
        }
        Ok(found)
    }

    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        self.list_now(tenant, kind, query)
    }

    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        let shared = &*self.shared;
        let _shared_lock = shared.read_lock();
        let reader = Reader { trees: shared.kind(kind)?, tenant };
        let mut aggregation = Aggregation::new(query);
        reader.for_each_candidate(&query.filters, |index| aggregation.add(|name| index.field(name)))?;
        Ok(aggregation.finish())
    }

    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        read_counter(&self.shared.counters, tenant, key)
    }

    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.commit_now(tenant, &batch)?;
        self.acknowledge().await
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        let mut events = Vec::new();
        for item in self.shared.outbox.iter().take(limit) {
            let (_, value) = item.map_err(backend)?;
            events.push(serde_json::from_slice(&value).map_err(backend)?);
        }
        Ok(events)
    }

    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        {
            let _exclusive = self.shared.write_lock();
            let mut batch = sled::Batch::default();
            for id in ids {
                batch.remove(id.as_bytes());
            }
            self.shared.outbox.apply_batch(batch).map_err(backend)?;
        }
        self.acknowledge().await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.shared.meta.get(b"format_version").map(drop).map_err(backend)
    }
}
