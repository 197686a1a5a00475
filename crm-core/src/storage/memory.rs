//! A complete, thread-safe in-memory storage: for tests, embedding and benchmarks.
//!
//! Every indexed field of every kind has an ordered index of `(value, id)`, so filtered
//! and sorted listings walk an index instead of scanning. Nothing survives the process.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    ops::Bound,
    sync::{Arc, PoisonError, RwLock},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AggregateQuery, AggregateRow, Aggregation, Cursor, EntityKind, FieldValue, FilterOp, ListQuery, OutboxEvent, Page,
    Record, StateView, Storage, StorageError, StoredRecord, StreamedEvent, UniqueKey, WriteBatch, WriteOp, check_batch,
};
use crate::id::TenantId;

/// The in-memory adapter. Cheap to create; clone the `Arc` to share it.
#[derive(Default)]
pub struct MemoryStorage {
    state: RwLock<State>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store behind an `Arc`, ready for [`crate::Crm::new`].
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }
}

#[derive(Default)]
struct State {
    tenants: HashMap<TenantId, TenantState>,
    /// Pending events, by id.
    outbox: BTreeMap<Uuid, OutboxEvent>,
    /// Acknowledged events, by position.
    acked: BTreeMap<u64, Acked>,
    /// Each tenant's positions, for its stream.
    streams: HashMap<TenantId, BTreeSet<u64>>,
    /// The last position given.
    position: u64,
}

struct Acked {
    event: OutboxEvent,
    /// Never before the previous acknowledgement's, so the oldest come first by position.
    at: DateTime<Utc>,
}

#[derive(Default)]
struct TenantState {
    kinds: HashMap<EntityKind, KindState>,
    counters: HashMap<String, u64>,
    referrers: HashMap<(EntityKind, Uuid), HashSet<(EntityKind, Uuid)>>,
}

#[derive(Default)]
struct KindState {
    records: BTreeMap<Uuid, Arc<Record>>,
    indexes: HashMap<&'static str, BTreeSet<(FieldValue, Uuid)>>,
    uniques: HashMap<UniqueKey, Uuid>,
}

impl StateView for TenantState {
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError> {
        Ok(self.kinds.get(&kind).and_then(|k| k.records.get(&id)).map(|r| r.version))
    }
    fn unique_owner(&self, kind: EntityKind, key: &UniqueKey) -> Result<Option<Uuid>, StorageError> {
        Ok(self.kinds.get(&kind).and_then(|k| k.uniques.get(key)).copied())
    }
    fn referrers(&self, kind: EntityKind, id: Uuid) -> Result<Vec<(EntityKind, Uuid)>, StorageError> {
        Ok(self.referrers.get(&(kind, id)).map(|s| s.iter().copied().collect()).unwrap_or_default())
    }
    fn counter(&self, key: &str) -> Result<u64, StorageError> {
        Ok(self.counters.get(key).copied().unwrap_or(0))
    }
}

impl TenantState {
    fn remove(&mut self, kind: EntityKind, id: Uuid) {
        let Some(ks) = self.kinds.get_mut(&kind) else { return };
        let Some(old) = ks.records.remove(&id) else { return };
        for (field, value) in &old.fields {
            if let Some(index) = ks.indexes.get_mut(field) {
                index.remove(&(value.clone(), id));
            }
        }
        for key in &old.uniques {
            ks.uniques.remove(key);
        }
        for target in &old.references {
            if let Some(set) = self.referrers.get_mut(&(target.kind, target.id)) {
                set.remove(&(kind, id));
                if set.is_empty() {
                    self.referrers.remove(&(target.kind, target.id));
                }
            }
        }
    }

    fn put(&mut self, record: Record) {
        let (kind, id) = (record.kind, record.id);
        self.remove(kind, id);
        for target in &record.references {
            self.referrers.entry((target.kind, target.id)).or_default().insert((kind, id));
        }
        let ks = self.kinds.entry(kind).or_default();
        for (field, value) in &record.fields {
            ks.indexes.entry(field).or_default().insert((value.clone(), id));
        }
        for key in &record.uniques {
            ks.uniques.insert(key.clone(), id);
        }
        ks.records.insert(id, Arc::new(record));
    }
}

impl KindState {
    /// Ids of the rows an equality filter selects, if the query has one (the smallest).
    fn eq_candidates(&self, query_filters: &[super::Filter]) -> Option<Vec<Uuid>> {
        query_filters
            .iter()
            .filter_map(|f| match &f.op {
                FilterOp::Eq(v) => Some((f.field, std::slice::from_ref(v))),
                FilterOp::In(vs) => Some((f.field, vs.as_slice())),
                _ => None,
            })
            .map(|(field, values)| {
                let Some(index) = self.indexes.get(field) else { return Vec::new() };
                values
                    .iter()
                    .flat_map(|v| index.range((v.clone(), Uuid::nil())..=(v.clone(), Uuid::max())).map(|(_, id)| *id))
                    .collect::<Vec<_>>()
            })
            .min_by_key(Vec::len)
    }

    /// Ids of an index in `(value, id)` order, strictly after `after` in the listing's
    /// direction, optionally restricted to one value.
    fn walk<'a>(
        index: &'a BTreeSet<(FieldValue, Uuid)>,
        only: Option<&FieldValue>,
        after: Option<(FieldValue, Uuid)>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = Uuid> + 'a> {
        let (mut lower, mut upper) = match only {
            Some(v) => (Bound::Included((v.clone(), Uuid::nil())), Bound::Included((v.clone(), Uuid::max()))),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        match (after, descending) {
            (Some(pos), false) => lower = Bound::Excluded(pos),
            (Some(pos), true) => upper = Bound::Excluded(pos),
            (None, _) => {}
        }
        let range = index.range((lower, upper)).map(|(_, id)| *id);
        if descending { Box::new(range.rev()) } else { Box::new(range) }
    }

    /// The first single-value equality filter, whose posting list drives the walk.
    fn first_eq(filters: &[super::Filter]) -> Option<(&'static str, &FieldValue)> {
        filters.iter().find_map(|f| match &f.op {
            FilterOp::Eq(v) => Some((f.field, v)),
            _ => None,
        })
    }

    fn list(&self, query: &ListQuery) -> Page<StoredRecord> {
        let sort = query.sort;
        let wanted = query.limit.saturating_add(1);
        let matches = |r: &&Arc<Record>| r.matches(&query.filters, query.search.as_ref());
        let total = query.with_total.then(|| self.count(&query.filters, query.search.as_ref()));
        let mut rows: Vec<&Arc<Record>> = match (sort.field, Self::first_eq(&query.filters)) {
            // An equality posting list is already in id order: walk it lazily.
            (None, Some((field, value))) => match self.indexes.get(field) {
                Some(index) => {
                    let after = query.after.as_ref().map(|c| (value.clone(), c.id));
                    Self::walk(index, Some(value), after, sort.descending)
                        .filter_map(|id| self.records.get(&id))
                        .filter(matches)
                        .take(wanted)
                        .collect()
                }
                None => Vec::new(),
            },
            // Sorted by a field within an equality filter: the rows after the cursor,
            // of which only the page's are put in order (a selection, then a sort of
            // the page), so a page costs one pass over the posting list.
            (Some(_), Some(_)) => {
                let field = sort.field.unwrap_or_default();
                let order = |(va, a): &(&FieldValue, &Arc<Record>), (vb, b): &(&FieldValue, &Arc<Record>)| {
                    let ord = va.cmp(vb).then(a.id.cmp(&b.id));
                    if sort.descending { ord.reverse() } else { ord }
                };
                let mut candidates: Vec<(&FieldValue, &Arc<Record>)> = self
                    .eq_candidates(&query.filters)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|id| self.records.get(id))
                    .map(|r| (r.field(field), r))
                    .filter(|(v, r)| query.after.as_ref().is_none_or(|c| c.compare(v, r.id, sort.descending).is_gt()))
                    .filter(|(_, r)| matches(r))
                    .collect();
                if candidates.len() > wanted {
                    candidates.select_nth_unstable_by(wanted - 1, order);
                    candidates.truncate(wanted);
                }
                candidates.sort_unstable_by(order);
                candidates.into_iter().map(|(_, r)| r).collect()
            }
            // No equality filter: walk the sort order (the id map or the field's index).
            (None, None) => {
                let lower = query.after.as_ref().map_or(Bound::Unbounded, |c| Bound::Excluded(c.id));
                let ids: Box<dyn Iterator<Item = (&Uuid, &Arc<Record>)>> = if sort.descending {
                    Box::new(self.records.range((Bound::Unbounded, lower)).rev())
                } else {
                    Box::new(self.records.range((lower, Bound::Unbounded)))
                };
                ids.map(|(_, r)| r).filter(matches).take(wanted).collect()
            }
            (Some(field), None) => match self.indexes.get(field) {
                Some(index) => {
                    let after = query.after.as_ref().map(|c| (c.value.clone(), c.id));
                    Self::walk(index, None, after, sort.descending)
                        .filter_map(|id| self.records.get(&id))
                        .filter(matches)
                        .take(wanted)
                        .collect()
                }
                None => Vec::new(),
            },
        };
        let next = if rows.len() > query.limit {
            rows.truncate(query.limit);
            rows.last().map(|r| Cursor { value: r.sort_value(&sort), id: r.id })
        } else {
            None
        };
        Page { items: rows.iter().map(|r| r.to_stored()).collect(), next, total }
    }

    fn count(&self, filters: &[super::Filter], search: Option<&super::TextSearch>) -> u64 {
        let matching = |r: &&Arc<Record>| r.matches(filters, search);
        match self.eq_candidates(filters) {
            Some(ids) => ids.iter().filter_map(|id| self.records.get(id)).filter(matching).count() as u64,
            None => self.records.values().filter(matching).count() as u64,
        }
    }

    fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>, StorageError> {
        let rows: Box<dyn Iterator<Item = &Arc<Record>>> = match self.eq_candidates(&query.filters) {
            Some(ids) => Box::new(ids.into_iter().filter_map(|id| self.records.get(&id))),
            None => Box::new(self.records.values()),
        };
        let mut aggregation = Aggregation::new(query);
        for record in rows {
            aggregation.add(|name| record.field(name));
        }
        aggregation.finish()
    }
}

impl MemoryStorage {
    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn read_kind<T: Default>(&self, tenant: TenantId, kind: EntityKind, f: impl FnOnce(&KindState) -> T) -> T {
        self.read(|s| s.tenants.get(&tenant).and_then(|t| t.kinds.get(&kind)).map(f).unwrap_or_default())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn name(&self) -> &str {
        "memory"
    }

    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        Ok(self.read_kind(tenant, kind, |k| k.records.get(&id).map(|r| r.to_stored())))
    }

    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        Ok(self.read_kind(tenant, kind, |k| {
            ids.iter().filter_map(|id| k.records.get(id)).map(|r| r.to_stored()).collect()
        }))
    }

    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        let empty = Page { items: Vec::new(), next: None, total: query.with_total.then_some(0) };
        Ok(self.read(|s| s.tenants.get(&tenant).and_then(|t| t.kinds.get(&kind)).map_or(empty, |k| k.list(query))))
    }

    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.read(|s| {
            s.tenants.get(&tenant).and_then(|t| t.kinds.get(&kind)).map_or(Ok(Vec::new()), |k| k.aggregate(query))
        })
    }

    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        Ok(self.read(|s| s.tenants.get(&tenant).and_then(|t| t.counters.get(key)).copied().unwrap_or(0)))
    }

    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let ts = state.tenants.entry(tenant).or_default();
        check_batch(ts, tenant.0, &batch)?;
        for op in batch.ops {
            match op {
                WriteOp::Insert(record) | WriteOp::Update { record, .. } => ts.put(record),
                WriteOp::Delete { kind, id, .. } => ts.remove(kind, id),
                WriteOp::Check { .. } => {}
            }
        }
        for counter in batch.counters {
            ts.counters.insert(counter.key, counter.new);
        }
        for event in batch.events {
            state.outbox.insert(event.id, event);
        }
        Ok(())
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        Ok(self.read(|s| s.outbox.values().take(limit).cloned().collect()))
    }

    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let last_at = state.acked.last_key_value().map(|(_, a)| a.at);
        let at = last_at.map_or_else(Utc::now, |last| last.max(Utc::now()));
        for id in ids {
            let Some(event) = state.outbox.remove(id) else { continue };
            state.position += 1;
            let position = state.position;
            state.streams.entry(event.tenant_id).or_default().insert(position);
            state.acked.insert(position, Acked { event, at });
        }
        Ok(())
    }

    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        Ok(self.read(|s| {
            let Some(positions) = s.streams.get(&tenant) else { return Vec::new() };
            positions
                .range((Bound::Excluded(after), Bound::Unbounded))
                .take(limit)
                .filter_map(|&position| {
                    s.acked.get(&position).map(|a| StreamedEvent { position, event: a.event.clone() })
                })
                .collect()
        }))
    }

    async fn outbox_position(&self) -> Result<u64, StorageError> {
        Ok(self.read(|s| s.position))
    }

    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let old: Vec<u64> =
            state.acked.iter().take(limit).take_while(|(_, a)| a.at < acked_before).map(|(&p, _)| p).collect();
        for position in &old {
            if let Some(acked) = state.acked.remove(position)
                && let Some(stream) = state.streams.get_mut(&acked.event.tenant_id)
            {
                stream.remove(position);
            }
        }
        Ok(old.len())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
