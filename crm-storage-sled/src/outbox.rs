//! The outbox: events commits wrote, kept until a relay acknowledges them, then kept in
//! the stream (with their position) until pruned.
//!
//! Pending events are keyed by their id (UUID v7, so the tree's order is creation order)
//! and written by commits in the same transaction as the records they describe
//! ([`crate::commit`]). They belong to no tenant's lock: no commit's check reads them.
//!
//! An acknowledgement moves events from `outbox` to `acked` (`position` → the event and
//! when it was acknowledged) and `stream` (`tenant ‖ position` → nothing), and raises the
//! last position in `meta`, all in one sled transaction, under the store's one ack lock
//! ([`crate::locks`]): acknowledgements are serialized, so a position a reader has seen
//! is never followed by a new event at or below it. Acknowledgement instants never go
//! back (each is at least the previous one), so `acked` in position order is oldest
//! first and pruning stops at the first event that is too young.

use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    storage::{OutboxEvent, StorageError, StreamedEvent},
};
use serde::{Deserialize, Serialize};
use sled::{
    Transactional,
    transaction::{ConflictableTransactionError, TransactionError},
};
use uuid::Uuid;

use crate::{
    entry::{backend, corrupt},
    keys,
    shared::Shared,
};

/// An acknowledged event as `acked` stores it.
#[derive(Serialize, Deserialize)]
struct Acked {
    event: OutboxEvent,
    acked_at: DateTime<Utc>,
}

/// The oldest `limit` unacknowledged events.
pub(crate) fn pending_blocking(shared: &Shared, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
    let mut events = Vec::new();
    for item in shared.outbox.iter().take(limit) {
        let (_, value) = item.map_err(backend)?;
        events.push(serde_json::from_slice(&value).map_err(backend)?);
    }
    Ok(events)
}

/// Gives each pending event among `ids` the next position, in the order of `ids`, and
/// moves it to the stream; other ids are ignored. Waits for an export to finish, so a
/// dump never holds an event acknowledged while it was written.
pub(crate) fn ack_blocking(shared: &Shared, ids: &[Uuid]) -> Result<(), StorageError> {
    shared.locks.outbox_ack(|| {
        let mut position = position_blocking(shared)?;
        let last_at = match shared.acked.last().map_err(backend)? {
            Some((_, value)) => Some(parse_acked(&value)?.acked_at),
            None => None,
        };
        let acked_at = last_at.map_or_else(Utc::now, |last| last.max(Utc::now()));
        let mut moves = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let Some(value) = shared.outbox.get(id.as_bytes()).map_err(backend)? else { continue };
            let event: OutboxEvent = serde_json::from_slice(&value).map_err(backend)?;
            position += 1;
            let stream_key = keys::stream_key(event.tenant_id, position);
            let acked = serde_json::to_vec(&Acked { event, acked_at }).map_err(backend)?;
            moves.push((*id, position, stream_key, acked));
        }
        if moves.is_empty() {
            return Ok(());
        }
        let trees = (&shared.outbox, &shared.acked, &shared.stream, &shared.meta);
        let applied = trees.transaction(|(outbox, acked, stream, meta)| {
            for (id, position, stream_key, value) in &moves {
                outbox.remove(id.as_bytes().to_vec())?;
                acked.insert(position.to_be_bytes().to_vec(), value.as_slice())?;
                stream.insert(stream_key.as_slice(), Vec::new())?;
            }
            meta.insert(keys::OUTBOX_POSITION_KEY, position.to_be_bytes().to_vec())?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        applied.map_err(transaction_failure)
    })
}

/// Up to `limit` acknowledged events of `tenant` after position `after`.
pub(crate) fn stream_blocking(
    shared: &Shared,
    tenant: TenantId,
    after: u64,
    limit: usize,
) -> Result<Vec<StreamedEvent>, StorageError> {
    let Some(start) = after.checked_add(1) else { return Ok(Vec::new()) };
    let prefix = keys::tenant_prefix(tenant);
    let mut events = Vec::new();
    for item in shared.stream.range(keys::stream_key(tenant, start)..).take(limit) {
        let (key, _) = item.map_err(backend)?;
        if !key.starts_with(&prefix) {
            break;
        }
        let position = keys::stream_position(&key).ok_or_else(|| corrupt("a stream key is not tenant ‖ position"))?;
        // Pruned between the two reads: gone from the stream too.
        let Some(value) = shared.acked.get(position.to_be_bytes()).map_err(backend)? else { continue };
        events.push(StreamedEvent { position, event: parse_acked(&value)?.event });
    }
    Ok(events)
}

/// The last position given (0 before the first acknowledgement).
pub(crate) fn position_blocking(shared: &Shared) -> Result<u64, StorageError> {
    match shared.meta.get(keys::OUTBOX_POSITION_KEY).map_err(backend)? {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| corrupt("the outbox position is not a u64"))?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// Deletes up to `limit` of the oldest events acknowledged before `acked_before`.
pub(crate) fn prune_blocking(
    shared: &Shared,
    acked_before: DateTime<Utc>,
    limit: usize,
) -> Result<usize, StorageError> {
    shared.locks.outbox_ack(|| {
        let mut doomed = Vec::new();
        for item in shared.acked.iter().take(limit) {
            let (key, value) = item.map_err(backend)?;
            let acked = parse_acked(&value)?;
            if acked.acked_at >= acked_before {
                break;
            }
            let position: [u8; 8] = key.as_ref().try_into().map_err(|_| corrupt("an acked key is not a position"))?;
            doomed.push((key, keys::stream_key(acked.event.tenant_id, u64::from_be_bytes(position))));
        }
        let applied = (&shared.acked, &shared.stream).transaction(|(acked, stream)| {
            for (key, stream_key) in &doomed {
                acked.remove(key.clone())?;
                stream.remove(stream_key.as_slice())?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        applied.map_err(transaction_failure)?;
        Ok(doomed.len())
    })
}

fn parse_acked(value: &[u8]) -> Result<Acked, StorageError> {
    serde_json::from_slice(value).map_err(|e| corrupt(format_args!("an acknowledged outbox event: {e}")))
}

fn transaction_failure(e: TransactionError<()>) -> StorageError {
    match e {
        TransactionError::Storage(e) => backend(e),
        TransactionError::Abort(()) => StorageError::Backend { source: "the sled transaction aborted".into() },
    }
}
