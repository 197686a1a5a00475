//! Embedded storage for crm-core on sled: the server's default.
//!
//! Not implemented yet. It will implement `crm_core::storage::Storage` and run
//! `crm_core::conformance_suite!` like every adapter.
