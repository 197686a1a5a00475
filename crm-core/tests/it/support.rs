//! Shared fixtures for the core's tests.

pub use crm_core::conformance::World;
use crm_core::storage::memory::MemoryStorage;

/// A fresh world on fresh in-memory storage.
pub async fn world() -> World {
    World::new(MemoryStorage::shared()).await
}
