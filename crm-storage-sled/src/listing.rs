//! Listings, counts and aggregates: which index a query walks, and the rows it keeps.
//!
//! A listing picks a [`Plan`]: walk the sorted index of an equality and the sort field
//! (`sorted/<kind>`, within the range the filters allow on the sort field), walk the
//! sort field's index (within that range), walk an equality's entries (already in id
//! order), collect a set's or range's entries and put them in id order or sort them, or
//! walk every record of the tenant in id order. Each candidate's stored index data is
//! then checked against every filter and the text search, so a plan only has to find a
//! superset. A walk stops at `limit + 1` rows (the extra one says a next page exists)
//! unless the rows must be sorted first. Text search has no index: it scans, bounded by
//! the limit.
//!
//! Every function here reads many keys in many sled calls; they run under the tenant's
//! read lock ([`crate::locks`]), so they never see half of a commit, and on tokio's
//! blocking pool ([`crate::store`]), since a listing may read every record of a kind.

use std::ops::Bound;

use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, Aggregation, Cursor, EntityKind, FieldValue, Filter, FilterOp, ListQuery, Page,
        StorageError, StoredRecord, TextSearch, row_matches,
    },
};
use sled::IVec;
use uuid::Uuid;

use crate::{
    entry::{Entry, IndexData, backend, corrupt},
    keys,
    names::Names,
    shared::{KindTrees, Shared},
};

/// One page of a listing, with its total if asked for.
pub(crate) fn list_blocking(
    shared: &Shared,
    tenant: TenantId,
    kind: EntityKind,
    query: &ListQuery,
) -> Result<Page<StoredRecord>, StorageError> {
    let reader = Reader { trees: shared.kind(kind)?, names: &shared.names, tenant };
    shared.locks.read(tenant, || reader.page(kind, query))
}

/// Whether a listing may read every candidate rather than stop after a page: a text
/// search or a total reads every candidate, and so does a sort over a filter's selection.
pub(crate) fn may_scan(kind: EntityKind, query: &ListQuery) -> bool {
    query.with_total || query.search.is_some() || matches!(Plan::choose(kind, query), Plan::SortSelection(_))
}

/// The groups of an aggregate query.
pub(crate) fn aggregate_blocking(
    shared: &Shared,
    tenant: TenantId,
    kind: EntityKind,
    query: &AggregateQuery,
) -> Result<Vec<AggregateRow>, StorageError> {
    let reader = Reader { trees: shared.kind(kind)?, names: &shared.names, tenant };
    let mut aggregation = Aggregation::new(query);
    shared.locks.read(tenant, || {
        reader.for_each_candidate(kind, &query.filters, |index| aggregation.add(|name| index.field(name)))
    })?;
    aggregation.finish()
}

/// A candidate row of a listing: its id, stored value and sort value (`None`: not read
/// yet, as the walk proved the match without decoding the index data; only the page's
/// last row needs it, for the cursor).
struct Row {
    id: Uuid,
    bytes: IVec,
    sort_value: Option<FieldValue>,
}

impl Row {
    /// The row's value of the listing's sort field.
    fn sort_value(&self, sort: Option<&str>, names: &Names) -> Result<FieldValue, StorageError> {
        match (&self.sort_value, sort) {
            (Some(value), _) => Ok(value.clone()),
            (None, Some(field)) => Ok(Entry::parse(&self.bytes)?.index(&names.reader())?.field(field).clone()),
            (None, None) => Ok(FieldValue::Null),
        }
    }
}

/// The keys between two bounds.
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The ids a walk yields, in the walk's order.
type Ids<'a> = Box<dyn Iterator<Item = Result<Uuid, StorageError>> + 'a>;

/// Candidate records by id, with their stored values (`None`: gone since indexed).
type Candidates<'a> = Box<dyn Iterator<Item = Result<(Uuid, Option<IVec>), StorageError>> + 'a>;

/// Reads one kind of one tenant.
struct Reader<'a> {
    trees: &'a KindTrees,
    names: &'a Names,
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
    /// Every record (a sort by a field that has no index entries).
    Everything,
}

impl<'q> Driver<'q> {
    /// The most selective index the filters allow: an equality, then a set, then a
    /// range. Fields without index entries ([`keys::is_indexed`]) drive nothing.
    fn choose(kind: EntityKind, filters: &'q [Filter]) -> Option<Self> {
        let indexed = |f: &&Filter| keys::is_indexed(kind, f.field);
        let eq = filters.iter().filter(indexed).find_map(|f| match &f.op {
            FilterOp::Eq(v) => Some(Self::Eq(f.field, v)),
            _ => None,
        });
        let set = || {
            filters.iter().filter(indexed).find_map(|f| match &f.op {
                FilterOp::In(vs) => Some(Self::In(f.field, vs)),
                _ => None,
            })
        };
        let range = || {
            let first = filters.iter().filter(indexed).find(|f| matches!(f.op, FilterOp::Gte(_) | FilterOp::Lt(_)))?;
            let (lower, upper) = range_bounds(filters, first.field);
            Some(Self::Range(first.field, lower, upper))
        };
        eq.or_else(set).or_else(range)
    }
}

/// How a listing finds its rows.
enum Plan<'q> {
    /// Walk the sorted index of an equality and the sort field: the records whose
    /// `filter` field equals `value`, in `sort` order (within the range the filters
    /// allow on it).
    SortedEq { filter: &'static str, value: &'q FieldValue, sort: &'static str },
    /// Walk the sort field's index (within the range its filters allow).
    SortIndex(&'static str),
    /// Collect what a filter's index selects, then sort it by the sort field.
    SortSelection(Driver<'q>),
    /// Walk what a filter's index selects, in id order.
    IdSelection(Driver<'q>),
    /// Walk every record in id order.
    All,
}

impl<'q> Plan<'q> {
    fn choose(kind: EntityKind, query: &'q ListQuery) -> Self {
        if let Some(sort) = query.sort.field {
            // An equality with a sorted index for this sort: a page costs what an id-order page does.
            let pairs = keys::sorted_pairs(kind);
            let sorted = query.filters.iter().find_map(|f| match &f.op {
                FilterOp::Eq(value) if pairs.contains(&(f.field, sort)) => {
                    Some(Self::SortedEq { filter: f.field, value, sort })
                }
                _ => None,
            });
            if let Some(plan) = sorted {
                return plan;
            }
        }
        match (query.sort.field, Driver::choose(kind, &query.filters)) {
            // Sorted by a field without index entries: the selection is sorted.
            (Some(field), driver) if !keys::is_indexed(kind, field) => {
                Self::SortSelection(driver.unwrap_or(Driver::Everything))
            }
            // Sorted by a field with no selective filter, or within a range of that field.
            (Some(field), None) => Self::SortIndex(field),
            (Some(field), Some(Driver::Range(range_field, ..))) if range_field == field => Self::SortIndex(field),
            // Sorted by the field an equality selects: its entries are in id order.
            (Some(field), Some(Driver::Eq(eq_field, value))) if eq_field == field => {
                Self::IdSelection(Driver::Eq(eq_field, value))
            }
            (Some(_), Some(driver)) => Self::SortSelection(driver),
            (None, Some(driver)) => Self::IdSelection(driver),
            (None, None) => Self::All,
        }
    }
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

/// The bound just past every key starting with a value's prefix, as `Included` (a lower
/// bound) or `Excluded` (an upper bound).
fn after_value(prefix: Vec<u8>, bound: fn(Vec<u8>) -> Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    keys::prefix_end(&prefix).map_or(Bound::Unbounded, bound)
}

/// The keys bounding the entries `prefix ‖ value ‖ id` with values in `(lower, upper)`.
fn value_bounds_under(
    prefix: &[u8],
    lower: Bound<&FieldValue>,
    upper: Bound<&FieldValue>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let at = |value: &FieldValue| {
        let mut key = prefix.to_vec();
        keys::encode_value(value, &mut key);
        key
    };
    let lower = match lower {
        Bound::Included(v) => Bound::Included(at(v)),
        Bound::Excluded(v) => after_value(at(v), Bound::Included),
        Bound::Unbounded => Bound::Included(prefix.to_vec()),
    };
    let upper = match upper {
        Bound::Included(v) => after_value(at(v), Bound::Excluded),
        Bound::Excluded(v) => Bound::Excluded(at(v)),
        Bound::Unbounded => keys::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
    };
    (lower, upper)
}

/// Which stored values are rows of a listing, and their sort values.
struct RowTest<'q> {
    query: &'q ListQuery,
    /// Under a lone equality, walked in its own entries (in id order, or in the sort
    /// order of its sorted index), the index entry already proves the match (the read
    /// lock keeps index and records in step): the index data need not be decoded.
    proven: bool,
}

impl<'q> RowTest<'q> {
    fn new(query: &'q ListQuery, plan: &Plan<'_>) -> Self {
        let lone_eq =
            query.search.is_none() && matches!(query.filters.as_slice(), [Filter { op: FilterOp::Eq(_), .. }]);
        let walks_its_entries = match plan {
            Plan::SortedEq { .. } => true,
            Plan::IdSelection(Driver::Eq(..)) => query.sort.field.is_none(),
            _ => false,
        };
        Self { query, proven: lone_eq && walks_its_entries }
    }

    fn row(&self, id: Uuid, bytes: IVec, names: &Names) -> Result<Option<Row>, StorageError> {
        if self.proven {
            return Ok(Some(Row { id, sort_value: None, bytes }));
        }
        let index = Entry::parse(&bytes)?.index(&names.reader())?;
        let query = self.query;
        if !row_matches(|name| index.field(name), &query.filters, query.search.as_ref()) {
            return Ok(None);
        }
        let sort_value = query.sort.field.map_or(FieldValue::Null, |f| index.field(f).clone());
        Ok(Some(Row { id, sort_value: Some(sort_value), bytes }))
    }
}

impl Reader<'_> {
    /// A listing's page: its total, its rows, and the cursor after the last one.
    fn page(&self, kind: EntityKind, query: &ListQuery) -> Result<Page<StoredRecord>, StorageError> {
        let (total, mut rows) = match self.first_page_with_total(kind, query)? {
            Some((total, rows)) => (Some(total), rows),
            None if query.with_total => {
                (Some(self.count(kind, &query.filters, query.search.as_ref())?), self.rows(kind, query)?)
            }
            None => (None, self.rows(kind, query)?),
        };
        let next = if rows.len() > query.limit {
            rows.truncate(query.limit);
            rows.last().map(|row| {
                let value = row.sort_value(query.sort.field, self.names)?;
                Ok::<_, StorageError>(Cursor { value, id: row.id })
            })
        } else {
            None
        };
        let next = next.transpose()?;
        let items =
            rows.iter().map(|row| Entry::parse(&row.bytes)?.to_stored(kind, row.id)).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next, total })
    }

    fn record(&self, id: Uuid) -> Result<Option<IVec>, StorageError> {
        self.trees.records.get(keys::record_key(self.tenant, id)).map_err(backend)
    }

    /// Ids in one field's index, in `(value, id)` order, between two index keys.
    fn index_ids(&self, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>, descending: bool) -> Ids<'_> {
        Self::ids_between(&self.trees.index, lower, upper, descending)
    }

    /// Ids at the end of the keys of `tree` between two keys, in key order (or reversed).
    fn ids_between<'t>(
        tree: &'t sled::Tree,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        descending: bool,
    ) -> Ids<'t> {
        let range = tree.range::<Vec<u8>, _>((lower, upper));
        let ids = move |item: sled::Result<(IVec, IVec)>| {
            let (key, _) = item.map_err(backend)?;
            keys::trailing_id(&key).ok_or_else(|| corrupt("an index key without a record id"))
        };
        if descending { Box::new(range.rev().map(ids)) } else { Box::new(range.map(ids)) }
    }

    /// The index keys bounding one field's entries with values in `(lower, upper)`;
    /// `None` when the store never named the field (it has no entries).
    fn value_bounds(&self, field: &str, lower: Bound<&FieldValue>, upper: Bound<&FieldValue>) -> Option<KeyRange> {
        let field = self.names.id(field)?;
        Some(value_bounds_under(&keys::index_field_prefix(self.tenant, field), lower, upper))
    }

    /// The ids a driver selects, in id order, strictly after `after` in the listing's direction.
    fn driven_ids(&self, driver: &Driver<'_>, after: Option<Uuid>, descending: bool) -> Result<Ids<'_>, StorageError> {
        if let Driver::Eq(field, value) = driver {
            return Ok(self.equal_ids(field, value, after, descending));
        }
        let mut ids = Vec::new();
        let mut collect = |bounds: Option<KeyRange>| -> Result<(), StorageError> {
            let Some((lower, upper)) = bounds else { return Ok(()) };
            for id in self.index_ids(lower, upper, false) {
                ids.push(id?);
            }
            Ok(())
        };
        match driver {
            Driver::In(field, values) => {
                for value in *values {
                    collect(self.value_bounds(field, Bound::Included(value), Bound::Included(value)))?;
                }
            }
            Driver::Range(field, lower, upper) => collect(self.value_bounds(field, *lower, *upper))?,
            Driver::Everything => {
                for row in self.all_rows(None, false) {
                    ids.push(row?.0);
                }
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

    /// The ids of one value's index entries (in id order), walked lazily.
    fn equal_ids(&self, field: &str, value: &FieldValue, after: Option<Uuid>, descending: bool) -> Ids<'_> {
        let Some(field) = self.names.id(field) else { return Box::new(std::iter::empty()) };
        let prefix = keys::index_value_prefix(self.tenant, field, value);
        let mut lower = Bound::Included(prefix.clone());
        let mut upper = keys::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        if let Some(id) = after {
            let mut at = prefix;
            at.extend_from_slice(id.as_bytes());
            if descending { upper = Bound::Excluded(at) } else { lower = Bound::Excluded(at) }
        }
        self.index_ids(lower, upper, descending)
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
    fn rows(&self, kind: EntityKind, query: &ListQuery) -> Result<Vec<Row>, StorageError> {
        let wanted = query.limit.saturating_add(1);
        let plan = Plan::choose(kind, query);
        let test = RowTest::new(query, &plan);
        let descending = query.sort.descending;
        match plan {
            Plan::SortedEq { filter, value, sort } => {
                let (Some(filter), Some(sort_id)) = (self.names.id(filter), self.names.id(sort)) else {
                    return Ok(Vec::new());
                };
                let prefix = keys::sorted_prefix(self.tenant, filter, value, sort_id);
                self.rows_by_sorted_walk(&self.trees.sorted, &prefix, query, sort, &test, wanted)
            }
            Plan::SortIndex(field) => self.rows_by_sort_index(query, field, &test, wanted),
            Plan::SortSelection(driver) => self.rows_sorted(&driver, query, &test, wanted),
            // Id order within a filter's selection.
            Plan::IdSelection(driver) => {
                let ids = self.driven_ids(&driver, query.after.as_ref().map(|c| c.id), descending)?;
                self.rows_of(ids, &test, wanted)
            }
            // Id order over everything (creation order: ids are UUID v7).
            Plan::All => self.rows_in_id_order(query, &test, wanted),
        }
    }

    /// A first page and its total from one walk, when the page's walk would visit the
    /// same candidates as the count (id order, no cursor): a search with a total then
    /// reads every record once, not twice. `None` for other listings.
    fn first_page_with_total(
        &self,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Option<(u64, Vec<Row>)>, StorageError> {
        if !query.with_total || query.after.is_some() {
            return Ok(None);
        }
        let descending = query.sort.descending;
        let plan = Plan::choose(kind, query);
        let test = RowTest::new(query, &plan);
        let candidates: Candidates<'_> = match plan {
            Plan::All => Box::new(self.all_rows(None, descending).map(|row| row.map(|(id, b)| (id, Some(b))))),
            Plan::IdSelection(driver) => Box::new(
                self.driven_ids(&driver, None, descending)?.map(|id| id.and_then(|id| Ok((id, self.record(id)?)))),
            ),
            Plan::SortedEq { .. } | Plan::SortIndex(_) | Plan::SortSelection(_) => return Ok(None),
        };
        let wanted = query.limit.saturating_add(1);
        let (mut total, mut rows) = (0, Vec::new());
        for candidate in candidates {
            if let (id, Some(bytes)) = candidate?
                && let Some(row) = test.row(id, bytes, self.names)?
            {
                total += 1;
                if rows.len() < wanted {
                    rows.push(row);
                }
            }
        }
        Ok(Some((total, rows)))
    }

    /// The rows among `ids`, in their order, until there are `limit`.
    fn rows_of(&self, ids: Ids<'_>, test: &RowTest<'_>, limit: usize) -> Result<Vec<Row>, StorageError> {
        let mut rows = Vec::new();
        for id in ids {
            let id = id?;
            if let Some(bytes) = self.record(id)?
                && let Some(row) = test.row(id, bytes, self.names)?
            {
                rows.push(row);
                if rows.len() >= limit {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// Walks the sort field's index from the cursor, within the filters' range of it.
    fn rows_by_sort_index(
        &self,
        query: &ListQuery,
        field: &str,
        test: &RowTest<'_>,
        wanted: usize,
    ) -> Result<Vec<Row>, StorageError> {
        let Some(field_id) = self.names.id(field) else { return Ok(Vec::new()) };
        let prefix = keys::index_field_prefix(self.tenant, field_id);
        self.rows_by_sorted_walk(&self.trees.index, &prefix, query, field, test, wanted)
    }

    /// Walks the entries `prefix ‖ sort value ‖ id` of `tree` in the listing's direction
    /// from the cursor, within the filters' range of the sort field.
    fn rows_by_sorted_walk(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
        query: &ListQuery,
        sort: &str,
        test: &RowTest<'_>,
        wanted: usize,
    ) -> Result<Vec<Row>, StorageError> {
        let descending = query.sort.descending;
        let (lower_value, upper_value) = range_bounds(&query.filters, sort);
        let (mut lower, mut upper) = value_bounds_under(prefix, lower_value, upper_value);
        if let Some(cursor) = &query.after {
            let mut at = prefix.to_vec();
            keys::encode_value(&cursor.value, &mut at);
            at.extend_from_slice(cursor.id.as_bytes());
            if descending { upper = Bound::Excluded(at) } else { lower = Bound::Excluded(at) }
        }
        self.rows_of(Self::ids_between(tree, lower, upper, descending), test, wanted)
    }

    /// Collects a filter's whole selection, sorts it by the sort field and keeps the
    /// rows after the cursor.
    fn rows_sorted(
        &self,
        driver: &Driver<'_>,
        query: &ListQuery,
        test: &RowTest<'_>,
        wanted: usize,
    ) -> Result<Vec<Row>, StorageError> {
        let descending = query.sort.descending;
        // A sorting plan's test is never `proven`: every row carries its sort value.
        let mut rows = self.rows_of(self.driven_ids(driver, None, false)?, test, usize::MAX)?;
        rows.sort_unstable_by(|a, b| {
            let ord = a.sort_value.cmp(&b.sort_value).then(a.id.cmp(&b.id));
            if descending { ord.reverse() } else { ord }
        });
        if let Some(cursor) = &query.after {
            rows.retain(|row| {
                cursor.compare(row.sort_value.as_ref().unwrap_or(&FieldValue::Null), row.id, descending).is_gt()
            });
        }
        rows.truncate(wanted);
        Ok(rows)
    }

    /// Walks every record of the tenant from the cursor, in id order.
    fn rows_in_id_order(&self, query: &ListQuery, test: &RowTest<'_>, wanted: usize) -> Result<Vec<Row>, StorageError> {
        let mut rows = Vec::new();
        for row in self.all_rows(query.after.as_ref().map(|c| c.id), query.sort.descending) {
            let (id, bytes) = row?;
            if let Some(row) = test.row(id, bytes, self.names)? {
                rows.push(row);
                if rows.len() >= wanted {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// Calls `f` with the index data of every row the filters' driver selects (or every
    /// row), unfiltered.
    fn for_each_candidate(
        &self,
        kind: EntityKind,
        filters: &[Filter],
        mut f: impl FnMut(&IndexData),
    ) -> Result<(), StorageError> {
        match Driver::choose(kind, filters) {
            Some(driver) => {
                for id in self.driven_ids(&driver, None, false)? {
                    if let Some(bytes) = self.record(id?)? {
                        f(&Entry::parse(&bytes)?.index(&self.names.reader())?);
                    }
                }
            }
            None => {
                for row in self.all_rows(None, false) {
                    let (_, bytes) = row?;
                    f(&Entry::parse(&bytes)?.index(&self.names.reader())?);
                }
            }
        }
        Ok(())
    }

    /// How many rows match the filters and the search, whatever the limit.
    fn count(&self, kind: EntityKind, filters: &[Filter], search: Option<&TextSearch>) -> Result<u64, StorageError> {
        // One equality on an indexed field and nothing else: the index entries are the answer.
        if let ([Filter { field, op: FilterOp::Eq(value) }], None) = (filters, search)
            && keys::is_indexed(kind, field)
        {
            let mut count = 0;
            for id in self.equal_ids(field, value, None, false) {
                id?;
                count += 1;
            }
            return Ok(count);
        }
        let mut count = 0;
        self.for_each_candidate(kind, filters, |index| {
            if row_matches(|name| index.field(name), filters, search) {
                count += 1;
            }
        })?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use crm_core::storage::Sort;

    use super::*;

    fn company_contacts(sort: Option<&'static str>) -> ListQuery {
        let company = FieldValue::Uuid(Uuid::from_u128(1));
        ListQuery {
            filters: vec![Filter::eq("company_id", company)],
            sort: Sort { field: sort, descending: true },
            ..ListQuery::default()
        }
    }

    #[test]
    fn an_equality_with_a_sort_walks_its_sorted_index_without_scanning() {
        let query = company_contacts(Some("created_at"));
        let plan = Plan::choose(EntityKind::Contact, &query);
        assert!(matches!(plan, Plan::SortedEq { filter: "company_id", sort: "created_at", .. }));
        assert!(!may_scan(EntityKind::Contact, &query));
        // The lone equality proves the match: no index data is decoded per row.
        assert!(RowTest::new(&query, &plan).proven);
    }

    #[test]
    fn fields_no_listing_reads_drive_no_walk() {
        // `lead_id` is declared without filters or sort: it has no index entries, so a
        // filter on it is checked row by row.
        let query = ListQuery {
            filters: vec![Filter::eq("lead_id", FieldValue::Uuid(Uuid::from_u128(1)))],
            ..ListQuery::default()
        };
        let plan = Plan::choose(EntityKind::Contact, &query);
        assert!(matches!(plan, Plan::All));
        assert!(!RowTest::new(&query, &plan).proven);
        let sorted = ListQuery { sort: Sort { field: Some("first_name"), descending: false }, ..query };
        assert!(matches!(Plan::choose(EntityKind::Contact, &sorted), Plan::SortSelection(Driver::Everything)));
    }

    #[test]
    fn a_pair_without_a_sorted_index_sorts_the_selection() {
        // A range on one field sorted by another: no sorted index pairs them.
        let query = ListQuery {
            filters: vec![Filter::gte("updated_at", FieldValue::Int(0))],
            ..company_contacts(Some("created_at"))
        };
        assert!(matches!(Plan::choose(EntityKind::Contact, &query), Plan::SortSelection(_)));
        assert!(may_scan(EntityKind::Contact, &query));
    }
}
