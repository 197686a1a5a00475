//! The lease conformance suite on Redis, one key prefix per case. Redis times leases
//! by its own clock: the suite lets real time pass along with the manual clock.

use std::sync::Arc;

use crm_cache_redis::{RedisLeases, testing};
use crm_core::{ManualClock, leases::Leases};

crm_core::lease_suite!(redis, |_clock: Arc<ManualClock>| async move {
    Arc::new(RedisLeases::new(testing::connection().await, testing::unique_prefix())) as Arc<dyn Leases>
});
