//! Reading rows back into the contract's types.
//!
//! A value the contract cannot hold — a negative version, counter or count, an entity
//! kind this release does not know, an impossible sub-second instant — means the
//! database was written by something else than this adapter: it is a
//! [`StorageError::Backend`] naming the value and where it was found, never replaced by
//! a default.

use chrono::{DateTime, Timelike, Utc};
use crm_core::storage::{Document, EntityKind, StorageError, StoredRecord};
use sqlx::{Row, postgres::PgRow};
use uuid::Uuid;

use crate::error::{backend, map};

/// Builds a [`StoredRecord`] from `id, version, data` at positions 0..3.
pub(crate) fn stored(kind: EntityKind, row: &PgRow) -> Result<StoredRecord, StorageError> {
    let id: Uuid = row.try_get(0).map_err(map)?;
    Ok(StoredRecord {
        kind,
        id,
        version: version(kind, id, row.try_get(1).map_err(map)?)?,
        data: row.try_get::<sqlx::types::Json<Document>, _>(2).map_err(map)?.0,
    })
}

/// A record's `version` column; versions start at 1 and only grow.
pub(crate) fn version(kind: EntityKind, id: Uuid, value: i64) -> Result<u64, StorageError> {
    u64::try_from(value)
        .map_err(|_| backend(format!("{kind} {id} has version {value} in the database: versions are never negative")))
}

/// A `counters.value`; counters start at 0 and only move by compare-and-set.
pub(crate) fn counter(key: &str, value: i64) -> Result<u64, StorageError> {
    u64::try_from(value)
        .map_err(|_| backend(format!("counter `{key}` holds {value} in the database: counters are never negative")))
}

/// A `count(*)` of a listing or an aggregate group.
pub(crate) fn count(value: i64) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| backend(format!("PostgreSQL returned a row count of {value}")))
}

/// An entity kind stored as its name ([`EntityKind::as_str`]) in `column`.
pub(crate) fn entity_kind(column: &str, name: &str) -> Result<EntityKind, StorageError> {
    name.parse().map_err(|e: String| backend(format!("{column}: {e}")))
}

/// Restores the exact instant of a `timestamptz` (microseconds) from the nanoseconds
/// stored beside it (`0..2_000_000_000`, leap seconds included, as chrono counts them).
pub(crate) fn instant(column: &str, at: DateTime<Utc>, nanos: i32) -> Result<DateTime<Utc>, StorageError> {
    u32::try_from(nanos)
        .ok()
        .and_then(|n| at.with_nanosecond(n))
        .ok_or_else(|| backend(format!("{column} holds {nanos} nanoseconds, which no instant has")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the backend error `r` must be.
    fn refused<T: std::fmt::Debug>(r: Result<T, StorageError>) -> String {
        assert!(matches!(r, Err(StorageError::Backend { .. })), "{r:?}");
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_negative_version_is_an_error_naming_it() {
        let id = Uuid::nil();
        assert_eq!(version(EntityKind::Contact, id, 0).ok(), Some(0));
        assert_eq!(version(EntityKind::Contact, id, 7).ok(), Some(7));
        let m = refused(version(EntityKind::Contact, id, -1));
        assert!(m.contains("contact") && m.contains(&id.to_string()) && m.contains("-1"), "{m}");
        let m = refused(version(EntityKind::Invoice, id, i64::MIN));
        assert!(m.contains(&i64::MIN.to_string()), "{m}");
    }

    #[test]
    fn negative_counters_and_counts_are_errors_naming_them() {
        assert_eq!(counter("invoice:2026", 12).ok(), Some(12));
        let m = refused(counter("invoice:2026", -3));
        assert!(m.contains("invoice:2026") && m.contains("-3"), "{m}");
        assert_eq!(count(5).ok(), Some(5));
        assert!(refused(count(-5)).contains("-5"));
    }

    #[test]
    fn unknown_entity_kinds_are_errors_naming_them() {
        assert_eq!(entity_kind("record_refs.kind", "invoice").ok(), Some(EntityKind::Invoice));
        let m = refused(entity_kind("record_refs.kind", "spaceship"));
        assert!(m.contains("record_refs.kind") && m.contains("spaceship"), "{m}");
    }

    #[test]
    fn impossible_nanoseconds_are_errors_naming_them() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(instant("outbox", at, 123).ok().map(|t| t.nanosecond()), Some(123));
        for nanos in [-1, 2_000_000_000] {
            let m = refused(instant("outbox.occurred_at_nanos", at, nanos));
            assert!(m.contains("outbox.occurred_at_nanos") && m.contains(&nanos.to_string()), "{m}");
        }
    }
}
