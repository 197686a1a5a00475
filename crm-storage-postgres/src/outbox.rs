//! The outbox table: pending events (no position) for the relay, acknowledged events
//! (a position and an instant) for the live stream until pruned.
//!
//! An acknowledgement locks the one `outbox_sequence` row first, so acknowledgements run
//! one at a time and commit in position order: a reader that has seen position N never
//! later sees a new event at or below N, whichever instance acknowledges.

use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    storage::{OutboxEvent, StorageError, StreamedEvent},
};
use sqlx::{AssertSqlSafe, PgPool, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{decode, error::map};

const EVENT_COLUMNS: &str = "id, tenant_id, name, entity_kind, entity_id, payload, occurred_at, occurred_at_nanos";

/// The oldest `limit` pending events.
pub(crate) async fn pending(pool: &PgPool, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM outbox WHERE position IS NULL ORDER BY id LIMIT $1");
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(bound(limit)).fetch_all(pool).await.map_err(map)?;
    rows.iter().map(event).collect()
}

/// Gives the pending events among `ids` the next positions, in the order of `ids`.
pub(crate) async fn ack(pool: &PgPool, ids: &[Uuid]) -> Result<(), StorageError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(map)?;
    // The row lock that serializes acknowledgements; taken before reading what is pending.
    let last: i64 =
        sqlx::query_scalar("SELECT last FROM outbox_sequence FOR UPDATE").fetch_one(&mut *tx).await.map_err(map)?;
    let pending: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM outbox WHERE id = ANY($1) AND position IS NULL")
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
    let mut ordered: Vec<Uuid> = Vec::with_capacity(pending.len());
    for id in ids {
        if pending.contains(id) && !ordered.contains(id) {
            ordered.push(*id);
        }
    }
    if ordered.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = (1..).map(|n| last + n).take(ordered.len()).collect();
    sqlx::query(
        "UPDATE outbox SET position = t.position, acked_at = clock_timestamp() \
         FROM unnest($1::uuid[], $2::bigint[]) AS t(id, position) WHERE outbox.id = t.id",
    )
    .bind(&ordered)
    .bind(&positions)
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    let new_last = positions.last().copied().unwrap_or(last);
    sqlx::query("UPDATE outbox_sequence SET last = $1").bind(new_last).execute(&mut *tx).await.map_err(map)?;
    tx.commit().await.map_err(map)
}

/// Up to `limit` acknowledged events of `tenant` after position `after`.
pub(crate) async fn stream(
    pool: &PgPool,
    tenant: TenantId,
    after: u64,
    limit: usize,
) -> Result<Vec<StreamedEvent>, StorageError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, position FROM outbox WHERE tenant_id = $1 AND position > $2 \
         ORDER BY position LIMIT $3"
    );
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(after)
        .bind(bound(limit))
        .fetch_all(pool)
        .await
        .map_err(map)?;
    rows.iter()
        .map(|r| {
            let position: i64 = r.try_get(8).map_err(map)?;
            Ok(StreamedEvent { position: decode::counter("outbox.position", position)?, event: event(r)? })
        })
        .collect()
}

/// The last position given.
pub(crate) async fn position(pool: &PgPool) -> Result<u64, StorageError> {
    let last: i64 = sqlx::query_scalar("SELECT last FROM outbox_sequence").fetch_one(pool).await.map_err(map)?;
    decode::counter("outbox_sequence.last", last)
}

/// Deletes up to `limit` of the oldest events acknowledged before `acked_before`.
pub(crate) async fn prune(pool: &PgPool, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id IN \
         (SELECT id FROM outbox WHERE acked_at < $1 ORDER BY position LIMIT $2)",
    )
    .bind(acked_before)
    .bind(bound(limit))
    .execute(pool)
    .await
    .map_err(map)?;
    usize::try_from(done.rows_affected()).map_err(|_| StorageError::Invalid("too many rows pruned".into()))
}

/// A `LIMIT` for SQL: beyond i64 is no limit.
fn bound(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn event(r: &PgRow) -> Result<OutboxEvent, StorageError> {
    let kind: String = r.try_get(3).map_err(map)?;
    Ok(OutboxEvent {
        id: r.try_get(0).map_err(map)?,
        tenant_id: TenantId(r.try_get(1).map_err(map)?),
        name: r.try_get(2).map_err(map)?,
        entity_kind: decode::entity_kind("outbox.entity_kind", &kind)?,
        entity_id: r.try_get(4).map_err(map)?,
        payload: r.try_get(5).map_err(map)?,
        occurred_at: decode::instant(
            "outbox.occurred_at_nanos",
            r.try_get(6).map_err(map)?,
            r.try_get(7).map_err(map)?,
        )?,
    })
}
