//! The session-store conformance suite on sessions kept as records of PostgreSQL, one
//! fresh database per case.

use std::sync::Arc;

use crm_core::session_store::{SessionStore, StorageSessionStore};
use crm_storage_postgres::testing::fresh_storage;

crm_core::session_store_suite!(storage_postgres, || async {
    Arc::new(StorageSessionStore::new(Arc::new(fresh_storage().await))) as Arc<dyn SessionStore>
});
