//! The job-queue conformance suite on Redis Streams, one key prefix per case.

use std::sync::Arc;

use crm_cache_redis::{RedisJobQueue, testing};
use crm_core::{ManualClock, jobs::JobQueue};

crm_core::job_queue_suite!(redis, |clock: Arc<ManualClock>| async move {
    Arc::new(RedisJobQueue::new(testing::connection().await, testing::unique_prefix(), clock)) as Arc<dyn JobQueue>
});
