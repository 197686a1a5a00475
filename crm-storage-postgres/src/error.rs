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

/// The field a unique constraint of the schema concerns: `<table>_<field>_key`, or
/// `id` for the primary key.
fn unique_field(table: &str, constraint: &str) -> String {
    if constraint.ends_with("_pkey") {
        return "id".into();
    }
    constraint
        .strip_prefix(table)
        .and_then(|c| c.strip_prefix('_'))
        .and_then(|c| c.strip_suffix("_key"))
        .unwrap_or(constraint)
        .to_owned()
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
                    Some(kind) => StorageError::AlreadyExists { kind, field: unique_field(&table, &constraint) },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_constraints_name_their_field() {
        assert_eq!(unique_field("users", "users_email_key"), "email");
        assert_eq!(unique_field("api_keys", "api_keys_prefix_key"), "prefix");
        assert_eq!(unique_field("contacts", "contacts_pkey"), "id");
        assert_eq!(unique_field("products", "something_else"), "something_else");
        assert_eq!(kind_of_table("delivery_notes"), Some(EntityKind::DeliveryNote));
        assert_eq!(kind_of_table("record_refs"), None);
    }

    #[test]
    fn lost_connections_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(matches!(map(io), StorageError::Unavailable(_)));
        assert!(matches!(map(sqlx::Error::PoolTimedOut), StorageError::Unavailable(_)));
        assert!(matches!(map(sqlx::Error::RowNotFound), StorageError::Backend { .. }));
    }
}
