//! PostgreSQL storage for crm-core, for many stateless server instances on one database.
//!
//! Not implemented yet. It will implement `crm_core::storage::Storage` and run
//! `crm_core::conformance_suite!` like every adapter.
