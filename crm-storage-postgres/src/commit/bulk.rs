//! Imports: a batch of many inserts through binary `COPY`.
//!
//! A batch of at least [`MIN_ROWS`] operations, all inserts, without counters, goes
//! this way, in one transaction:
//!
//! 1. the core's [`check_batch`](crm_core::storage::check_batch) runs first on the state the transaction then confirms
//!    (every inserted id new, every record pointed at present, no unique key held);
//! 2. the records pointed at from outside the batch are locked `FOR KEY SHARE`; all
//!    must exist;
//! 3. per table, the rows are sent with `COPY … FROM STDIN (FORMAT binary)` into a
//!    temporary staging table (dropped at commit);
//! 4. the staged unique keys are looked up among the stored records (none may be
//!    held), then the rows move into the table with one `INSERT … SELECT` (its primary
//!    key refuses an id that exists);
//! 5. the references are sent with binary `COPY` into `record_refs`, the events appended
//!    to the outbox;
//! 6. `COMMIT` runs the deferred foreign keys and unique constraints.
//!
//! Whatever does not hold (a record pointed at is missing, a key or an id is taken, a
//! concurrent commit got in the way, a value the schema refuses) rolls the transaction
//! back with nothing written, and the batch takes the full way, which reports the
//! precise contract error.

use std::collections::{BTreeMap, HashSet};

use crm_core::storage::{EntityKind, StorageError, WriteBatch, WriteOp};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, postgres::PgCopyIn};
use uuid::Uuid;

use super::{Assumed, Prepared, ReferenceRows, Shortcut, column_list, copy::BinaryRows, push_outbox};
use crate::{error::map, schema};

/// The fewest operations of a batch that goes through `COPY`.
pub(super) const MIN_ROWS: usize = 1_000;

/// Bytes of `COPY` data buffered before they are sent.
const SEND_AT: usize = 1 << 20;

/// Whether the batch is an import: at least [`MIN_ROWS`] inserts and nothing else but
/// events.
pub(super) fn eligible(batch: &WriteBatch) -> bool {
    batch.ops.len() >= MIN_ROWS
        && batch.counters.is_empty()
        && batch.ops.iter().all(|op| matches!(op, WriteOp::Insert(_)))
}

/// Why an import did not commit.
enum Refusal {
    /// Nothing written; the full way decides.
    NotTaken,
    /// The outcome is unknown (the connection was lost).
    Lost(StorageError),
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(_) => Self::NotTaken,
            other => Self::Lost(map(other)),
        }
    }
}

impl From<StorageError> for Refusal {
    fn from(_: StorageError) -> Self {
        // The full way finds and reports it, after the checks that come first.
        Self::NotTaken
    }
}

/// Imports the batch (see the module header).
pub(super) async fn commit(
    pool: &PgPool,
    tenant: Uuid,
    batch: &WriteBatch,
    prepared: &[Prepared<'_>],
) -> Result<Shortcut, StorageError> {
    if !Assumed::holds_for(tenant, batch) {
        return Ok(Shortcut::NotTaken);
    }
    match import(pool, tenant, batch, prepared).await {
        Ok(()) => Ok(Shortcut::Committed),
        Err(Refusal::NotTaken) => Ok(Shortcut::NotTaken),
        Err(Refusal::Lost(e)) => Err(e),
    }
}

async fn import(pool: &PgPool, tenant: Uuid, batch: &WriteBatch, prepared: &[Prepared<'_>]) -> Result<(), Refusal> {
    let mut tx = pool.begin().await?;
    lock_targets(&mut tx, tenant, prepared).await?; // 2
    let mut per_table: BTreeMap<&'static str, Vec<&Prepared<'_>>> = BTreeMap::new();
    for p in prepared {
        per_table.entry(p.table.name).or_default().push(p);
    }
    for rows in per_table.values() {
        stage(&mut tx, tenant, rows).await?; // 3
        check_and_move(&mut tx, rows).await?; // 4
    }
    copy_references(&mut tx, tenant, prepared).await?; // 5
    if !batch.events.is_empty() {
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_outbox(&mut qb, tenant, &batch.events)?;
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?; // 6
    Ok(())
}

/// Locks the records pointed at from outside the batch, per kind in name order and in
/// id order; refuses when one is missing.
async fn lock_targets(conn: &mut PgConnection, tenant: Uuid, prepared: &[Prepared<'_>]) -> Result<(), Refusal> {
    let inserted: HashSet<(EntityKind, Uuid)> = prepared.iter().map(|p| (p.record.kind, p.record.id)).collect();
    let mut targets: BTreeMap<&'static str, (EntityKind, Vec<Uuid>)> = BTreeMap::new();
    let mut seen = HashSet::new();
    for p in prepared {
        for t in &p.record.references {
            if !inserted.contains(&(t.kind, t.id)) && seen.insert((t.kind, t.id)) {
                targets.entry(t.kind.as_str()).or_insert_with(|| (t.kind, Vec::new())).1.push(t.id);
            }
        }
    }
    for (kind, mut ids) in targets.into_values() {
        let table = schema::table(kind).ok_or(Refusal::NotTaken)?;
        ids.sort_unstable();
        let sql = format!(
            "SELECT count(*) FROM (SELECT id FROM {} WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR KEY SHARE) l",
            table.name
        );
        let found: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(&ids).fetch_one(&mut *conn).await?;
        if usize::try_from(found).ok() != Some(ids.len()) {
            return Err(Refusal::NotTaken);
        }
    }
    Ok(())
}

/// The staging table of a table.
fn staging(table: &str) -> String {
    format!("crm_staging_{table}")
}

/// Creates the table's staging table (dropped at commit) and copies the rows into it.
async fn stage(conn: &mut PgConnection, tenant: Uuid, rows: &[&Prepared<'_>]) -> Result<(), Refusal> {
    let table = rows[0].table;
    let stage = staging(table.name);
    let create = format!("CREATE TEMPORARY TABLE {stage} (LIKE {}) ON COMMIT DROP", table.name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut *conn).await?;
    let columns = column_list(table);
    let mut copy = conn
        .copy_in_raw(&format!("COPY {stage} (tenant_id, id, version, data, {columns}) FROM STDIN (FORMAT binary)"))
        .await?;
    let fields = 4 + table.written_columns().count();
    let mut out = BinaryRows::new(fields)?;
    let sent: Result<(), Refusal> = async {
        for p in rows {
            out.row();
            out.field(&tenant)?;
            out.field(&p.record.id)?;
            out.field(&p.version)?;
            out.document(p.record)?;
            for value in &p.values {
                out.typed(value)?;
            }
            if out.len() >= SEND_AT {
                copy.send(out.take()).await?;
            }
        }
        Ok(())
    }
    .await;
    end_copy(copy, out, sent, "the rows could not be encoded").await
}

/// Refuses staged unique keys held by stored records, then moves the staged rows into
/// the table.
async fn check_and_move(conn: &mut PgConnection, rows: &[&Prepared<'_>]) -> Result<(), Refusal> {
    let table = rows[0].table;
    let stage = staging(table.name);
    let fields: HashSet<&'static str> = rows.iter().flat_map(|p| p.record.uniques.iter().map(|u| u.field)).collect();
    for field in fields {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {stage} s JOIN {} t ON t.tenant_id = s.tenant_id AND t.\"{field}\" = s.\"{field}\")",
            table.name
        );
        let taken: bool = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *conn).await?.try_get(0)?;
        if taken {
            return Err(Refusal::NotTaken);
        }
    }
    let columns = column_list(table);
    let sql = format!(
        "INSERT INTO {} (tenant_id, id, version, data, {columns}) SELECT tenant_id, id, version, data, {columns} FROM {stage}",
        table.name
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

/// Copies the written records' references into `record_refs` (each once).
async fn copy_references(conn: &mut PgConnection, tenant: Uuid, prepared: &[Prepared<'_>]) -> Result<(), Refusal> {
    let refs = ReferenceRows::of(prepared);
    if refs.id.is_empty() {
        return Ok(());
    }
    let mut copy = conn
        .copy_in_raw("COPY record_refs (tenant_id, kind, id, field, target_kind, target_id) FROM STDIN (FORMAT binary)")
        .await?;
    let mut out = BinaryRows::new(6)?;
    let mut seen: HashSet<(&str, Uuid, &str, Uuid)> = HashSet::with_capacity(refs.id.len());
    let sent: Result<(), Refusal> = async {
        for i in 0..refs.id.len() {
            if !seen.insert((refs.kind[i], refs.id[i], refs.field[i], refs.target_id[i])) {
                continue;
            }
            out.row();
            out.field(&tenant)?;
            out.field(&refs.kind[i])?;
            out.field(&refs.id[i])?;
            out.field(&refs.field[i])?;
            out.field(&refs.target_kind[i])?;
            out.field(&refs.target_id[i])?;
            if out.len() >= SEND_AT {
                copy.send(out.take()).await?;
            }
        }
        Ok(())
    }
    .await;
    end_copy(copy, out, sent, "the references could not be encoded").await
}

/// Ends a `COPY`: sends the last rows and the trailer when every row was sent, or
/// aborts it (naming `why`) and returns the encoding's error.
async fn end_copy(
    mut copy: PgCopyIn<&mut PgConnection>,
    out: BinaryRows,
    sent: Result<(), Refusal>,
    why: &str,
) -> Result<(), Refusal> {
    match sent {
        Ok(()) => {
            copy.send(out.finish()).await?;
            copy.finish().await?;
            Ok(())
        }
        Err(e) => {
            copy.abort(why).await?;
            Err(e)
        }
    }
}
