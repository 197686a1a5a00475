//! Reading rows back into the contract's types.

use std::sync::Arc;

use crm_core::storage::{EntityKind, StoredRecord};
use sqlx::{Row, postgres::PgRow};

/// Builds a [`StoredRecord`] from `id, version, data` at positions 0..3.
pub(crate) fn stored(kind: EntityKind, row: &PgRow) -> Result<StoredRecord, sqlx::Error> {
    let version: i64 = row.try_get(1)?;
    Ok(StoredRecord {
        kind,
        id: row.try_get(0)?,
        version: u64::try_from(version).unwrap_or(0),
        data: Arc::new(row.try_get::<serde_json::Value, _>(2)?),
    })
}
