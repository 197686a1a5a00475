//! crm-cache-redis's integration tests: one binary, each test on its own key prefix of
//! the process's throwaway Redis server (or of `CRM_TEST_REDIS_URL`).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

mod session_store_suite;
mod sessions;
