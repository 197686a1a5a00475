//! The crate's one integration-test binary: the conformance suite and the
//! PostgreSQL-specific tests, each on its own fresh database of a throwaway server
//! (or of `CRM_TEST_DATABASE_URL`).

use std::sync::Arc;

use crm_core::storage::Storage;
use crm_storage_postgres::testing::fresh_storage;

crm_core::conformance_suite!(postgres, || async { Arc::new(fresh_storage().await) as Arc<dyn Storage> });
