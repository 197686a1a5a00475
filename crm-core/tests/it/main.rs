//! crm-core's integration tests: one binary, one module per area.

// Test code may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod api_keys;
mod authz;
mod catalog;
mod consistency;
mod crm;
mod documents;
mod events;
mod fields;
mod idempotency;
mod input;
mod invariants;
mod job_queue_suite;
mod jobs;
mod lease_suite;
mod mail;
mod money;
mod principal_cache;
mod projects;
mod rate_limiter_suite;
mod rate_limits;
mod report_runs;
mod reports;
mod sales;
mod schedule;
mod security_events;
mod session_management;
mod session_store_suite;
mod sessions;
mod sign_in;
mod state_guards;
mod streak_store_suite;
mod support;
mod time_zones;
mod webhook_endpoints;
mod webhooks;
mod conformance_memory {
    use std::sync::Arc;

    use crm_core::storage::{Storage, memory::MemoryStorage};

    crm_core::conformance_suite!(memory, || async { Arc::new(MemoryStorage::new()) as Arc<dyn Storage> });
}
