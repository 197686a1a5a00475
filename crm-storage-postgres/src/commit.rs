//! Applying a [`WriteBatch`] in one transaction.
//!
//! Two short ways come first, each for batches of one shape, each all or nothing:
//!
//! - [`single`]: inserts, updates and checks (no deletes, no counters; what most service
//!   calls write) as one statement of data-modifying CTEs, which PostgreSQL runs as its
//!   own transaction: one round trip, no `BEGIN` or `COMMIT`.
//! - [`bulk`]: an import (at least a thousand inserts) through binary `COPY` into
//!   staging tables, checked, then moved into the real tables in one transaction.
//!
//! Both run the core's [`check_batch`] before sending anything, on the state their
//! statements then confirm in the database (see [`Assumed`]). When a short way finds that
//! state is not there, or the database refuses anything, nothing is written and the
//! batch takes the full way below, which decides and reports the precise contract
//! error. Every other batch takes the full way directly:
//!
//! 1. Lock and read (`read_state`), always in this order: the batch's counters (created
//!    at 0 when new, then `FOR UPDATE` in key order); every record it writes, deletes,
//!    checks or points at, with its version (`FOR NO KEY UPDATE` / `FOR UPDATE` /
//!    `FOR SHARE` / `FOR KEY SHARE`, kind by kind in id order); the current owners of
//!    the unique keys it writes; the referrers of the records it deletes.
//! 2. The core's [`check_batch`] decides on that state: the same rules, errors and
//!    precedence as every other adapter.
//! 3. Write (`apply`): updates and deletes in batch order, each re-checking the version
//!    in its `WHERE`; the recorded references of those records dropped; inserts per kind
//!    as multi-row `UNNEST` statements; the written records' references in one
//!    statement; counters moved by compare-and-set; the events appended to the outbox.
//! 4. `COMMIT` runs the deferred foreign keys and unique constraints.
//!
//! A serialization failure, a deadlock or a constraint that a concurrent commit made
//! fail aborts the attempt; the batch is run again (a bounded number of times), and
//! step 2 then reports the precise contract error.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use chrono::Timelike;
use crm_core::storage::{
    CounterUpdate, EntityKind, FieldValue, OutboxEvent, Record, StateView, StorageError, UniqueKey, WriteBatch,
    WriteOp, check_batch,
};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{
    decode,
    error::{Failure, map},
    schema::{self, ColumnType, Table},
    values::{Typed, TypedArray, document},
};

mod bulk;
mod copy;
mod single;

/// A record converted to its table's typed columns, before any database work.
struct Prepared<'a> {
    record: &'a Record,
    table: &'static Table,
    version: i64,
    /// One value per [`Table::written_columns`], in that order.
    values: Vec<Typed>,
}

fn table_of(kind: EntityKind) -> Result<&'static Table, StorageError> {
    schema::table(kind)
        .ok_or_else(|| StorageError::Invalid(format!("this release of the PostgreSQL schema has no table for {kind}")))
}

fn to_i64(n: u64, what: &str) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Invalid(format!("{what} {n} is out of range")))
}

fn prepare(record: &Record) -> Result<Prepared<'_>, StorageError> {
    let table = table_of(record.kind)?;
    for (field, _) in &record.fields {
        if table.column(field).is_none() {
            return Err(StorageError::Invalid(format!(
                "{} has no column for indexed field `{field}`: add it to the schema with a migration",
                record.kind
            )));
        }
    }
    let mut values = Vec::new();
    for col in table.written_columns() {
        let unique = record.uniques.iter().find(|u| u.field == col.field);
        let value = match (record.field(col.field), unique) {
            (FieldValue::Null, Some(u)) => FieldValue::Text(u.value.clone()),
            (FieldValue::Text(t), Some(u)) if *t != u.value => {
                return Err(StorageError::Invalid(format!(
                    "{}: unique key `{}` differs from the indexed field of the same name",
                    record.kind, col.field
                )));
            }
            (v, _) => v.clone(),
        };
        values.push(Typed::for_storage(table, col, &value)?);
    }
    for key in &record.uniques {
        match table.column(key.field) {
            Some(col) if col.ty == ColumnType::Text && col.field != "id" => {}
            _ => {
                return Err(StorageError::Invalid(format!(
                    "{} has no unique column `{}`: add it to the schema with a migration",
                    record.kind, key.field
                )));
            }
        }
    }
    Ok(Prepared { record, table, version: to_i64(record.version, "version")?, values })
}

/// What the transaction read, as the core's batch rules see it.
struct Snapshot {
    versions: HashMap<(EntityKind, Uuid), u64>,
    owners: HashMap<(EntityKind, &'static str, String), Uuid>,
    referrers: HashMap<(EntityKind, Uuid), Vec<(EntityKind, Uuid)>>,
    counters: HashMap<String, u64>,
}

impl StateView for Snapshot {
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError> {
        Ok(self.versions.get(&(kind, id)).copied())
    }
    fn unique_owner(&self, kind: EntityKind, key: &UniqueKey) -> Result<Option<Uuid>, StorageError> {
        Ok(self.owners.get(&(kind, key.field, key.value.clone())).copied())
    }
    fn referrers(&self, kind: EntityKind, id: Uuid) -> Result<Vec<(EntityKind, Uuid)>, StorageError> {
        Ok(self.referrers.get(&(kind, id)).cloned().unwrap_or_default())
    }
    fn counter(&self, key: &str) -> Result<u64, StorageError> {
        Ok(self.counters.get(key).copied().unwrap_or(0))
    }
}

/// Row lock strengths, weakest last; a row needed several ways takes the strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lock {
    Update,
    NoKeyUpdate,
    Share,
    KeyShare,
}

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Self::Update => "FOR UPDATE",
            Self::NoKeyUpdate => "FOR NO KEY UPDATE",
            Self::Share => "FOR SHARE",
            Self::KeyShare => "FOR KEY SHARE",
        }
    }
}

/// What a short way of committing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shortcut {
    /// The batch is committed.
    Committed,
    /// Nothing was written (a check did not hold, or the database refused): the full
    /// way decides.
    NotTaken,
}

/// The state a short way of committing confirms in the database before it writes:
/// the batch's records absent (inserts) or at the version the batch expects (updates,
/// checks); every other record asked about present (the batch points at it); no
/// unique key held by another record; no referrers and no counters (those batches go
/// the full way). Where the database confirms it, [`check_batch`] decides on this
/// view as on the real state.
struct Assumed {
    versions: HashMap<(EntityKind, Uuid), Option<u64>>,
}

impl Assumed {
    /// `None` for a batch that deletes or names a record twice.
    fn of(batch: &WriteBatch) -> Option<Self> {
        let mut versions = HashMap::with_capacity(batch.ops.len());
        for op in &batch.ops {
            let version = match op {
                WriteOp::Insert(_) => None,
                WriteOp::Update { expected_version, .. } => Some(*expected_version),
                WriteOp::Check { version, .. } => Some(*version),
                WriteOp::Delete { .. } => return None,
            };
            if versions.insert(op.target(), version).is_some() {
                return None;
            }
        }
        Some(Self { versions })
    }

    /// Whether a short way may take the batch: it has an assumed state and
    /// [`check_batch`] passes on it.
    fn holds_for(tenant: Uuid, batch: &WriteBatch) -> bool {
        Self::of(batch).is_some_and(|assumed| check_batch(&assumed, tenant, batch).is_ok())
    }
}

impl StateView for Assumed {
    fn version(&self, kind: EntityKind, id: Uuid) -> Result<Option<u64>, StorageError> {
        Ok(self.versions.get(&(kind, id)).copied().unwrap_or(Some(1)))
    }
    fn unique_owner(&self, _: EntityKind, _: &UniqueKey) -> Result<Option<Uuid>, StorageError> {
        Ok(None)
    }
    fn referrers(&self, _: EntityKind, _: Uuid) -> Result<Vec<(EntityKind, Uuid)>, StorageError> {
        Ok(Vec::new())
    }
    fn counter(&self, _: &str) -> Result<u64, StorageError> {
        Ok(0)
    }
}

/// Commits a batch, retrying transient aborts.
pub(crate) async fn commit(pool: &PgPool, attempts: u32, tenant: Uuid, batch: &WriteBatch) -> Result<(), StorageError> {
    if batch.is_empty() {
        return Ok(());
    }
    let prepared = prepare_all(batch)?;
    // The short ways first; when one refuses, the full way below decides and reports.
    let shortcut = if bulk::eligible(batch) {
        bulk::commit(pool, tenant, batch, &prepared).await?
    } else if single::eligible(tenant, batch) {
        single::commit(pool, tenant, batch, &prepared).await?
    } else {
        Shortcut::NotTaken
    };
    if shortcut == Shortcut::Committed {
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_commit(pool, tenant, batch, &prepared).await {
            Ok(()) => return Ok(()),
            Err(Failure::Storage(e)) => return Err(e),
            Err(Failure::Retry(e)) if attempt >= attempts.max(1) => return Err(map(e)),
            Err(Failure::Retry(_)) => pause_before_retry(attempt).await,
        }
    }
}

/// Converts every written record to its columns, and refuses kinds without a table,
/// before any database work (and once for all attempts).
fn prepare_all(batch: &WriteBatch) -> Result<Vec<Prepared<'_>>, StorageError> {
    let mut prepared = Vec::new();
    for op in &batch.ops {
        match op {
            WriteOp::Insert(r) | WriteOp::Update { record: r, .. } => prepared.push(prepare(r)?),
            WriteOp::Delete { kind, .. } | WriteOp::Check { kind, .. } => {
                table_of(*kind)?;
            }
        }
    }
    Ok(prepared)
}

/// Backs off a little, more after each attempt, staggered so racers do not collide again.
async fn pause_before_retry(attempt: u32) {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let jitter = u64::from(since_epoch.subsec_nanos() % 7);
    let pause = 2u64.saturating_pow(attempt.min(6)) + jitter;
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// One attempt: the steps of the module header, in one transaction.
async fn attempt_commit(
    pool: &PgPool,
    tenant: Uuid,
    batch: &WriteBatch,
    prepared: &[Prepared<'_>],
) -> Result<(), Failure> {
    let mut tx = pool.begin().await?;
    let snapshot = read_state(&mut tx, tenant, batch).await?; // 1
    check_batch(&snapshot, tenant, batch)?; // 2
    apply(&mut tx, tenant, batch, prepared).await?; // 3
    tx.commit().await?; // 4
    Ok(())
}

// Step 1: lock and read.

/// Locks and reads everything [`check_batch`] asks about, in the one order every commit
/// takes its locks in.
async fn read_state(conn: &mut PgConnection, tenant: Uuid, batch: &WriteBatch) -> Result<Snapshot, Failure> {
    // Counters first: batches racing for one counter queue on it before they lock
    // anything else.
    let counters = lock_counters(conn, tenant, batch).await?;
    let versions = lock_records(conn, tenant, &records_to_lock(batch)).await?;
    let owners = read_unique_owners(conn, tenant, unique_keys_written(batch)).await?;
    let referrers = read_referrers(conn, tenant, &deleted_per_kind(batch)).await?;
    Ok(Snapshot { versions, owners, referrers, counters })
}

/// Creates the batch's counters that have no row yet and locks them all, in key order;
/// returns their values.
async fn lock_counters(
    conn: &mut PgConnection,
    tenant: Uuid,
    batch: &WriteBatch,
) -> Result<HashMap<String, u64>, Failure> {
    let keys: BTreeSet<&str> = batch.counters.iter().map(|c| c.key.as_str()).collect();
    let mut counters = HashMap::new();
    if keys.is_empty() {
        return Ok(counters);
    }
    let keys: Vec<&str> = keys.into_iter().collect();
    // A counter never written has no row to lock: create it (at 0, inside this
    // transaction) so racing batches queue on it instead of reading "0" in turn.
    sqlx::query(
        "INSERT INTO counters (tenant_id, key, value) SELECT $1, k, 0 FROM UNNEST($2::text[]) AS k \
         ORDER BY k ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    let rows =
        sqlx::query("SELECT key, value FROM counters WHERE tenant_id = $1 AND key = ANY($2) ORDER BY key FOR UPDATE")
            .bind(tenant)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?;
    for row in rows {
        let key: String = row.try_get(0)?;
        let value = decode::counter(&key, row.try_get(1)?)?;
        counters.insert(key, value);
    }
    Ok(counters)
}

/// The records a batch locks, per kind in name order, each with the strongest lock it
/// needs.
type LockPlan = BTreeMap<&'static str, (EntityKind, BTreeMap<Uuid, Lock>)>;

/// Written records are locked `FOR NO KEY UPDATE`, deleted ones `FOR UPDATE`, checked
/// ones `FOR SHARE`, and the targets of written references `FOR KEY SHARE`.
fn records_to_lock(batch: &WriteBatch) -> LockPlan {
    let mut plan = LockPlan::new();
    let mut want = |kind: EntityKind, id: Uuid, lock: Lock| {
        let entry = plan.entry(kind.as_str()).or_insert_with(|| (kind, BTreeMap::new()));
        let slot = entry.1.entry(id).or_insert(lock);
        *slot = (*slot).min(lock);
    };
    for op in &batch.ops {
        match op {
            WriteOp::Insert(r) | WriteOp::Update { record: r, .. } => {
                want(r.kind, r.id, Lock::NoKeyUpdate);
                for target in &r.references {
                    want(target.kind, target.id, Lock::KeyShare);
                }
            }
            WriteOp::Delete { kind, id, .. } => want(*kind, *id, Lock::Update),
            WriteOp::Check { kind, id, .. } => want(*kind, *id, Lock::Share),
        }
    }
    plan
}

/// Locks the planned rows that exist, one statement per kind and lock strength, in id
/// order; returns their versions.
async fn lock_records(
    conn: &mut PgConnection,
    tenant: Uuid,
    plan: &LockPlan,
) -> Result<HashMap<(EntityKind, Uuid), u64>, Failure> {
    let mut versions = HashMap::new();
    for (kind, ids) in plan.values() {
        // A kind without a table has no rows: its references read as missing.
        let Some(table) = schema::table(*kind) else { continue };
        let mut by_lock: BTreeMap<Lock, Vec<Uuid>> = BTreeMap::new();
        for (id, lock) in ids {
            by_lock.entry(*lock).or_default().push(*id);
        }
        for (lock, ids) in by_lock {
            let sql = format!(
                "SELECT id, version FROM {} WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id {}",
                table.name,
                lock.sql()
            );
            let rows = sqlx::query(AssertSqlSafe(sql)).bind(tenant).bind(&ids).fetch_all(&mut *conn).await?;
            for row in rows {
                let id: Uuid = row.try_get(0)?;
                versions.insert((*kind, id), decode::version(*kind, id, row.try_get(1)?)?);
            }
        }
    }
    Ok(versions)
}

/// The unique keys a batch writes: per kind and field, the values.
type UniqueKeys = BTreeMap<(&'static str, &'static str), (EntityKind, Vec<String>)>;

fn unique_keys_written(batch: &WriteBatch) -> UniqueKeys {
    let mut keys = UniqueKeys::new();
    for op in &batch.ops {
        if let WriteOp::Insert(r) | WriteOp::Update { record: r, .. } = op {
            for key in &r.uniques {
                keys.entry((r.kind.as_str(), key.field))
                    .or_insert_with(|| (r.kind, Vec::new()))
                    .1
                    .push(key.value.clone());
            }
        }
    }
    keys
}

/// The records currently holding the written unique keys, one statement per kind and
/// field.
async fn read_unique_owners(
    conn: &mut PgConnection,
    tenant: Uuid,
    keys: UniqueKeys,
) -> Result<HashMap<(EntityKind, &'static str, String), Uuid>, Failure> {
    let mut owners = HashMap::new();
    for ((_, field), (kind, values)) in keys {
        let table = table_of(kind)?;
        let sql = format!("SELECT \"{field}\", id FROM {} WHERE tenant_id = $1 AND \"{field}\" = ANY($2)", table.name);
        let rows = sqlx::query(AssertSqlSafe(sql)).bind(tenant).bind(&values).fetch_all(&mut *conn).await?;
        for row in rows {
            owners.insert((kind, field, row.try_get(0)?), row.try_get(1)?);
        }
    }
    Ok(owners)
}

/// The records a batch deletes, per kind in name order.
type Deleted = BTreeMap<&'static str, (EntityKind, Vec<Uuid>)>;

fn deleted_per_kind(batch: &WriteBatch) -> Deleted {
    let mut deleted = Deleted::new();
    for op in &batch.ops {
        if let WriteOp::Delete { kind, id, .. } = op {
            deleted.entry(kind.as_str()).or_insert_with(|| (*kind, Vec::new())).1.push(*id);
        }
    }
    deleted
}

/// Who points at the deleted records, one statement per kind.
async fn read_referrers(
    conn: &mut PgConnection,
    tenant: Uuid,
    deleted: &Deleted,
) -> Result<HashMap<(EntityKind, Uuid), Vec<(EntityKind, Uuid)>>, Failure> {
    let mut referrers: HashMap<_, Vec<_>> = HashMap::new();
    for (kind, ids) in deleted.values() {
        let rows = sqlx::query(
            "SELECT kind, id, target_id FROM record_refs WHERE tenant_id = $1 AND target_kind = $2 \
             AND target_id = ANY($3)",
        )
        .bind(tenant)
        .bind(kind.as_str())
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let by: String = row.try_get(0)?;
            let by = decode::entity_kind("record_refs.kind", &by)?;
            let target: Uuid = row.try_get(2)?;
            referrers.entry((*kind, target)).or_default().push((by, row.try_get(1)?));
        }
    }
    Ok(referrers)
}

// Step 3: write.

/// The prepared records, by kind and id.
type ById<'p, 'r> = HashMap<(EntityKind, Uuid), &'p Prepared<'r>>;

/// Writes the batch (already checked) inside the transaction.
async fn apply(
    conn: &mut PgConnection,
    tenant: Uuid,
    batch: &WriteBatch,
    prepared: &[Prepared<'_>],
) -> Result<(), Failure> {
    let by_id: ById<'_, '_> = prepared.iter().map(|p| ((p.record.kind, p.record.id), p)).collect();
    let rewritten = update_and_delete(conn, tenant, batch, &by_id).await?;
    forget_references(conn, tenant, &rewritten).await?;
    for rows in inserts_per_table(batch, &by_id).values() {
        insert_rows(conn, tenant, rows).await?;
    }
    record_references(conn, tenant, prepared).await?;
    move_counters(conn, tenant, &batch.counters).await?;
    append_to_outbox(conn, tenant, &batch.events).await
}

/// Runs the batch's updates and deletes in its order, one statement each, every one
/// guarded by the version the batch expects; returns the records they touched.
async fn update_and_delete(
    conn: &mut PgConnection,
    tenant: Uuid,
    batch: &WriteBatch,
    by_id: &ById<'_, '_>,
) -> Result<Vec<(EntityKind, Uuid)>, Failure> {
    let mut rewritten = Vec::new();
    for op in &batch.ops {
        match op {
            WriteOp::Update { record, expected_version } => {
                let Some(p) = by_id.get(&(record.kind, record.id)) else { continue };
                update_record(conn, tenant, p, *expected_version).await?;
                rewritten.push((record.kind, record.id));
            }
            WriteOp::Delete { kind, id, expected_version } => {
                delete_record(conn, tenant, *kind, *id, *expected_version).await?;
                rewritten.push((*kind, *id));
            }
            WriteOp::Insert(_) | WriteOp::Check { .. } => {}
        }
    }
    Ok(rewritten)
}

/// `UPDATE … WHERE version = expected`: no row updated is a [`StorageError::Conflict`].
async fn update_record(
    conn: &mut PgConnection,
    tenant: Uuid,
    p: &Prepared<'_>,
    expected_version: u64,
) -> Result<(), Failure> {
    let record = p.record;
    let mut qb = QueryBuilder::<Postgres>::new(format!("UPDATE {} SET version = ", p.table.name));
    qb.push_bind(p.version);
    qb.push(", data = ");
    qb.push_bind(document(record));
    for (col, value) in p.table.written_columns().zip(&p.values) {
        qb.push(format!(", \"{}\" = ", col.field));
        value.clone().push(&mut qb);
    }
    qb.push(" WHERE tenant_id = ");
    qb.push_bind(tenant);
    qb.push(" AND id = ");
    qb.push_bind(record.id);
    qb.push(" AND version = ");
    qb.push_bind(to_i64(expected_version, "version")?);
    let done = qb.build().execute(&mut *conn).await?;
    if done.rows_affected() != 1 {
        return Err(StorageError::Conflict { kind: record.kind, id: record.id }.into());
    }
    Ok(())
}

/// `DELETE … WHERE version = expected`: no row deleted is a [`StorageError::Conflict`].
async fn delete_record(
    conn: &mut PgConnection,
    tenant: Uuid,
    kind: EntityKind,
    id: Uuid,
    expected_version: u64,
) -> Result<(), Failure> {
    let table = table_of(kind)?;
    let sql = format!("DELETE FROM {} WHERE tenant_id = $1 AND id = $2 AND version = $3", table.name);
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(to_i64(expected_version, "version")?)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != 1 {
        return Err(StorageError::Conflict { kind, id }.into());
    }
    Ok(())
}

/// Drops the recorded references of rewritten and deleted records, in one statement:
/// [`record_references`] writes the current ones of rewritten records again.
async fn forget_references(
    conn: &mut PgConnection,
    tenant: Uuid,
    rewritten: &[(EntityKind, Uuid)],
) -> Result<(), Failure> {
    if rewritten.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = rewritten.iter().map(|(k, _)| k.as_str()).collect();
    let ids: Vec<Uuid> = rewritten.iter().map(|(_, id)| *id).collect();
    sqlx::query(
        "DELETE FROM record_refs r USING UNNEST($2::text[], $3::uuid[]) AS x(kind, id) \
         WHERE r.tenant_id = $1 AND r.kind = x.kind AND r.id = x.id",
    )
    .bind(tenant)
    .bind(&kinds)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The batch's inserts, per table in name order, each table's in batch order.
fn inserts_per_table<'p, 'r>(
    batch: &WriteBatch,
    by_id: &ById<'p, 'r>,
) -> BTreeMap<&'static str, Vec<&'p Prepared<'r>>> {
    let mut inserts: BTreeMap<&'static str, Vec<&Prepared<'_>>> = BTreeMap::new();
    for op in &batch.ops {
        if let WriteOp::Insert(r) = op
            && let Some(p) = by_id.get(&(r.kind, r.id))
        {
            inserts.entry(p.table.name).or_default().push(p);
        }
    }
    inserts
}

/// Most rows one `INSERT … SELECT FROM UNNEST` carries.
const INSERT_CHUNK: usize = 5_000;

/// Inserts records of one table with multi-row statements.
async fn insert_rows(conn: &mut PgConnection, tenant: Uuid, rows: &[&Prepared<'_>]) -> Result<(), Failure> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_insert(&mut qb, tenant, chunk)?;
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Pushes `INSERT INTO <table> (…) SELECT $tenant, * FROM UNNEST(…)` for records of one
/// table (nothing for none).
fn push_insert(qb: &mut QueryBuilder<Postgres>, tenant: Uuid, rows: &[&Prepared<'_>]) -> Result<(), StorageError> {
    let Some(first) = rows.first() else { return Ok(()) };
    let table = first.table;
    let columns: Vec<_> = table.written_columns().collect();
    let mut ids = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut data = Vec::with_capacity(rows.len());
    let mut arrays: Vec<TypedArray> = columns.iter().map(|c| TypedArray::new(c.ty, rows.len())).collect();
    for p in rows {
        ids.push(p.record.id);
        versions.push(p.version);
        data.push(document(p.record));
        for (array, value) in arrays.iter_mut().zip(&p.values) {
            array.add(value.clone())?;
        }
    }
    qb.push(format!("INSERT INTO {} (tenant_id, id, version, data, {}) SELECT ", table.name, column_list(table)));
    qb.push_bind(tenant);
    qb.push(", * FROM UNNEST(");
    qb.push_bind(ids);
    qb.push(", ");
    qb.push_bind(versions);
    qb.push(", ");
    qb.push_bind(data);
    for array in arrays {
        qb.push(", ");
        array.push(qb);
    }
    qb.push(")");
    Ok(())
}

/// The written columns of a table, quoted, comma-separated.
fn column_list(table: &Table) -> String {
    table.written_columns().map(|c| format!("\"{}\"", c.field)).collect::<Vec<_>>().join(", ")
}

/// Records every reference of the written records, in one multi-row statement.
async fn record_references(conn: &mut PgConnection, tenant: Uuid, prepared: &[Prepared<'_>]) -> Result<(), Failure> {
    let mut qb = QueryBuilder::<Postgres>::new("");
    if push_record_refs(&mut qb, tenant, prepared) {
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Pushes the `INSERT INTO record_refs … ON CONFLICT DO NOTHING` of every reference of
/// the written records; `false` (and nothing pushed) when they have none.
fn push_record_refs(qb: &mut QueryBuilder<Postgres>, tenant: Uuid, prepared: &[Prepared<'_>]) -> bool {
    let refs = ReferenceRows::of(prepared);
    if refs.id.is_empty() {
        return false;
    }
    qb.push("INSERT INTO record_refs (tenant_id, kind, id, field, target_kind, target_id) SELECT ");
    qb.push_bind(tenant);
    qb.push(", * FROM UNNEST(");
    refs.push(qb);
    qb.push(") ON CONFLICT DO NOTHING");
    true
}

/// The references of written records as the columns of `record_refs`.
#[derive(Default)]
struct ReferenceRows {
    kind: Vec<&'static str>,
    id: Vec<Uuid>,
    field: Vec<&'static str>,
    target_kind: Vec<&'static str>,
    target_id: Vec<Uuid>,
}

impl ReferenceRows {
    fn of<'p, 'r: 'p>(prepared: impl IntoIterator<Item = &'p Prepared<'r>>) -> Self {
        let mut rows = Self::default();
        for p in prepared {
            for target in &p.record.references {
                rows.kind.push(p.record.kind.as_str());
                rows.id.push(p.record.id);
                rows.field.push(target.field);
                rows.target_kind.push(target.kind.as_str());
                rows.target_id.push(target.id);
            }
        }
        rows
    }

    /// Pushes the five arrays, comma-separated, as `text[], uuid[], text[], text[], uuid[]`.
    fn push(self, qb: &mut QueryBuilder<Postgres>) {
        qb.push_bind(self.kind);
        qb.push("::text[], ");
        qb.push_bind(self.id);
        qb.push("::uuid[], ");
        qb.push_bind(self.field);
        qb.push("::text[], ");
        qb.push_bind(self.target_kind);
        qb.push("::text[], ");
        qb.push_bind(self.target_id);
        qb.push("::uuid[]");
    }
}

/// Moves each counter by compare-and-set, one statement each: a counter not at the
/// expected value is a [`StorageError::Conflict`] of the tenant.
async fn move_counters(conn: &mut PgConnection, tenant: Uuid, counters: &[CounterUpdate]) -> Result<(), Failure> {
    for counter in counters {
        let done = sqlx::query(
            "INSERT INTO counters (tenant_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value WHERE counters.value = $4",
        )
        .bind(tenant)
        .bind(&counter.key)
        .bind(to_i64(counter.new, "counter value")?)
        .bind(to_i64(counter.expected, "counter value")?)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StorageError::Conflict { kind: EntityKind::Tenant, id: tenant }.into());
        }
    }
    Ok(())
}

/// Appends the batch's events to the outbox in one multi-row statement.
async fn append_to_outbox(conn: &mut PgConnection, tenant: Uuid, events: &[OutboxEvent]) -> Result<(), Failure> {
    if events.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<Postgres>::new("");
    push_outbox(&mut qb, tenant, events)?;
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

/// Pushes the `INSERT INTO outbox` of the events, with the nanoseconds a `timestamptz`
/// cannot hold beside each; an event of another tenant is invalid.
fn push_outbox(qb: &mut QueryBuilder<Postgres>, tenant: Uuid, events: &[OutboxEvent]) -> Result<(), StorageError> {
    let mut nanos = Vec::with_capacity(events.len());
    for e in events {
        if e.tenant_id.0 != tenant {
            return Err(StorageError::Invalid(format!("event {} belongs to another tenant", e.id)));
        }
        // chrono's nanoseconds are below 2·10⁹ (a leap second's included): an `int`.
        let nano = e.occurred_at.nanosecond();
        nanos.push(
            i32::try_from(nano).map_err(|_| {
                StorageError::Invalid(format!("event {}: {nano} nanoseconds do not fit an `int`", e.id))
            })?,
        );
    }
    qb.push(
        "INSERT INTO outbox (id, tenant_id, name, entity_kind, entity_id, payload, occurred_at, occurred_at_nanos) \
         SELECT * FROM UNNEST(",
    );
    qb.push_bind(events.iter().map(|e| e.id).collect::<Vec<_>>());
    qb.push("::uuid[], ");
    qb.push_bind(events.iter().map(|e| e.tenant_id.0).collect::<Vec<_>>());
    qb.push("::uuid[], ");
    qb.push_bind(events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>());
    qb.push("::text[], ");
    qb.push_bind(events.iter().map(|e| e.entity_kind.as_str()).collect::<Vec<_>>());
    qb.push("::text[], ");
    qb.push_bind(events.iter().map(|e| e.entity_id).collect::<Vec<_>>());
    qb.push("::uuid[], ");
    qb.push_bind(events.iter().map(|e| sqlx::types::Json(&e.payload)).collect::<Vec<_>>());
    qb.push("::jsonb[], ");
    qb.push_bind(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>());
    qb.push("::timestamptz[], ");
    qb.push_bind(nanos);
    qb.push("::int[])");
    Ok(())
}

#[cfg(test)]
mod tests {

    use crm_core::storage::Reference;

    use super::*;

    fn contact_pointing_at(id: Uuid, company: Uuid) -> Record {
        Record {
            kind: EntityKind::Contact,
            id,
            version: 1,
            data: crm_core::storage::Document::null(),
            fields: Vec::new(),
            uniques: Vec::new(),
            references: vec![Reference { field: "company_id", kind: EntityKind::Company, id: company }],
        }
    }

    #[test]
    fn each_record_is_locked_once_with_the_strongest_lock_it_needs() {
        let (contact, checked, deleted) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let batch = WriteBatch {
            ops: vec![
                WriteOp::Check { kind: EntityKind::Company, id: checked, version: 1 },
                WriteOp::Insert(contact_pointing_at(contact, checked)),
                WriteOp::Delete { kind: EntityKind::Company, id: deleted, expected_version: 1 },
                WriteOp::Update { record: contact_pointing_at(Uuid::now_v7(), deleted), expected_version: 1 },
            ],
            ..WriteBatch::default()
        };
        let plan = records_to_lock(&batch);
        assert_eq!(plan.keys().copied().collect::<Vec<_>>(), ["company", "contact"]);
        let companies = &plan["company"].1;
        assert_eq!(companies.get(&checked), Some(&Lock::Share), "FOR SHARE outranks FOR KEY SHARE");
        assert_eq!(companies.get(&deleted), Some(&Lock::Update), "FOR UPDATE outranks FOR KEY SHARE");
        assert_eq!(plan["contact"].1.get(&contact), Some(&Lock::NoKeyUpdate));
        assert_eq!(plan["contact"].1.len(), 2);
    }
}
