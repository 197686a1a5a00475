//! Indexed values as typed SQL parameters and back.

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::storage::{Document, FieldValue, Record, StorageError};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{
    error::backend,
    schema::{Column, ColumnType, Table},
};

/// A record's document as a `jsonb` parameter: the one place a document is bound.
pub(crate) fn document(record: &Record) -> sqlx::types::Json<&Document> {
    sqlx::types::Json(&record.data)
}

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

/// A decimal without fraction within `i64`'s range, as an integer.
fn whole(d: Decimal) -> Option<i64> {
    if d.fract().is_zero() { i64::try_from(d).ok() } else { None }
}

impl Typed {
    /// Converts a value for a column, to compare the column with: integers and decimals
    /// convert into each other (a decimal for an integer column stays a decimal unless
    /// it is a whole number, so comparisons stay exact).
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
            (T::Int, V::Decimal(d)) => whole(*d).map_or(Self::Decimal(Some(*d)), |i| Self::Int(Some(i))),
            (T::Decimal, V::Decimal(d)) => Self::Decimal(Some(*d)),
            (T::Decimal, V::Int(i)) => Self::Decimal(Some(Decimal::from(*i))),
            (T::Text, V::Text(s)) => Self::Text(Some(s.clone())),
            (T::Uuid, V::Uuid(u)) => Self::Uuid(Some(*u)),
            (T::Date, V::Date(d)) => Self::Date(Some(*d)),
            (T::Timestamp, V::Timestamp(t)) => Self::Timestamp(Some(*t)),
            _ => return Err(mismatch(table, column, value)),
        })
    }

    /// Converts a value to store in a column: as [`Typed::new`], but an integer column
    /// takes whole numbers only (PostgreSQL would round the others).
    pub(crate) fn for_storage(table: &Table, column: Column, value: &FieldValue) -> Result<Self, StorageError> {
        match Self::new(table, column, value)? {
            Self::Decimal(Some(_)) if column.ty == ColumnType::Int => Err(mismatch(table, column, value)),
            typed => Ok(typed),
        }
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

    /// Appends a value of the array's type: one [`Typed::for_storage`] made for its column,
    /// or [`Typed::new`] made and found to be of the column's type.
    pub(crate) fn add(&mut self, value: Typed) -> Result<(), StorageError> {
        match (self, value) {
            (Self::Bool(a), Typed::Bool(v)) => a.push(v),
            (Self::Int(a), Typed::Int(v)) => a.push(v),
            (Self::Decimal(a), Typed::Decimal(v)) => a.push(v),
            (Self::Text(a), Typed::Text(v)) => a.push(v),
            (Self::Uuid(a), Typed::Uuid(v)) => a.push(v),
            (Self::Date(a), Typed::Date(v)) => a.push(v),
            (Self::Timestamp(a), Typed::Timestamp(v)) => a.push(v),
            (_, v) => return Err(backend(format!("{v:?} does not belong in an array of another column type"))),
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use crm_core::storage::EntityKind;

    use super::*;
    use crate::schema;

    fn score() -> (&'static Table, Column) {
        let table = schema::table(EntityKind::Lead).map(|t| (t, t.column("score")));
        let Some((table, Some(column))) = table else { unreachable!("leads have a score column") };
        (table, column)
    }

    #[test]
    fn an_integer_column_stores_whole_numbers_only() {
        let (table, column) = score();
        let whole = Typed::for_storage(table, column, &FieldValue::Decimal(Decimal::new(30, 1)));
        assert!(matches!(whole, Ok(Typed::Int(Some(3)))), "{whole:?}");
        for refused in [Decimal::new(25, 1), Decimal::MAX] {
            let err = Typed::for_storage(table, column, &FieldValue::Decimal(refused)).err().map(|e| e.to_string());
            let named = err.as_deref().is_some_and(|m| m.contains("score") && m.contains(&refused.to_string()));
            assert!(named, "{refused}: {err:?}");
        }
        // Comparisons keep the fraction.
        let compared = Typed::new(table, column, &FieldValue::Decimal(Decimal::new(25, 1)));
        assert!(matches!(compared, Ok(Typed::Decimal(Some(d))) if d == Decimal::new(25, 1)), "{compared:?}");
    }

    #[test]
    fn an_array_refuses_values_of_another_type() {
        let mut ints = TypedArray::new(ColumnType::Int, 2);
        assert!(ints.add(Typed::Int(Some(1))).is_ok());
        let err = ints.add(Typed::Decimal(Some(Decimal::new(25, 1)))).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|m| m.contains("2.5")), "{err:?}");
        assert!(matches!(ints, TypedArray::Int(v) if v == [Some(1)]));
    }
}
