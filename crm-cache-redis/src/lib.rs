//! Redis-backed cache, sessions, rate-limit counters and job queue for crm-core.
//!
//! Not implemented yet. Its storage decorator will run `crm_core::conformance_suite!`
//! like every adapter.
