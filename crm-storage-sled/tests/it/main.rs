//! crm-storage-sled's integration tests: one binary, one module per concern.

// Test code may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod corrupt;
mod dump;
mod durability;
mod job_queue_suite;
mod killed_worker;
mod lease_suite;
mod measure;
mod open;
mod rng;
mod session_store_suite;
mod sorted;
mod zstd_reuse;

mod conformance_sled {
    use std::sync::Arc;

    use crm_core::storage::Storage;
    use crm_storage_sled::SledStorage;

    crm_core::conformance_suite!(sled, || async {
        Arc::new(SledStorage::temporary().expect("temporary sled store")) as Arc<dyn Storage>
    });
}
