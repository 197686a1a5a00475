//! The outbox: events commits wrote, kept until a relay acknowledges them.
//!
//! Events are keyed by their id (UUID v7, so the tree's order is creation order) and
//! written by commits in the same transaction as the records they describe
//! ([`crate::commit`]). They belong to no tenant's lock: no commit's check reads them.

use crm_core::storage::{OutboxEvent, StorageError};
use uuid::Uuid;

use crate::{entry::backend, shared::Shared};

/// The oldest `limit` unacknowledged events.
pub(crate) fn pending_blocking(shared: &Shared, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
    let mut events = Vec::new();
    for item in shared.outbox.iter().take(limit) {
        let (_, value) = item.map_err(backend)?;
        events.push(serde_json::from_slice(&value).map_err(backend)?);
    }
    Ok(events)
}

/// Removes acknowledged events; ids that are not pending are ignored. Waits for an
/// export to finish, so a dump never holds an event acknowledged while it was written.
pub(crate) fn ack_blocking(shared: &Shared, ids: &[Uuid]) -> Result<(), StorageError> {
    let mut batch = sled::Batch::default();
    for id in ids {
        batch.remove(id.as_bytes());
    }
    shared.locks.outbox_ack(|| shared.outbox.apply_batch(batch).map_err(backend))
}
