//! Shared fixtures for the core's tests.

use std::sync::Arc;

pub use crm_core::conformance::World;
use crm_core::{
    Crm,
    passwords::PasswordPolicy,
    session_store::{MemorySessionStore, SessionStore, StorageSessionStore},
    storage::memory::MemoryStorage,
};

/// A fresh world on fresh in-memory storage.
pub async fn world() -> World {
    World::new(MemoryStorage::shared()).await
}

/// The same world, with sessions kept in `store` (`None`: the CRM's own storage).
pub async fn world_with_sessions(store: Option<Arc<dyn SessionStore>>) -> World {
    let mut w = world().await;
    if let Some(store) = store {
        w.crm = Crm::builder(w.crm.storage().clone())
            .clock(w.clock.clone())
            .passwords(PasswordPolicy::insecure_fast())
            .session_store(store)
            .build();
    }
    w
}

/// One world per session store: the CRM's storage, process memory, storage records.
pub async fn world_on_each_session_store() -> Vec<World> {
    vec![
        world_with_sessions(None).await,
        world_with_sessions(Some(Arc::new(MemorySessionStore::new()))).await,
        world_with_sessions(Some(Arc::new(StorageSessionStore::new(MemoryStorage::shared())))).await,
    ]
}
