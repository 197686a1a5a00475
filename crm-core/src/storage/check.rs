//! The batch rules of the contract, written once for every adapter that enforces them
//! itself (in-memory, sled) rather than through database constraints.

use std::collections::HashMap;

use uuid::Uuid;

use super::{EntityKind, Record, StorageError, UniqueKey, WriteBatch, WriteOp};

/// What [`check_batch`] needs to know about an adapter's committed state, read inside
/// the adapter's own transaction or lock.
pub trait StateView {
    /// The current version of a record, `None` if it does not exist.
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError>;
    /// The record currently holding a unique key.
    fn unique_owner(&self, kind: EntityKind, key: &UniqueKey) -> Result<Option<Uuid>, StorageError>;
    /// The records currently referencing a record.
    fn referrers(&self, kind: EntityKind, id: Uuid) -> Result<Vec<(EntityKind, Uuid)>, StorageError>;
    /// The current value of a counter (0 if never written).
    fn counter(&self, key: &str) -> Result<u64, StorageError>;
}

/// Checks a whole batch against committed state: versions, unique keys, references,
/// deletes of referenced records, counters, and the contract's own shape rules. `Ok`
/// means applying every operation leaves the store consistent.
pub fn check_batch(view: &impl StateView, tenant_uuid: Uuid, batch: &WriteBatch) -> Result<(), StorageError> {
    // Counters first: a stale counter is the cause of whatever else a racing batch
    // would break (the document number it derived is taken), so it must be the error.
    for counter in &batch.counters {
        if counter.new <= counter.expected {
            return Err(StorageError::Invalid(format!("counter {} must move forward", counter.key)));
        }
        if view.counter(&counter.key)? != counter.expected {
            return Err(StorageError::Conflict { kind: EntityKind::Tenant, id: tenant_uuid });
        }
    }

    // The state each touched record ends in: Some(record) written, None deleted.
    let mut finals: HashMap<(EntityKind, Uuid), Option<&Record>> = HashMap::new();
    for op in &batch.ops {
        let (kind, id) = op.target();
        let current = view.version(kind, id)?;
        let (expected, after) = match op {
            WriteOp::Insert(r) => {
                if r.version != 1 {
                    return Err(StorageError::Invalid(format!("insert of {kind} {id} must have version 1")));
                }
                if current.is_some() {
                    return Err(StorageError::AlreadyExists { kind, field: "id".into() });
                }
                (None, Some(Some(r)))
            }
            WriteOp::Update { record, expected_version } => {
                if record.version != expected_version + 1 {
                    return Err(StorageError::Invalid(format!("update of {kind} {id} must bump the version by one")));
                }
                (Some(*expected_version), Some(Some(record)))
            }
            WriteOp::Delete { expected_version, .. } => (Some(*expected_version), Some(None)),
            WriteOp::Check { version, .. } => (Some(*version), None),
        };
        if kind == EntityKind::AuditLog && !matches!(op, WriteOp::Insert(_)) {
            return Err(StorageError::Invalid("the audit log is append-only".into()));
        }
        if let Some(expected) = expected {
            match current {
                None => return Err(StorageError::NotFound { kind, id }),
                Some(v) if v != expected => return Err(StorageError::Conflict { kind, id }),
                Some(_) => {}
            }
        }
        if let Some(after) = after
            && finals.insert((kind, id), after).is_some()
        {
            return Err(StorageError::Invalid(format!("{kind} {id} is written twice in one batch")));
        }
    }

    let written = || finals.values().filter_map(|r| *r);
    let mut claimed: HashMap<(EntityKind, &UniqueKey), Uuid> = HashMap::new();
    for record in written() {
        for key in &record.uniques {
            if claimed.insert((record.kind, key), record.id).is_some() {
                return Err(StorageError::AlreadyExists { kind: record.kind, field: key.field.into() });
            }
            if let Some(owner) = view.unique_owner(record.kind, key)?
                && owner != record.id
            {
                // The current holder only frees the key if this batch deletes it or
                // rewrites it without the key.
                let freed = match finals.get(&(record.kind, owner)) {
                    Some(None) => true,
                    Some(Some(other)) => !other.uniques.contains(key),
                    None => false,
                };
                if !freed {
                    return Err(StorageError::AlreadyExists { kind: record.kind, field: key.field.into() });
                }
            }
        }
        for target in &record.references {
            let exists = match finals.get(&(target.kind, target.id)) {
                Some(after) => after.is_some(),
                None => view.version(target.kind, target.id)?.is_some(),
            };
            if !exists {
                return Err(StorageError::MissingReference {
                    field: target.field.into(),
                    kind: target.kind,
                    id: target.id,
                });
            }
        }
    }

    for (&(kind, id), after) in &finals {
        if after.is_some() {
            continue;
        }
        for (by, referrer) in view.referrers(kind, id)? {
            let still_points = match finals.get(&(by, referrer)) {
                Some(None) => false,
                Some(Some(r)) => r.references.iter().any(|t| t.kind == kind && t.id == id),
                None => true,
            };
            if still_points {
                return Err(StorageError::Referenced { kind, id, by });
            }
        }
    }

    Ok(())
}
