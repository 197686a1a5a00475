//! The common batch as one statement: no `BEGIN`, no `COMMIT`, one round trip.
//!
//! A batch of inserts, updates and checks (no deletes, no counters, each record once)
//! goes out as one statement of data-modifying CTEs, which PostgreSQL runs as a
//! transaction of its own:
//!
//! - the records it checks or points at (and does not write) are locked, `FOR SHARE` /
//!   `FOR KEY SHARE`, at the version a check expects;
//! - the unique keys it writes are looked up among the other records;
//! - updates are one `UPDATE … FROM UNNEST(…) WHERE version = expected` per table,
//!   inserts one `INSERT … SELECT FROM UNNEST(…)` per table;
//! - the recorded references of updated records that they no longer hold are dropped,
//!   the written records' references recorded, the events appended to the outbox.
//!
//! The statement ends by dividing by its verdict: when a lock found fewer rows than
//! expected, an update missed its version or a unique key is held by another record,
//! the division by zero aborts the whole statement and nothing is written.
//!
//! Before anything is sent, the core's [`check_batch`](crm_core::storage::check_batch) runs on the state the statement
//! then confirms (the written records at the versions the batch expects, inserted ones
//! absent, the records pointed at present, no unique key held elsewhere): the batch
//! is committed only if `check_batch` on the real state passes too, and it writes what
//! the full way writes. When the statement refuses or fails for any database reason (a
//! check that does not hold, a constraint a concurrent commit made fail, a deadlock, a
//! value the schema refuses), the batch takes the full way, which reports the precise
//! contract error.

use std::collections::{BTreeMap, HashMap, HashSet};

use crm_core::storage::{EntityKind, StorageError, WriteBatch, WriteOp};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    Assumed, ById, LockPlan, Prepared, ReferenceRows, Shortcut, column_list, inserts_per_table, push_insert,
    push_outbox, push_record_refs, records_to_lock, to_i64,
};
use crate::{
    error::map,
    schema,
    values::{TypedArray, document},
};

/// Most operations a batch may have to go as one statement (larger ones are imports).
const MAX_OPS: usize = 1_000;

/// Whether the batch can go as one statement: only inserts, updates and checks, each
/// record once, no counters, every kind pointed at has a table, and the batch passes
/// [`check_batch`](crm_core::storage::check_batch) on the state the statement confirms.
pub(super) fn eligible(tenant: Uuid, batch: &WriteBatch) -> bool {
    if !batch.counters.is_empty() || batch.ops.len() > MAX_OPS || batch.events.iter().any(|e| e.tenant_id.0 != tenant) {
        return false;
    }
    let pointing_nowhere = batch.ops.iter().any(|op| match op {
        WriteOp::Insert(r) | WriteOp::Update { record: r, .. } => {
            r.references.iter().any(|t| schema::table(t.kind).is_none())
        }
        WriteOp::Delete { .. } | WriteOp::Check { .. } => false,
    });
    !pointing_nowhere && Assumed::holds_for(tenant, batch)
}

/// Sends the batch as one statement. Errors are only those that leave the outcome
/// unknown (the connection was lost): a refusal is [`Shortcut::NotTaken`].
pub(super) async fn commit(
    pool: &PgPool,
    tenant: Uuid,
    batch: &WriteBatch,
    prepared: &[Prepared<'_>],
) -> Result<Shortcut, StorageError> {
    let mut qb = match statement(tenant, batch, prepared) {
        Ok(qb) => qb,
        // The full way reports it, after the checks that come first.
        Err(_) => return Ok(Shortcut::NotTaken),
    };
    match qb.build().execute(pool).await {
        Ok(_) => Ok(Shortcut::Committed),
        Err(sqlx::Error::Database(_)) => Ok(Shortcut::NotTaken),
        Err(e) => Err(map(e)),
    }
}

/// Builds the statement of the module header.
fn statement(
    tenant: Uuid,
    batch: &WriteBatch,
    prepared: &[Prepared<'_>],
) -> Result<QueryBuilder<Postgres>, StorageError> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH ");
    let mut ctes = Ctes { qb: &mut qb, count: 0, verdict: Vec::new() };

    lock_the_others(&mut ctes, tenant, batch)?;
    look_up_unique_keys(&mut ctes, tenant, prepared);
    update_rows(&mut ctes, tenant, batch, prepared)?;

    let by_id: ById<'_, '_> = prepared.iter().map(|p| ((p.record.kind, p.record.id), p)).collect();
    let inserts = inserts_per_table(batch, &by_id);
    for rows in inserts.values() {
        ctes.open();
        push_insert(ctes.qb, tenant, rows)?;
        ctes.qb.push(")");
    }
    if prepared.iter().any(|p| !p.record.references.is_empty()) {
        ctes.open();
        push_record_refs(ctes.qb, tenant, prepared);
        ctes.qb.push(")");
    }
    if !batch.events.is_empty() {
        ctes.open();
        push_outbox(ctes.qb, tenant, &batch.events)?;
        ctes.qb.push(")");
    }

    ctes.finish();
    Ok(qb)
}

/// The CTEs of the statement being built, and the conditions of its verdict.
struct Ctes<'q> {
    qb: &'q mut QueryBuilder<Postgres>,
    count: usize,
    verdict: Vec<Condition>,
}

/// One condition of the verdict.
enum Condition {
    /// The CTE returned exactly this many rows.
    Rows(String, i64),
    /// The CTE returned no row.
    NoRow(String),
}

impl Ctes<'_> {
    /// Starts the next CTE (`c<n> AS (`); returns its name.
    fn open(&mut self) -> String {
        let name = format!("c{}", self.count);
        if self.count > 0 {
            self.qb.push(", ");
        }
        self.qb.push(format!("{name} AS ("));
        self.count += 1;
        name
    }

    /// Wants exactly `n` rows from the CTE `name`.
    fn expect_rows(&mut self, name: String, n: usize) -> Result<(), StorageError> {
        self.verdict.push(Condition::Rows(name, to_i64(n as u64, "row count")?));
        Ok(())
    }

    /// Ends the statement with `SELECT 1 / (<verdict>)::int`, the counts bound.
    fn finish(self) {
        let qb = self.qb;
        // A batch of checks only still needs one CTE to be a statement.
        if self.count == 0 {
            qb.push("nothing AS (SELECT 1)");
        }
        qb.push(" SELECT 1 / (true");
        for condition in self.verdict {
            match condition {
                Condition::Rows(name, n) => {
                    qb.push(format!(" AND (SELECT count(*) FROM {name}) = "));
                    qb.push_bind(n);
                }
                Condition::NoRow(name) => {
                    qb.push(format!(" AND NOT EXISTS (SELECT 1 FROM {name})"));
                }
            }
        }
        qb.push(")::int");
    }
}

/// Locks the records the batch checks or points at without writing them, at the
/// version a check expects; the verdict wants every one of them.
fn lock_the_others(ctes: &mut Ctes<'_>, tenant: Uuid, batch: &WriteBatch) -> Result<(), StorageError> {
    let written: HashSet<(EntityKind, Uuid)> = batch
        .ops
        .iter()
        .filter(|op| matches!(op, WriteOp::Insert(_) | WriteOp::Update { .. }))
        .map(WriteOp::target)
        .collect();
    let checked: HashMap<(EntityKind, Uuid), u64> = batch
        .ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Check { kind, id, version } => Some(((*kind, *id), *version)),
            _ => None,
        })
        .collect();
    let plan: LockPlan = records_to_lock(batch);
    for (kind, ids) in plan.values() {
        let Some(table) = schema::table(*kind) else { continue };
        let mut by_lock: BTreeMap<super::Lock, (Vec<Uuid>, Vec<Option<i64>>)> = BTreeMap::new();
        for (id, lock) in ids {
            if written.contains(&(*kind, *id)) {
                continue;
            }
            let expected = checked.get(&(*kind, *id)).map(|v| to_i64(*v, "version")).transpose()?;
            let entry = by_lock.entry(*lock).or_default();
            entry.0.push(*id);
            entry.1.push(expected);
        }
        for (lock, (ids, versions)) in by_lock {
            let n = ids.len();
            let name = ctes.open();
            ctes.qb.push(format!("SELECT t.id FROM {} t JOIN UNNEST(", table.name));
            ctes.qb.push_bind(ids);
            ctes.qb.push("::uuid[], ");
            ctes.qb.push_bind(versions);
            ctes.qb.push("::bigint[]) AS e(id, version) ON t.id = e.id WHERE t.tenant_id = ");
            ctes.qb.push_bind(tenant);
            ctes.qb
                .push(format!(" AND (e.version IS NULL OR t.version = e.version) ORDER BY t.id {} OF t)", lock.sql()));
            ctes.expect_rows(name, n)?;
        }
    }
    Ok(())
}

/// Looks up, per table and unique field, a written key held by another record; the
/// verdict wants none.
fn look_up_unique_keys(ctes: &mut Ctes<'_>, tenant: Uuid, prepared: &[Prepared<'_>]) {
    // Per table and field: the values, and the records writing them.
    type Keys<'a> = BTreeMap<(&'static str, &'static str), (Vec<&'a str>, Vec<Uuid>)>;
    let mut keys = Keys::new();
    for p in prepared {
        for key in &p.record.uniques {
            let entry = keys.entry((p.table.name, key.field)).or_default();
            entry.0.push(&key.value);
            entry.1.push(p.record.id);
        }
    }
    for ((table, field), (values, ids)) in keys {
        let name = ctes.open();
        ctes.qb.push(format!("SELECT 1 FROM {table} t JOIN UNNEST("));
        ctes.qb.push_bind(values);
        ctes.qb.push("::text[], ");
        ctes.qb.push_bind(ids);
        ctes.qb.push(format!("::uuid[]) AS k(value, id) ON t.\"{field}\" = k.value WHERE t.tenant_id = "));
        ctes.qb.push_bind(tenant);
        ctes.qb.push(" AND t.id <> k.id LIMIT 1)");
        ctes.verdict.push(Condition::NoRow(name));
    }
}

/// One `UPDATE … FROM UNNEST(…)` per table, each row guarded by the version the batch
/// expects; the verdict wants every row updated. Then the recorded references the
/// updated records no longer hold are dropped (the current ones are recorded with the
/// inserts' references).
fn update_rows(
    ctes: &mut Ctes<'_>,
    tenant: Uuid,
    batch: &WriteBatch,
    prepared: &[Prepared<'_>],
) -> Result<(), StorageError> {
    let by_id: HashMap<(EntityKind, Uuid), &Prepared<'_>> =
        prepared.iter().map(|p| ((p.record.kind, p.record.id), p)).collect();
    let mut per_table: BTreeMap<&'static str, Vec<(&Prepared<'_>, i64)>> = BTreeMap::new();
    let mut updated: Vec<&Prepared<'_>> = Vec::new();
    for op in &batch.ops {
        if let WriteOp::Update { record, expected_version } = op
            && let Some(p) = by_id.get(&(record.kind, record.id))
        {
            per_table.entry(p.table.name).or_default().push((p, to_i64(*expected_version, "version")?));
            updated.push(p);
        }
    }
    for rows in per_table.values() {
        let table = rows[0].0.table;
        let columns: Vec<_> = table.written_columns().collect();
        let mut arrays: Vec<TypedArray> = columns.iter().map(|c| TypedArray::new(c.ty, rows.len())).collect();
        for (p, _) in rows {
            for (array, value) in arrays.iter_mut().zip(&p.values) {
                array.add(value.clone())?;
            }
        }
        let name = ctes.open();
        let set: Vec<String> = columns.iter().map(|c| format!("\"{0}\" = u.\"{0}\"", c.field)).collect();
        ctes.qb.push(format!(
            "UPDATE {} AS t SET version = u.version, data = u.data, {} FROM UNNEST(",
            table.name,
            set.join(", ")
        ));
        ctes.qb.push_bind(rows.iter().map(|(p, _)| p.record.id).collect::<Vec<_>>());
        ctes.qb.push(", ");
        ctes.qb.push_bind(rows.iter().map(|(_, expected)| *expected).collect::<Vec<_>>());
        ctes.qb.push(", ");
        ctes.qb.push_bind(rows.iter().map(|(p, _)| p.version).collect::<Vec<_>>());
        ctes.qb.push(", ");
        ctes.qb.push_bind(rows.iter().map(|(p, _)| document(p.record)).collect::<Vec<_>>());
        for array in arrays {
            ctes.qb.push(", ");
            array.push(ctes.qb);
        }
        ctes.qb.push(format!(") AS u(id, expected, version, data, {}) WHERE t.tenant_id = ", column_list(table)));
        ctes.qb.push_bind(tenant);
        ctes.qb.push(" AND t.id = u.id AND t.version = u.expected RETURNING 1)");
        ctes.expect_rows(name, rows.len())?;
    }
    if !updated.is_empty() {
        // Only the references that are gone: the ones kept stay, and the insert of the
        // current ones skips them (two CTEs of one statement run in no fixed order).
        let current = ReferenceRows::of(updated.iter().copied());
        ctes.open();
        ctes.qb.push("DELETE FROM record_refs r USING UNNEST(");
        ctes.qb.push_bind(updated.iter().map(|p| p.record.kind.as_str()).collect::<Vec<_>>());
        ctes.qb.push("::text[], ");
        ctes.qb.push_bind(updated.iter().map(|p| p.record.id).collect::<Vec<_>>());
        ctes.qb.push("::uuid[]) AS x(kind, id) WHERE r.tenant_id = ");
        ctes.qb.push_bind(tenant);
        ctes.qb.push(" AND r.kind = x.kind AND r.id = x.id AND NOT EXISTS (SELECT 1 FROM UNNEST(");
        current.push(ctes.qb);
        ctes.qb.push(
            ") AS n(kind, id, field, target_kind, target_id) WHERE n.kind = r.kind AND n.id = r.id \
             AND n.field = r.field AND n.target_id = r.target_id))",
        );
    }
    Ok(())
}
