//! The session-store conformance suite on sessions kept as records of a sled storage.

use std::sync::Arc;

use crm_core::session_store::{SessionStore, StorageSessionStore};
use crm_storage_sled::SledStorage;

crm_core::session_store_suite!(storage_sled, || async {
    let storage = Arc::new(SledStorage::temporary().expect("temporary sled store"));
    Arc::new(StorageSessionStore::new(storage)) as Arc<dyn SessionStore>
});
