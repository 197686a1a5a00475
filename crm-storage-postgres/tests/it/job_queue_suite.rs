//! The job-queue conformance suite on jobs kept as records of PostgreSQL, one fresh
//! database per case.

use std::sync::Arc;

use crm_core::{
    ManualClock,
    jobs::{JobQueue, StorageJobQueue},
};
use crm_storage_postgres::testing::fresh_storage;

crm_core::job_queue_suite!(storage_postgres, |clock: Arc<ManualClock>| async move {
    Arc::new(StorageJobQueue::new(Arc::new(fresh_storage().await), clock)) as Arc<dyn JobQueue>
});
