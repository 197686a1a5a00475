//! The rate-limiter conformance suite on Redis, one key prefix per limiter.

use std::{sync::Arc, time::Duration};

use crm_cache_redis::{RedisRateLimiter, testing};
use crm_core::rate_limit::{RateLimiter, gcra::GcraQuota};

crm_core::rate_limiter_suite!(redis, |limit: u32, period: Duration| async move {
    let quota = GcraQuota::new(limit, period);
    Arc::new(RedisRateLimiter::new(testing::connection().await, &testing::unique_prefix(), quota))
        as Arc<dyn RateLimiter>
});
