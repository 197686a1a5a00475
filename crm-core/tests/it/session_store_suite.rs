//! The session-store conformance suite on the core's stores: in process memory, and as
//! records of the in-memory storage.

use std::sync::Arc;

use crm_core::{
    session_store::{MemorySessionStore, SessionStore, StorageSessionStore},
    storage::memory::MemoryStorage,
};

crm_core::session_store_suite!(memory, || async { Arc::new(MemorySessionStore::new()) as Arc<dyn SessionStore> });
crm_core::session_store_suite!(storage_memory, || async {
    Arc::new(StorageSessionStore::new(MemoryStorage::shared())) as Arc<dyn SessionStore>
});
