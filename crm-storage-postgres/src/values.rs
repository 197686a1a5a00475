//! Indexed values as typed SQL parameters and back.

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::storage::{FieldValue, StorageError};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use crate::schema::{Column, ColumnType, Table};

/// One field's value converted to its column's type (`None` is SQL `NULL`).
#[derive(Clone, Debug)]
pub(crate) enum Typed {
    Bool(Option<bool>),
    Int(Option<i64>),
    Decimal(Option<Decimal>),
    Text(Option<String>),
    Uuid(Option<Uuid>),
    Date(Option<NaiveDate>),
    Timestamp(Option<DateTime<Utc>>),
}

fn mismatch(table: &Table, column: Column, value: &FieldValue) -> StorageError {
    StorageError::Invalid(format!(
        "field `{}` of {} is a {:?} column, got {value:?}",
        column.field, table.kind, column.ty
    ))
}

impl Typed {
    /// Converts a value for a column; integers and decimals convert into each other.
    pub(crate) fn new(table: &Table, column: Column, value: &FieldValue) -> Result<Self, StorageError> {
        use ColumnType as T;
        use FieldValue as V;
        Ok(match (column.ty, value) {
            (T::Bool, V::Null) => Self::Bool(None),
            (T::Int, V::Null) => Self::Int(None),
            (T::Decimal, V::Null) => Self::Decimal(None),
            (T::Text, V::Null) => Self::Text(None),
            (T::Uuid, V::Null) => Self::Uuid(None),
            (T::Date, V::Null) => Self::Date(None),
            (T::Timestamp, V::Null) => Self::Timestamp(None),
            (T::Bool, V::Bool(b)) => Self::Bool(Some(*b)),
            (T::Int, V::Int(i)) => Self::Int(Some(*i)),
            (T::Int, V::Decimal(d)) => Self::Decimal(Some(*d)),
            (T::Decimal, V::Decimal(d)) => Self::Decimal(Some(*d)),
            (T::Decimal, V::Int(i)) => Self::Decimal(Some(Decimal::from(*i))),
            (T::Text, V::Text(s)) => Self::Text(Some(s.clone())),
            (T::Uuid, V::Uuid(u)) => Self::Uuid(Some(*u)),
            (T::Date, V::Date(d)) => Self::Date(Some(*d)),
            (T::Timestamp, V::Timestamp(t)) => Self::Timestamp(Some(*t)),
            _ => return Err(mismatch(table, column, value)),
        })
    }

    /// Appends the value as a bound parameter.
    pub(crate) fn push(self, qb: &mut QueryBuilder<Postgres>) {
        match self {
            Self::Bool(v) => qb.push_bind(v),
            Self::Int(v) => qb.push_bind(v),
            Self::Decimal(v) => qb.push_bind(v),
            Self::Text(v) => qb.push_bind(v),
            Self::Uuid(v) => qb.push_bind(v),
            Self::Date(v) => qb.push_bind(v),
            Self::Timestamp(v) => qb.push_bind(v),
        };
    }
}

/// A whole column of values for a multi-row `UNNEST` insert.
pub(crate) enum TypedArray {
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
    Decimal(Vec<Option<Decimal>>),
    Text(Vec<Option<String>>),
    Uuid(Vec<Option<Uuid>>),
    Date(Vec<Option<NaiveDate>>),
    Timestamp(Vec<Option<DateTime<Utc>>>),
}

impl TypedArray {
    /// An empty array for a column type.
    pub(crate) fn new(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Bool => Self::Bool(Vec::with_capacity(capacity)),
            ColumnType::Int => Self::Int(Vec::with_capacity(capacity)),
            ColumnType::Decimal => Self::Decimal(Vec::with_capacity(capacity)),
            ColumnType::Text => Self::Text(Vec::with_capacity(capacity)),
            ColumnType::Uuid => Self::Uuid(Vec::with_capacity(capacity)),
            ColumnType::Date => Self::Date(Vec::with_capacity(capacity)),
            ColumnType::Timestamp => Self::Timestamp(Vec::with_capacity(capacity)),
        }
    }

    /// Appends a value converted by [`Typed::new`] for this column.
    pub(crate) fn add(&mut self, value: Typed) {
        match (self, value) {
            (Self::Bool(a), Typed::Bool(v)) => a.push(v),
            (Self::Int(a), Typed::Int(v)) => a.push(v),
            (Self::Int(a), Typed::Decimal(v)) => a.push(v.and_then(|d| i64::try_from(d).ok())),
            (Self::Decimal(a), Typed::Decimal(v)) => a.push(v),
            (Self::Text(a), Typed::Text(v)) => a.push(v),
            (Self::Uuid(a), Typed::Uuid(v)) => a.push(v),
            (Self::Date(a), Typed::Date(v)) => a.push(v),
            (Self::Timestamp(a), Typed::Timestamp(v)) => a.push(v),
            // `Typed::new` only builds values of the column's type.
            (a, _) => a.push_null(),
        }
    }

    fn push_null(&mut self) {
        match self {
            Self::Bool(a) => a.push(None),
            Self::Int(a) => a.push(None),
            Self::Decimal(a) => a.push(None),
            Self::Text(a) => a.push(None),
            Self::Uuid(a) => a.push(None),
            Self::Date(a) => a.push(None),
            Self::Timestamp(a) => a.push(None),
        }
    }

    /// Appends the array as a bound parameter.
    pub(crate) fn push(self, qb: &mut QueryBuilder<Postgres>) {
        match self {
            Self::Bool(v) => qb.push_bind(v),
            Self::Int(v) => qb.push_bind(v),
            Self::Decimal(v) => qb.push_bind(v),
            Self::Text(v) => qb.push_bind(v),
            Self::Uuid(v) => qb.push_bind(v),
            Self::Date(v) => qb.push_bind(v),
            Self::Timestamp(v) => qb.push_bind(v),
        };
    }
}

/// Reads a column of a row back as a field value.
pub(crate) fn read(row: &PgRow, index: usize, ty: ColumnType) -> Result<FieldValue, sqlx::Error> {
    Ok(match ty {
        ColumnType::Bool => row.try_get::<Option<bool>, _>(index)?.into(),
        ColumnType::Int => row.try_get::<Option<i64>, _>(index)?.into(),
        ColumnType::Decimal => row.try_get::<Option<Decimal>, _>(index)?.into(),
        ColumnType::Text => row.try_get::<Option<String>, _>(index)?.into(),
        ColumnType::Uuid => row.try_get::<Option<Uuid>, _>(index)?.into(),
        ColumnType::Date => row.try_get::<Option<NaiveDate>, _>(index)?.into(),
        ColumnType::Timestamp => row.try_get::<Option<DateTime<Utc>>, _>(index)?.into(),
    })
}
