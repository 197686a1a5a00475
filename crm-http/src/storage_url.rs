//! The one place a storage URL becomes a storage: `memory://`, `sled://PATH`,
//! `postgres://…`.

use std::{sync::Arc, time::Duration};

use crm_core::storage::{Storage, StorageError, memory::MemoryStorage};
use crm_storage_postgres::{PostgresOptions, PostgresStorage};
use crm_storage_sled::SledStorage;

/// A storage URL that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageUrlError {
    /// The scheme is not one of `memory`, `sled`, `postgres`/`postgresql`.
    #[error("unknown storage URL `{0}`: use memory://, sled://PATH or postgres://…")]
    UnknownScheme(String),
    /// `sled://` without a path.
    #[error("a sled storage URL needs a directory: sled://./crm-data/db")]
    MissingPath,
    /// The sled directory cannot be opened.
    #[error("cannot open the sled storage: {0}")]
    Sled(#[from] crm_storage_sled::OpenError),
    /// PostgreSQL cannot be reached or migrated.
    #[error("cannot open the PostgreSQL storage: {0}")]
    Postgres(StorageError),
}

/// Whether data in this storage outlives the process.
pub fn is_persistent(url: &str) -> bool {
    !url.starts_with("memory://")
}

/// How long a storage call waits for the storage (a PostgreSQL pool's wait for a
/// connection) before failing with `Unavailable`, so requests during an outage answer
/// 503 promptly instead of hanging (`--storage-timeout`).
pub const DEFAULT_STORAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a whole storage call may take once it has its connection: a query to a
/// server that stopped answering fails with `Unavailable` after it
/// (`--storage-call-timeout`). Long enough for the heaviest report on a large tenant.
pub const DEFAULT_STORAGE_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long storage calls may wait (embedded storages never wait for a connection and
/// never lose one: these bound PostgreSQL).
#[derive(Clone, Copy, Debug)]
pub struct StorageTimeouts {
    /// The wait for a connection ([`DEFAULT_STORAGE_TIMEOUT`]).
    pub wait: Duration,
    /// A whole call, the wait included ([`DEFAULT_STORAGE_CALL_TIMEOUT`]).
    pub call: Duration,
}

impl Default for StorageTimeouts {
    fn default() -> Self {
        Self { wait: DEFAULT_STORAGE_TIMEOUT, call: DEFAULT_STORAGE_CALL_TIMEOUT }
    }
}

/// Opens the storage a URL names, its calls bounded by `timeouts`.
pub async fn open_storage(url: &str, timeouts: StorageTimeouts) -> Result<Arc<dyn Storage>, StorageUrlError> {
    match url.split_once("://") {
        Some(("memory", _)) => Ok(MemoryStorage::shared()),
        Some(("sled", "")) => Err(StorageUrlError::MissingPath),
        Some(("sled", path)) => Ok(Arc::new(SledStorage::open(path)?)),
        Some(("postgres" | "postgresql", _)) => {
            let options = PostgresOptions {
                acquire_timeout: timeouts.wait,
                call_timeout: timeouts.call.max(timeouts.wait),
                ..PostgresOptions::default()
            };
            Ok(Arc::new(PostgresStorage::connect_with(url, options).await.map_err(StorageUrlError::Postgres)?))
        }
        _ => Err(StorageUrlError::UnknownScheme(url.to_owned())),
    }
}
