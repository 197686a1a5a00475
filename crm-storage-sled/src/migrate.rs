//! Bringing a data directory of an older format up to [`FORMAT_VERSION`] at open.
//!
//! Formats 1 and 2 kept each record's index data as JSON and named fields and kinds in
//! full in every key (trees `records/<kind>`, `index/<kind>`, `uniques/<kind>`,
//! `sorted/<kind>` (2 only) and `references`). Format 3 writes the compact entries of
//! [`crate::entry`] and the keys of [`crate::keys`] into trees of other names (`r/`,
//! `i/`, `u/`, `s/<kind>` and `refs`), with the dictionary of names in `names`.
//!
//! The migration reads the old records trees and writes the new trees from them, a
//! bounded batch of records at a time, flushes, and only then writes the new version;
//! the old trees are dropped after that. A crash before the version is written leaves a
//! format 1 or 2 store whose old trees are untouched: the next open clears whatever the
//! new trees hold and starts again (numbers already in the dictionary stay valid). A
//! crash after it leaves old trees behind, which the next open drops.

use std::collections::HashMap;

use crm_core::{
    TenantId,
    storage::{EntityKind, FieldValue, StorageError},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    commit::{KeyWrite, TreeRef, index_keys},
    entry::{self, IndexData, backend, corrupt},
    keys::FORMAT_VERSION_KEY,
    names::{NameIds, Names, intern_str},
    open::FORMAT_VERSION,
    shared::{KindTrees, REFERENCES_TREE, kind_tree_names},
};

/// The oldest format this build migrates from.
pub(crate) const OLDEST_MIGRATED: u32 = 1;

/// Records rewritten per sled batch: bounds the memory a migration holds, whatever the
/// store's size.
const BATCH_RECORDS: usize = 1_000;

/// Migrates `db` from format `found` (in `OLDEST_MIGRATED..FORMAT_VERSION`) to
/// [`FORMAT_VERSION`] and writes the new version, durably.
pub(crate) fn migrate(db: &sled::Db, found: u32) -> Result<(), StorageError> {
    debug_assert!(found < FORMAT_VERSION);
    // Formats 1 and 2 store records alike (2 only added the sorted trees).
    rebuild_from_legacy(db)?;
    // Everything the migration wrote is on disk before the version says it is there.
    db.flush().map_err(backend)?;
    let meta = db.open_tree("meta").map_err(backend)?;
    meta.insert(FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes()).map_err(backend)?;
    db.flush().map_err(backend)?;
    drop_legacy_trees(db)
}

/// The trees of formats 1 and 2.
fn legacy_tree_names() -> Vec<String> {
    let mut names: Vec<String> = EntityKind::ALL
        .iter()
        .flat_map(|kind| ["records", "index", "uniques", "sorted"].map(|tree| format!("{tree}/{kind}")))
        .collect();
    names.push("references".into());
    names
}

/// Drops the trees of formats 1 and 2 that a migrated store still has.
pub(crate) fn drop_legacy_trees(db: &sled::Db) -> Result<(), StorageError> {
    let present = db.tree_names();
    let mut dropped = false;
    for name in legacy_tree_names() {
        if present.iter().any(|p| p.as_ref() == name.as_bytes()) {
            db.drop_tree(name.as_bytes()).map_err(backend)?;
            dropped = true;
        }
    }
    if dropped {
        db.flush().map_err(backend)?;
    }
    Ok(())
}

/// A record's index data as formats 1 and 2 stored it (JSON).
#[derive(Deserialize)]
struct LegacyIndex {
    fields: Vec<(String, FieldValue)>,
    uniques: Vec<(String, String)>,
    references: Vec<(String, EntityKind, Uuid)>,
}

/// A format 1 or 2 entry: `version (u64 BE) ‖ document length (u32 BE) ‖ document ‖
/// index data (JSON)`.
fn parse_legacy(bytes: &[u8]) -> Result<(u64, &[u8], IndexData), StorageError> {
    let truncated = || corrupt("a format 1 or 2 record is truncated");
    let version = u64::from_be_bytes(bytes.get(..8).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
    let length = u32::from_be_bytes(bytes.get(8..12).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
    let rest = &bytes[12..];
    let length = length as usize;
    if rest.len() < length {
        return Err(truncated());
    }
    let (document, index) = rest.split_at(length);
    let legacy: LegacyIndex = serde_json::from_slice(index).map_err(backend)?;
    let index = IndexData {
        fields: legacy.fields.into_iter().map(|(n, v)| (intern_str(&n), v)).collect(),
        uniques: legacy.uniques.into_iter().map(|(n, v)| (intern_str(&n), v)).collect(),
        references: legacy.references.into_iter().map(|(n, k, id)| (intern_str(&n), k, id)).collect(),
    };
    Ok((version, document, index))
}

/// Format 3's records, index, sorted, uniques and references trees, from the records
/// of format 1 or 2.
fn rebuild_from_legacy(db: &sled::Db) -> Result<(), StorageError> {
    let mut kinds = HashMap::new();
    for &kind in EntityKind::ALL {
        for name in kind_tree_names(kind) {
            db.open_tree(name).map_err(backend)?.clear().map_err(backend)?;
        }
        kinds.insert(kind, KindTrees::open(db, kind).map_err(backend)?);
    }
    let references = db.open_tree(REFERENCES_TREE).map_err(backend)?;
    references.clear().map_err(backend)?;
    let names = Names::load(db)?;
    let trees = Trees { kinds: &kinds, references: &references, names: &names };
    for &kind in EntityKind::ALL {
        let legacy = db.open_tree(format!("records/{kind}")).map_err(backend)?;
        let mut chunk: Vec<KeyWrite> = Vec::new();
        let mut ids = names.writer();
        let mut pending = 0;
        for item in legacy.iter() {
            let (key, value) = item.map_err(backend)?;
            let (tenant, id) = split_record_key(&key)
                .ok_or_else(|| corrupt(format_args!("a {kind} record key is not tenant ‖ id")))?;
            let (version, document, index) = parse_legacy(&value)?;
            let entry = entry::encode(version, document, &index, &mut ids)?;
            chunk.push((TreeRef::Records(kind), key.to_vec(), entry));
            chunk.extend(index_keys(&mut ids, tenant, kind, id, &index)?);
            pending += 1;
            if pending == BATCH_RECORDS {
                trees.write(std::mem::replace(&mut ids, names.writer()), std::mem::take(&mut chunk))?;
                pending = 0;
            }
        }
        trees.write(ids, chunk)?;
    }
    Ok(())
}

/// The format 3 trees a migration writes.
struct Trees<'a> {
    kinds: &'a HashMap<EntityKind, KindTrees>,
    references: &'a sled::Tree,
    names: &'a Names,
}

impl Trees<'_> {
    fn tree(&self, target: TreeRef) -> Result<&sled::Tree, StorageError> {
        let of = |kind: EntityKind| self.kinds.get(&kind).ok_or_else(|| corrupt(format_args!("no trees for {kind}")));
        Ok(match target {
            TreeRef::Records(kind) => &of(kind)?.records,
            TreeRef::Index(kind) => &of(kind)?.index,
            TreeRef::Sorted(kind) => &of(kind)?.sorted,
            TreeRef::Uniques(kind) => &of(kind)?.uniques,
            TreeRef::References => self.references,
            TreeRef::Names => self.names.tree(),
            TreeRef::Counters | TreeRef::Outbox => return Err(corrupt("a migration writes no counters or events")),
        })
    }

    /// Writes one chunk's dictionary entries first, then its keys, tree by tree.
    fn write(&self, ids: NameIds<'_>, chunk: Vec<KeyWrite>) -> Result<(), StorageError> {
        let mut dictionary = sled::Batch::default();
        for (name, number) in ids.entries() {
            dictionary.insert(name, number);
        }
        self.names.tree().apply_batch(dictionary).map_err(backend)?;
        self.names.written(&ids.pending);
        let mut batches: Vec<(TreeRef, sled::Batch)> = Vec::new();
        for (target, key, value) in chunk {
            let at = match batches.iter().position(|(t, _)| *t == target) {
                Some(at) => at,
                None => {
                    batches.push((target, sled::Batch::default()));
                    batches.len() - 1
                }
            };
            batches[at].1.insert(key, value);
        }
        for (target, batch) in batches {
            self.tree(target)?.apply_batch(batch).map_err(backend)?;
        }
        Ok(())
    }
}

/// `tenant ‖ id` back into its parts.
fn split_record_key(key: &[u8]) -> Option<(TenantId, Uuid)> {
    if key.len() != 32 {
        return None;
    }
    Some((TenantId(Uuid::from_slice(&key[..16]).ok()?), Uuid::from_slice(&key[16..]).ok()?))
}
