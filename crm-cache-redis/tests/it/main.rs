//! crm-cache-redis's integration tests: one binary, each test on its own key prefix of
//! the process's throwaway Redis server (or of `CRM_TEST_REDIS_URL`), or on a server of
//! its own when it stops Redis.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

mod cache;
mod job_queue_suite;
mod killed_worker;
mod lease_suite;
mod rate_limiter_suite;
mod rate_limits;
mod session_store_suite;
mod sessions;
mod streak_store_suite;

use std::sync::Arc;

use crm_cache_redis::{CacheOptions, CachedStorage, testing};
use crm_core::storage::Storage;

/// `inner` behind a cache on the process's test server, under a prefix of its own.
async fn cached<S: Storage>(inner: S) -> Arc<dyn Storage> {
    let options = CacheOptions::with_prefix(testing::unique_prefix());
    Arc::new(CachedStorage::new(inner, testing::connection().await, options))
}

/// The whole conformance suite through the cache, around each adapter.
mod conformance_redis_memory {
    use crm_core::storage::memory::MemoryStorage;

    crm_core::conformance_suite!(redis_memory, || async { crate::cached(MemoryStorage::new()).await });
}

mod conformance_redis_sled {
    use crm_storage_sled::SledStorage;

    crm_core::conformance_suite!(redis_sled, || async {
        crate::cached(SledStorage::temporary().expect("temporary sled store")).await
    });
}

mod conformance_redis_postgres {
    use crm_storage_postgres::testing::fresh_storage;

    crm_core::conformance_suite!(redis_postgres, || async { crate::cached(fresh_storage().await).await });
}
