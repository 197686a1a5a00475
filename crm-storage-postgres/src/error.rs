//! Translating driver errors into the contract's [`StorageError`]: no sqlx type leaves
//! this crate.

use std::fmt;

use crm_core::storage::{EntityKind, StorageError};

use crate::schema::TABLES;

/// A backend failure the contract has no word for, as text only.
#[derive(Debug)]
pub(crate) struct BackendFailure(pub(crate) String);

impl fmt::Display for BackendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendFailure {}

/// A backend failure with a message.
pub(crate) fn backend(message: impl Into<String>) -> StorageError {
    StorageError::Backend { source: Box::new(BackendFailure(message.into())) }
}

/// How a failed transaction attempt should be handled.
pub(crate) enum Failure {
    /// A contract error: report it.
    Storage(StorageError),
    /// A transient database error (serialization failure, deadlock, or a constraint a
    /// concurrent commit made fail): run the batch again, its checks will see why.
    Retry(sqlx::Error),
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        match db_code(&e).as_deref() {
            Some("40001" | "40P01" | "23505" | "23503") => Self::Retry(e),
            _ => Self::Storage(map(e)),
        }
    }
}

fn db_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The kind whose table a constraint or table name belongs to.
fn kind_of_table(table: &str) -> Option<EntityKind> {
    let t = TABLES.iter().find(|t| t.name == table)?;
    t.kind.parse().ok()
}

/// Translates a driver error.
pub(crate) fn map(e: sqlx::Error) -> StorageError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = db.message().to_owned();
            let constraint = db.constraint().unwrap_or_default().to_owned();
            let table = db.table().unwrap_or_default().to_owned();
            match code.as_str() {
                // A unique key taken by a concurrent commit that the retries did not resolve.
                "23505" => match kind_of_table(&table) {
                    Some(kind) => {
                        let field = constraint
                            .strip_prefix(&format!("{table}_"))
                            .and_then(|c| c.strip_suffix("_key"))
                            .unwrap_or(if constraint.ends_with("_pkey") { "id" } else { constraint.as_str() })
                            .to_owned();
                        StorageError::AlreadyExists { kind, field }
                    }
                    None => StorageError::Invalid(format!("duplicate value ({constraint}): {message}")),
                },
                "23503" => StorageError::Invalid(format!("reference constraint {constraint} failed: {message}")),
                "40001" | "40P01" => {
                    StorageError::Unavailable(format!("the database kept aborting the commit: {message}"))
                }
                // Data exceptions (NUL bytes, out-of-range values, bad encodings) and the
                // schema's own checks: the input is wrong, not the database.
                c if c.starts_with("22") || c.starts_with("23") || c == "P0001" => StorageError::Invalid(format!(
                    "{message}{}",
                    if constraint.is_empty() { String::new() } else { format!(" ({constraint})") }
                )),
                // Connection exceptions, shutdowns, too many connections, read-only standby.
                c if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") || c == "25006" => {
                    StorageError::Unavailable(format!("postgres: {message}"))
                }
                _ => backend(format!("postgres error {code}: {message}")),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StorageError::Unavailable(e.to_string()),
        other => backend(other.to_string()),
    }
}
