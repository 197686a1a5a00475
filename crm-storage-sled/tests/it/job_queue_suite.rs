//! The job-queue conformance suite on jobs kept as records of a sled storage.

use std::sync::Arc;

use crm_core::{
    ManualClock,
    jobs::{JobQueue, StorageJobQueue},
};
use crm_storage_sled::SledStorage;

crm_core::job_queue_suite!(storage_sled, |clock: Arc<ManualClock>| async move {
    let storage = Arc::new(SledStorage::temporary().expect("temporary sled store"));
    Arc::new(StorageJobQueue::new(storage, clock)) as Arc<dyn JobQueue>
});
