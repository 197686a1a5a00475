//! Bringing a data directory of an older format up to [`FORMAT_VERSION`] at open.
//!
//! Format 1 → 2 adds the sorted index (`sorted/<kind>`): it is built from the index
//! data each record keeps in its entry ([`crate::entry`]), a bounded batch of records at
//! a time, and only then is the new version written. A crash before that leaves a
//! format 1 store, whose next open clears the partial index and builds it again (an
//! older build may have written to it in between, so nothing partial is trusted).

use crm_core::{
    TenantId,
    storage::{EntityKind, StorageError},
};
use uuid::Uuid;

use crate::{
    commit::sorted_keys,
    entry::{Entry, backend, corrupt},
    keys::FORMAT_VERSION_KEY,
    open::FORMAT_VERSION,
    shared::{records_tree_name, sorted_tree_name},
};

/// The oldest format this build migrates from.
pub(crate) const OLDEST_MIGRATED: u32 = 1;

/// Records whose sorted index entries are written per sled batch: bounds the memory a
/// migration holds, whatever the store's size.
const BATCH_RECORDS: usize = 1_000;

/// Migrates `db` from format `found` (in `OLDEST_MIGRATED..FORMAT_VERSION`) to
/// [`FORMAT_VERSION`] and writes the new version, durably.
pub(crate) fn migrate(db: &sled::Db, found: u32) -> Result<(), StorageError> {
    if found < 2 {
        build_sorted_index(db)?;
    }
    // Everything the migration wrote is on disk before the version says it is there.
    db.flush().map_err(backend)?;
    let meta = db.open_tree("meta").map_err(backend)?;
    meta.insert(FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes()).map_err(backend)?;
    db.flush().map_err(backend)?;
    Ok(())
}

/// Format 2: every record's sorted index entries, from its stored index data.
fn build_sorted_index(db: &sled::Db) -> Result<(), StorageError> {
    for &kind in EntityKind::ALL {
        let records = db.open_tree(records_tree_name(kind)).map_err(backend)?;
        let sorted = db.open_tree(sorted_tree_name(kind)).map_err(backend)?;
        sorted.clear().map_err(backend)?;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for item in records.iter() {
            let (key, value) = item.map_err(backend)?;
            let (tenant, id) = split_record_key(&key)
                .ok_or_else(|| corrupt(format_args!("a {kind} record key is not tenant ‖ id")))?;
            let index = Entry::parse(&value)?.index()?;
            for key in sorted_keys(tenant, kind, id, &index) {
                batch.insert(key, &[]);
            }
            pending += 1;
            if pending == BATCH_RECORDS {
                sorted.apply_batch(std::mem::take(&mut batch)).map_err(backend)?;
                pending = 0;
            }
        }
        sorted.apply_batch(batch).map_err(backend)?;
    }
    Ok(())
}

/// `tenant ‖ id` back into its parts.
fn split_record_key(key: &[u8]) -> Option<(TenantId, Uuid)> {
    if key.len() != 32 {
        return None;
    }
    Some((TenantId(Uuid::from_slice(&key[..16]).ok()?), Uuid::from_slice(&key[16..]).ok()?))
}
