//! Listing and aggregate SQL, built from the contract's filters, sorts and cursors over
//! the typed columns of [`crate::schema`].

use crm_core::storage::{
    AggregateQuery, AggregateRow, Cursor, EntityKind, FieldValue, Filter, FilterOp, GroupKey, ListQuery, Page,
    StorageError, StoredRecord, TextSearch,
};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{
    decode::{self, stored},
    error::map,
    schema::{ColumnType, Table},
    values::{Typed, TypedArray, read},
};

fn unknown_field(table: &Table, field: &str) -> StorageError {
    StorageError::Invalid(format!("`{field}` is not an indexed field of {}", table.kind))
}

fn column(table: &Table, field: &str) -> Result<crate::schema::Column, StorageError> {
    table.column(field).ok_or_else(|| unknown_field(table, field))
}

/// `"<column>"` — column names come from [`crate::schema`], never from input.
fn ident(field: &str) -> String {
    format!("\"{field}\"")
}

/// Appends ` AND <condition>` for every filter.
fn push_filters(qb: &mut QueryBuilder<Postgres>, table: &Table, filters: &[Filter]) -> Result<(), StorageError> {
    for filter in filters {
        let col = column(table, filter.field)?;
        let name = ident(col.field);
        qb.push(" AND ");
        match &filter.op {
            FilterOp::Eq(FieldValue::Null) => {
                qb.push(format!("{name} IS NULL"));
            }
            FilterOp::Eq(v) => {
                qb.push(format!("{name} = "));
                Typed::new(table, col, v)?.push(qb);
            }
            FilterOp::In(values) => {
                let with_null = values.contains(&FieldValue::Null);
                let mut array = TypedArray::new(col.ty, values.len());
                let mut any = false;
                for v in values.iter().filter(|v| **v != FieldValue::Null) {
                    match Typed::new(table, col, v)? {
                        // A decimal with a fraction equals no integer.
                        Typed::Decimal(_) if col.ty == ColumnType::Int => {}
                        typed => {
                            array.add(typed)?;
                            any = true;
                        }
                    }
                }
                qb.push("(");
                if any {
                    qb.push(format!("{name} = ANY("));
                    array.push(qb);
                    qb.push(")");
                } else {
                    qb.push("FALSE");
                }
                if with_null {
                    qb.push(format!(" OR {name} IS NULL"));
                }
                qb.push(")");
            }
            // `Null` is the smallest value: everything non-null is >= it, nothing is < it.
            FilterOp::Gte(FieldValue::Null) => {
                qb.push(format!("{name} IS NOT NULL"));
            }
            FilterOp::Lt(FieldValue::Null) => {
                qb.push("FALSE");
            }
            FilterOp::Gte(v) => {
                qb.push(format!("{name} >= "));
                Typed::new(table, col, v)?.push(qb);
            }
            FilterOp::Lt(v) => {
                qb.push(format!("{name} < "));
                Typed::new(table, col, v)?.push(qb);
            }
        }
    }
    Ok(())
}

/// Escapes `LIKE` wildcards in a search term.
fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for ch in term.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// Appends ` AND (<any searched field contains the term>)`; the expression matches the
/// trigram indexes of the schema.
fn push_search(
    qb: &mut QueryBuilder<Postgres>,
    table: &Table,
    search: Option<&TextSearch>,
) -> Result<(), StorageError> {
    let Some(search) = search else { return Ok(()) };
    qb.push(" AND (");
    if search.fields.is_empty() {
        qb.push("FALSE");
    }
    let pattern = like_pattern(&search.term);
    for (i, field) in search.fields.iter().enumerate() {
        let col = column(table, field)?;
        if col.ty != ColumnType::Text {
            return Err(StorageError::Invalid(format!("`{field}` of {} is not a text field", table.kind)));
        }
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push(format!("lower({} COLLATE \"default\") LIKE ", ident(col.field)));
        qb.push_bind(pattern.clone());
    }
    qb.push(")");
    Ok(())
}

/// Appends the keyset condition: rows strictly after the cursor in the listing's order,
/// where `NULL` sorts first ascending (and last descending).
fn push_after(
    qb: &mut QueryBuilder<Postgres>,
    table: &Table,
    sort_col: Option<crate::schema::Column>,
    cursor: &Cursor,
    descending: bool,
) -> Result<(), StorageError> {
    let cmp = if descending { "<" } else { ">" };
    qb.push(" AND ");
    match sort_col {
        None => {
            qb.push(format!("id {cmp} "));
            qb.push_bind(cursor.id);
        }
        Some(col) => {
            let name = ident(col.field);
            match (&cursor.value, descending) {
                (FieldValue::Null, false) => {
                    qb.push(format!("(({name} IS NULL AND id > "));
                    qb.push_bind(cursor.id);
                    qb.push(format!(") OR {name} IS NOT NULL)"));
                }
                (FieldValue::Null, true) => {
                    qb.push(format!("({name} IS NULL AND id < "));
                    qb.push_bind(cursor.id);
                    qb.push(")");
                }
                (v, false) => {
                    qb.push(format!("({name}, id) > ("));
                    Typed::new(table, col, v)?.push(qb);
                    qb.push(", ");
                    qb.push_bind(cursor.id);
                    qb.push(")");
                }
                (v, true) => {
                    qb.push(format!("(({name}, id) < ("));
                    Typed::new(table, col, v)?.push(qb);
                    qb.push(", ");
                    qb.push_bind(cursor.id);
                    qb.push(format!(") OR {name} IS NULL)"));
                }
            }
        }
    }
    Ok(())
}

/// One page of a listing.
pub(crate) async fn list(
    pool: &PgPool,
    tenant: Uuid,
    kind: EntityKind,
    table: &Table,
    query: &ListQuery,
) -> Result<Page<StoredRecord>, StorageError> {
    let sort_col = query.sort.field.map(|f| column(table, f)).transpose()?;
    let mut qb = QueryBuilder::<Postgres>::new("SELECT id, version, data");
    if let Some(col) = sort_col {
        qb.push(format!(", {}", ident(col.field)));
    }
    qb.push(format!(" FROM {} WHERE tenant_id = ", table.name));
    qb.push_bind(tenant);
    push_filters(&mut qb, table, &query.filters)?;
    push_search(&mut qb, table, query.search.as_ref())?;
    if let Some(cursor) = &query.after {
        push_after(&mut qb, table, sort_col, cursor, query.sort.descending)?;
    }
    let dir = if query.sort.descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
    let id_dir = if query.sort.descending { "DESC" } else { "ASC" };
    qb.push(" ORDER BY ");
    if let Some(col) = sort_col {
        qb.push(format!("{} {dir}, ", ident(col.field)));
    }
    qb.push(format!("id {id_dir} LIMIT "));
    let wanted = i64::try_from(query.limit.saturating_add(1)).unwrap_or(i64::MAX);
    qb.push_bind(wanted);

    let rows = qb.build().fetch_all(pool).await.map_err(map)?;
    let mut items = Vec::with_capacity(rows.len().min(query.limit));
    let mut next = None;
    for (i, row) in rows.iter().enumerate() {
        if i == query.limit {
            break;
        }
        items.push(stored(kind, row)?);
        if i + 1 == query.limit && rows.len() > query.limit {
            let value = match sort_col {
                Some(col) => read(row, 3, col.ty).map_err(map)?,
                None => FieldValue::Null,
            };
            next = Some(Cursor { value, id: row.try_get("id").map_err(map)? });
        }
    }
    let total = if query.with_total {
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT count(*) FROM {} WHERE tenant_id = ", table.name));
        qb.push_bind(tenant);
        push_filters(&mut qb, table, &query.filters)?;
        push_search(&mut qb, table, query.search.as_ref())?;
        let count: i64 = qb.build_query_scalar().fetch_one(pool).await.map_err(map)?;
        Some(decode::count(count)?)
    } else {
        None
    };
    Ok(Page { items, next, total })
}

/// Grouped counts and sums, computed by PostgreSQL.
pub(crate) async fn aggregate(
    pool: &PgPool,
    tenant: Uuid,
    table: &Table,
    query: &AggregateQuery,
) -> Result<Vec<AggregateRow>, StorageError> {
    let mut keys = Vec::with_capacity(query.group_by.len());
    for group in &query.group_by {
        keys.push(match *group {
            GroupKey::Field(f) => {
                let col = column(table, f)?;
                (ident(col.field), col.ty)
            }
            GroupKey::Month(f) => {
                let col = column(table, f)?;
                let expr = match col.ty {
                    ColumnType::Date => format!("date_trunc('month', {})::date", ident(col.field)),
                    ColumnType::Timestamp => {
                        format!("date_trunc('month', {} AT TIME ZONE 'UTC')::date", ident(col.field))
                    }
                    _ => "NULL::date".to_owned(),
                };
                (expr, ColumnType::Date)
            }
        });
    }
    let mut select = String::from("SELECT ");
    for (expr, _) in &keys {
        select.push_str(expr);
        select.push_str(", ");
    }
    select.push_str("count(*)");
    for field in &query.sums {
        let col = column(table, field)?;
        match col.ty {
            ColumnType::Int | ColumnType::Decimal => {
                select.push_str(&format!(", coalesce(sum({}), 0)::numeric", ident(col.field)));
            }
            // The contract sums anything else as zero.
            _ => select.push_str(", 0::numeric"),
        }
    }
    let mut qb = QueryBuilder::<Postgres>::new(select);
    qb.push(format!(" FROM {} WHERE tenant_id = ", table.name));
    qb.push_bind(tenant);
    push_filters(&mut qb, table, &query.filters)?;
    if keys.is_empty() {
        qb.push(" HAVING count(*) > 0");
    } else {
        let positions: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
        qb.push(format!(" GROUP BY {}", positions.join(", ")));
        let order: Vec<String> = (1..=keys.len()).map(|i| format!("{i} ASC NULLS FIRST")).collect();
        qb.push(format!(" ORDER BY {}", order.join(", ")));
    }
    let rows = qb.build().fetch_all(pool).await.map_err(map)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut key = Vec::with_capacity(keys.len());
        for (i, (_, ty)) in keys.iter().enumerate() {
            key.push(read(&row, i, *ty).map_err(map)?);
        }
        let count: i64 = row.try_get(keys.len()).map_err(map)?;
        let mut sums = Vec::with_capacity(query.sums.len());
        for i in 0..query.sums.len() {
            sums.push(row.try_get::<Decimal, _>(keys.len() + 1 + i).map_err(map)?);
        }
        out.push(AggregateRow { key, count: decode::count(count)?, sums });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crm_core::storage::EntityKind;
    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn a_fraction_in_a_list_matches_no_integer() {
        let Some(leads) = crate::schema::table(EntityKind::Lead) else { unreachable!("leads have a table") };
        let sql = |values: Vec<FieldValue>| {
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_filters(&mut qb, leads, &[Filter::one_of("score", values)]).map(|()| qb.into_string())
        };
        let fraction = sql(vec![FieldValue::Decimal(Decimal::new(25, 1))]);
        assert_eq!(fraction.ok().as_deref(), Some(" AND (FALSE)"));
        let whole = sql(vec![FieldValue::Decimal(Decimal::new(20, 1)), FieldValue::Int(3)]);
        assert_eq!(whole.ok().as_deref(), Some(" AND (\"score\" = ANY($1))"));
    }
}
