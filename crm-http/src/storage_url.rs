//! The one place a storage URL becomes a storage: `memory://`, `sled://PATH`,
//! `postgres://…`.

use std::sync::Arc;

use crm_core::storage::{Storage, memory::MemoryStorage};

/// A storage URL that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageUrlError {
    /// The scheme is not one of `memory`, `sled`, `postgres`/`postgresql`.
    #[error("unknown storage URL `{0}`: use memory://, sled://PATH or postgres://…")]
    UnknownScheme(String),
    /// The scheme is known, but its adapter is not part of this build.
    #[error("{0} storage is not available in this build yet; use memory://")]
    NotAvailable(&'static str),
}

/// Whether data in this storage outlives the process.
pub fn is_persistent(url: &str) -> bool {
    !url.starts_with("memory://")
}

/// Opens the storage a URL names.
pub async fn open_storage(url: &str) -> Result<Arc<dyn Storage>, StorageUrlError> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("memory") => Ok(MemoryStorage::shared()),
        Some("sled") => Err(StorageUrlError::NotAvailable("sled")),
        Some("postgres" | "postgresql") => Err(StorageUrlError::NotAvailable("PostgreSQL")),
        _ => Err(StorageUrlError::UnknownScheme(url.to_owned())),
    }
}
