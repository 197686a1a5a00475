//! PostgreSQL storage for crm-core, for many stateless server instances on one database.
//!
//! [`PostgresStorage`] implements [`crm_core::storage::Storage`] over a relational schema:
//! one table per entity kind with typed, indexed columns for every indexed field (see
//! `migrations/` and the mapping in `schema.rs`), composite foreign keys and unique
//! constraints per tenant, a per-tenant `counters` table and a transactional `outbox`.
//!
//! - **Migrations** are embedded and applied by [`PostgresStorage::connect`]; a database
//!   migrated by a newer binary is refused.
//! - **Commits** run in one transaction: the touched rows are locked, the core's own batch
//!   rules ([`crm_core::storage::check_batch`]) run against what the transaction read, then
//!   the writes go out as multi-row statements. Versions are compared again in every
//!   `UPDATE … WHERE version = $n`; foreign keys and unique constraints back the checks up
//!   against concurrent commits. Serialization failures, deadlocks and constraint races
//!   are retried a bounded number of times. Two shapes go a shorter way first: a batch of
//!   inserts, updates and checks is one statement (one round trip, locks, checks and
//!   writes together), and an import of a thousand inserts or more goes through binary
//!   `COPY` into staging tables; when their checks do not hold, nothing is written and
//!   the batch takes the full way, which reports why.
//! - **Reads** are single statements on typed columns: keyset pagination on
//!   `(tenant_id, field, id)` indexes, trigram-indexed text search, `GROUP BY` aggregates.
//! - **Failures** are the contract's [`StorageError`]s: connection loss is `Unavailable`
//!   and the pool reconnects by itself. A value read back that the contract cannot hold
//!   (a negative version or counter, an unknown entity kind) is `Backend`, naming it.

mod commit;
mod decode;
mod error;
mod outbox;
mod query;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod values;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        StreamedEvent, WriteBatch,
    },
};
use sqlx::{
    AssertSqlSafe, PgPool,
    migrate::{MigrateError, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use uuid::Uuid;

use crate::{decode::stored, error::map, schema::Table};

/// How long a pooled connection may sit idle before it is tested on acquire.
const IDLE_BEFORE_PING: Duration = Duration::from_millis(250);

/// The schema migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!();

/// Connection pool and commit settings.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Most connections the pool opens (default 16).
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing with `Unavailable`
    /// (default 10 s).
    pub acquire_timeout: Duration,
    /// How many times a commit is attempted when PostgreSQL aborts it for a serialization
    /// failure, a deadlock or a constraint race with a concurrent commit (default 8).
    pub commit_attempts: u32,
    /// Apply the embedded migrations on connect (default `true`). When `false`, call
    /// [`PostgresStorage::migrate`] yourself.
    pub migrate: bool,
    /// The longest a whole storage call may take, connection wait included, before it
    /// fails with `Unavailable` (default 30 s). It bounds what `acquire_timeout` cannot:
    /// a query on an open connection to a server that stopped answering (frozen, or cut
    /// off without a reset) would otherwise wait for the operating system's TCP timeout.
    /// A commit cut off this way may still have committed, as with any lost connection.
    pub call_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            commit_attempts: 8,
            migrate: true,
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// The PostgreSQL storage adapter. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    options: PostgresOptions,
}

/// Shows the pool's state and options, never the connection URL (it may hold a password).
impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .field("options", &self.options)
            .finish()
    }
}

impl PostgresStorage {
    /// Connects a pool to `url` (`postgres://user:pass@host:port/db`, or a unix socket
    /// with `?host=/path/to/dir`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresStorage::connect`] with explicit options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        let connect: PgConnectOptions =
            url.parse().map_err(|e| StorageError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // A connection is tested (one round trip) only after it sat idle for a while:
            // busy connections are known good (the pool pings them on release), and a
            // stale one from before a server restart is found and replaced here.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(map)?;
        let storage = Self { pool, options };
        if storage.options.migrate {
            storage.migrate().await?;
        }
        Ok(storage)
    }

    /// Applies the embedded migrations that the database lacks; idempotent, and safe to
    /// run from several instances at once (the migrator takes an advisory lock). Refuses
    /// a database whose schema is newer than this binary.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            MigrateError::VersionMissing(version) => error::backend(format!(
                "the database schema is at migration {version}, which this binary does not know (it knows up to {}): \
                 the database was migrated by a newer release; upgrade this one",
                latest_migration()
            )),
            MigrateError::VersionMismatch(version) => error::backend(format!(
                "migration {version} applied to the database differs from the one in this binary: refusing to run"
            )),
            MigrateError::Execute(e) => map(e),
            other => error::backend(format!("migration failed: {other}")),
        })
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one storage call within [`PostgresOptions::call_timeout`]. Dropping a sqlx
    /// call midway is safe: the connection finishes (or is discarded) before reuse.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T, StorageError>>) -> Result<T, StorageError> {
        let limit = self.options.call_timeout;
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(StorageError::Unavailable(format!("PostgreSQL did not answer within {} ms", limit.as_millis())))
        })
    }

    fn table(kind: EntityKind) -> Result<&'static Table, StorageError> {
        schema::table(kind).ok_or_else(|| {
            StorageError::Invalid(format!("this release of the PostgreSQL schema has no table for {kind} records"))
        })
    }
}

/// The newest migration version embedded in this binary.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

#[async_trait]
impl Storage for PostgresStorage {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        self.bounded(async {
            let table = Self::table(kind)?;
            let sql = format!("SELECT id, version, data FROM {} WHERE tenant_id = $1 AND id = $2", table.name);
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?;
            row.map(|r| stored(kind, &r)).transpose()
        })
        .await
    }

    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        self.bounded(async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let table = Self::table(kind)?;
            let sql = format!("SELECT id, version, data FROM {} WHERE tenant_id = $1 AND id = ANY($2)", table.name);
            let rows =
                sqlx::query(AssertSqlSafe(sql)).bind(tenant.0).bind(ids).fetch_all(&self.pool).await.map_err(map)?;
            rows.iter().map(|r| stored(kind, r)).collect()
        })
        .await
    }

    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        self.bounded(async { query::list(&self.pool, tenant.0, kind, Self::table(kind)?, query).await }).await
    }

    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.bounded(async { query::aggregate(&self.pool, tenant.0, Self::table(kind)?, query).await }).await
    }

    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        self.bounded(async {
            let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE tenant_id = $1 AND key = $2")
                .bind(tenant.0)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?;
            // A counter never written has no row: it is 0.
            value.map_or(Ok(0), |v| decode::counter(key, v))
        })
        .await
    }

    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        self.bounded(async { commit::commit(&self.pool, self.options.commit_attempts, tenant.0, &batch).await }).await
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        self.bounded(outbox::pending(&self.pool, limit)).await
    }

    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        self.bounded(outbox::ack(&self.pool, ids)).await
    }

    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        self.bounded(outbox::stream(&self.pool, tenant, after, limit)).await
    }

    async fn outbox_position(&self) -> Result<u64, StorageError> {
        self.bounded(outbox::position(&self.pool)).await
    }

    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        self.bounded(outbox::prune(&self.pool, acked_before, limit)).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.bounded(async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map)?;
            Ok(())
        })
        .await
    }
}
