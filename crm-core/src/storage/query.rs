//! The query vocabulary of the storage contract: indexed values, filters, sorts,
//! keyset cursors, pages and aggregates.

use std::{cmp::Ordering, collections::BTreeMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StorageError;

use crate::id::Id;

/// A value a record exposes for filtering, sorting, uniqueness or aggregation.
///
/// Values of one field always have the same variant (or `Null`); `Null` sorts first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum FieldValue {
    /// Absent.
    Null,
    /// A flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An exact decimal (money, quantities).
    Decimal(Decimal),
    /// Text; compared byte-wise.
    Text(String),
    /// A UUID (ids, references).
    Uuid(Uuid),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant.
    Timestamp(DateTime<Utc>),
}

impl FieldValue {
    /// The value as a decimal for sums (`Int` and `Decimal`); anything else counts as zero.
    pub fn as_decimal(&self) -> Decimal {
        match self {
            Self::Int(i) => Decimal::from(*i),
            Self::Decimal(d) => *d,
            _ => Decimal::ZERO,
        }
    }

    /// The first day of the month of a `Date` or `Timestamp`; `Null` otherwise.
    pub fn month(&self) -> Self {
        let date = match self {
            Self::Date(d) => *d,
            Self::Timestamp(t) => t.date_naive(),
            _ => return Self::Null,
        };
        date.with_day(1).map_or(Self::Null, Self::Date)
    }
}

macro_rules! field_value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                Self::$variant(v.into())
            }
        }
    )*};
}
field_value_from!(
    bool => Bool, i64 => Int, Decimal => Decimal, String => Text, &str => Text,
    Uuid => Uuid, NaiveDate => Date, DateTime<Utc> => Timestamp,
);

impl<E> From<Id<E>> for FieldValue {
    fn from(id: Id<E>) -> Self {
        Self::Uuid(id.uuid())
    }
}

impl<T: Into<FieldValue>> From<Option<T>> for FieldValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A comparison a filter applies to one field.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterOp {
    /// Equal to the value (`Null` matches absent fields).
    Eq(FieldValue),
    /// Equal to one of the values.
    In(Vec<FieldValue>),
    /// Greater than or equal (never matches `Null`).
    Gte(FieldValue),
    /// Strictly less than (never matches `Null`).
    Lt(FieldValue),
}

/// One condition on an indexed field; a query's filters all must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// The indexed field.
    pub field: &'static str,
    /// The condition.
    pub op: FilterOp,
}

impl Filter {
    /// `field = value`.
    pub fn eq(field: &'static str, value: impl Into<FieldValue>) -> Self {
        Self { field, op: FilterOp::Eq(value.into()) }
    }
    /// `field IN values`.
    pub fn one_of(field: &'static str, values: impl IntoIterator<Item = FieldValue>) -> Self {
        Self { field, op: FilterOp::In(values.into_iter().collect()) }
    }
    /// `field >= value`.
    pub fn gte(field: &'static str, value: impl Into<FieldValue>) -> Self {
        Self { field, op: FilterOp::Gte(value.into()) }
    }
    /// `field < value`.
    pub fn lt(field: &'static str, value: impl Into<FieldValue>) -> Self {
        Self { field, op: FilterOp::Lt(value.into()) }
    }

    /// Whether `value` (the record's value of this field) satisfies the filter.
    pub fn matches(&self, value: &FieldValue) -> bool {
        match &self.op {
            FilterOp::Eq(v) => value == v,
            FilterOp::In(vs) => vs.contains(value),
            FilterOp::Gte(v) => *value != FieldValue::Null && value >= v,
            FilterOp::Lt(v) => *value != FieldValue::Null && value < v,
        }
    }
}

/// Whether a row, whose indexed values `field` looks up by name, passes every filter
/// and the search: the one definition of a match for adapters that filter in code.
pub fn row_matches<'a>(
    field: impl Fn(&str) -> &'a FieldValue,
    filters: &[Filter],
    search: Option<&TextSearch>,
) -> bool {
    filters.iter().all(|f| f.matches(field(f.field)))
        && search.is_none_or(|s| s.fields.iter().any(|name| s.matches(field(name))))
}

/// A case-insensitive substring search over some text fields.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSearch {
    /// The fields searched; a record matches when any of them contains the term.
    pub fields: Vec<&'static str>,
    /// The term, already lower-cased by the caller.
    pub term: String,
}

impl TextSearch {
    /// Whether a field value contains the term, ignoring case.
    pub fn matches(&self, value: &FieldValue) -> bool {
        matches!(value, FieldValue::Text(t) if t.to_lowercase().contains(&self.term))
    }
}

/// The order of a listing: by one indexed field, ties broken by id, or by id alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sort {
    /// The field; `None` sorts by id, i.e. creation order (ids are UUID v7).
    pub field: Option<&'static str>,
    /// Newest/largest first.
    pub descending: bool,
}

/// A position in a listing: the sort value and id of the last row already returned.
/// The next page holds the rows strictly after it, so rows inserted meanwhile never make
/// a page repeat or skip a row that was there before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort field's value on the last row (`Null` when sorting by id).
    pub value: FieldValue,
    /// The last row's id.
    pub id: Uuid,
}

impl Cursor {
    /// An opaque, URL-safe token for this cursor.
    pub fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a token made by [`Cursor::encode`]; `None` for anything else.
    pub fn decode(token: &str) -> Option<Self> {
        let bytes = hex::decode(token).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Orders a row `(value, id)` against the cursor in the listing's direction:
    /// `Greater` means the row comes after the cursor.
    pub fn compare(&self, value: &FieldValue, id: Uuid, descending: bool) -> Ordering {
        let ord = value.cmp(&self.value).then(id.cmp(&self.id));
        if descending { ord.reverse() } else { ord }
    }
}

/// A listing request against one entity kind of one tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// Conditions that all must hold.
    pub filters: Vec<Filter>,
    /// An optional text search.
    pub search: Option<TextSearch>,
    /// The order.
    pub sort: Sort,
    /// Start after this position.
    pub after: Option<Cursor>,
    /// At most this many rows.
    pub limit: usize,
    /// Also count every matching row (ignoring `after` and `limit`).
    pub with_total: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self { filters: Vec::new(), search: None, sort: Sort::default(), after: None, limit: 50, with_total: false }
    }
}

impl ListQuery {
    /// A query with these filters and the default order and limit.
    pub fn filtered(filters: Vec<Filter>) -> Self {
        Self { filters, ..Self::default() }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The rows, in order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// How many rows match in all, when asked for.
    pub total: Option<u64>,
}

impl<T> Page<T> {
    /// Converts every row, keeping the position and total.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page { items: self.items.into_iter().map(f).collect::<Result<_, _>>()?, next: self.next, total: self.total })
    }
}

/// What an aggregate groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKey {
    /// The field's value.
    Field(&'static str),
    /// The month (first day) of a date or timestamp field.
    Month(&'static str),
}

/// A grouped count and sums over one entity kind, computed by the storage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AggregateQuery {
    /// Conditions that all must hold.
    pub filters: Vec<Filter>,
    /// Group keys; empty for one row over everything.
    pub group_by: Vec<GroupKey>,
    /// Numeric fields to sum per group.
    pub sums: Vec<&'static str>,
}

/// One group of an aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateRow {
    /// The group's key values, one per [`GroupKey`].
    pub key: Vec<FieldValue>,
    /// Rows in the group.
    pub count: u64,
    /// One sum per requested field, in order.
    pub sums: Vec<Decimal>,
}

/// Computes an [`AggregateQuery`] over rows fed one by one: for adapters that
/// aggregate in code rather than in their query language.
#[derive(Debug)]
pub struct Aggregation<'q> {
    query: &'q AggregateQuery,
    groups: BTreeMap<Vec<FieldValue>, (u64, Vec<Option<Decimal>>)>,
}

impl<'q> Aggregation<'q> {
    /// An empty aggregation for `query`.
    pub fn new(query: &'q AggregateQuery) -> Self {
        Self { query, groups: BTreeMap::new() }
    }

    /// Counts a row, whose indexed values `field` looks up by name, if it passes the
    /// query's filters.
    pub fn add<'a>(&mut self, field: impl Fn(&str) -> &'a FieldValue) {
        if !row_matches(&field, &self.query.filters, None) {
            return;
        }
        let key = self
            .query
            .group_by
            .iter()
            .map(|g| match g {
                GroupKey::Field(f) => field(f).clone(),
                GroupKey::Month(f) => field(f).month(),
            })
            .collect();
        let sums_len = self.query.sums.len();
        let (count, sums) = self.groups.entry(key).or_insert_with(|| (0, vec![Some(Decimal::ZERO); sums_len]));
        *count += 1;
        for (sum, name) in sums.iter_mut().zip(&self.query.sums) {
            *sum = sum.and_then(|s| s.checked_add(field(name).as_decimal()));
        }
    }

    /// The groups, ordered by key; a sum past what a decimal holds is an error naming
    /// its field, never a panic or a wrapped value.
    pub fn finish(self) -> Result<Vec<AggregateRow>, StorageError> {
        let names = &self.query.sums;
        self.groups
            .into_iter()
            .map(|(key, (count, sums))| {
                let sums = sums
                    .into_iter()
                    .zip(names)
                    .map(|(sum, name)| {
                        sum.ok_or_else(|| StorageError::Invalid(format!("the sum of `{name}` overflows a decimal")))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(AggregateRow { key, count, sums })
            })
            .collect()
    }
}
