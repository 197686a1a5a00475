//! Shared fixtures for the core's tests.

use crm_core::storage::memory::MemoryStorage;
pub use crm_core::conformance::World;

/// A fresh world on fresh in-memory storage.
pub async fn world() -> World {
    World::new(MemoryStorage::shared()).await
}
