//! The job-queue conformance suite on the storage queue over the in-memory storage.

use std::sync::Arc;

use crm_core::{
    ManualClock,
    jobs::{JobQueue, StorageJobQueue},
    storage::memory::MemoryStorage,
};

crm_core::job_queue_suite!(storage_memory, |clock: Arc<ManualClock>| async move {
    Arc::new(StorageJobQueue::new(MemoryStorage::shared(), clock)) as Arc<dyn JobQueue>
});
