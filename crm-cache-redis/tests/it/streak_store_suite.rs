//! The streak-store conformance suite on Redis, one key prefix per store.

use std::sync::Arc;

use crm_cache_redis::{RedisStreaks, testing};
use crm_core::rate_limit::sign_in::StreakStore;

crm_core::streak_store_suite!(redis, || async {
    Arc::new(RedisStreaks::new(testing::connection().await, testing::unique_prefix())) as Arc<dyn StreakStore>
});
