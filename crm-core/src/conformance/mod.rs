//! The storage conformance suite: one set of behaviour cases that every storage
//! adapter, and every decorator over one, must pass. Enabled by the `conformance`
//! feature; an adapter crate runs it with one line:
//!
//! ```ignore
//! crm_core::conformance_suite!(my_adapter, || async { std::sync::Arc::new(MyStorage::open_temp().await) });
//! ```

mod fixture;

pub use fixture::World;
