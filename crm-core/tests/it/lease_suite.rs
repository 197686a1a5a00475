//! The lease conformance suite on the core's leases: in process memory, and as
//! records of the in-memory storage.

use std::sync::Arc;

use crm_core::{
    ManualClock,
    leases::{Leases, MemoryLeases, StorageLeases},
    storage::memory::MemoryStorage,
};

crm_core::lease_suite!(memory, |clock: Arc<ManualClock>| async move {
    Arc::new(MemoryLeases::new(clock)) as Arc<dyn Leases>
});
crm_core::lease_suite!(storage_memory, |clock: Arc<ManualClock>| async move {
    Arc::new(StorageLeases::new(MemoryStorage::shared(), clock)) as Arc<dyn Leases>
});
