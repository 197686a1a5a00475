//! The session-store conformance suite on Redis, one key prefix per case.

use std::sync::Arc;

use crm_cache_redis::{RedisSessionStore, testing};
use crm_core::session_store::SessionStore;

crm_core::session_store_suite!(redis, || async {
    Arc::new(RedisSessionStore::new(testing::connection().await, testing::unique_prefix())) as Arc<dyn SessionStore>
});
