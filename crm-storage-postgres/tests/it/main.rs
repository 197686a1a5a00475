//! The crate's one integration-test binary: the conformance suite and the
//! PostgreSQL-specific tests, each on its own fresh database of a throwaway server
//! (or of `CRM_TEST_DATABASE_URL`).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

mod bulk;
mod errors;
mod job_queue_suite;
mod killed_worker;
mod lease_suite;
mod one_statement;
mod restart;
mod schema;
mod search;
mod session_store_suite;

/// The whole conformance suite, one fresh database per case.
mod conformance_postgres {
    use std::sync::Arc;

    use crm_core::storage::Storage;
    use crm_storage_postgres::testing::fresh_storage;

    crm_core::conformance_suite!(postgres, || async { Arc::new(fresh_storage().await) as Arc<dyn Storage> });
}

/// Contacts of the world's tenant, built directly as records (not through services).
pub(crate) fn contact_records(w: &crm_core::conformance::World, n: usize) -> Vec<crm_core::storage::Record> {
    use crm_core::{Meta, customers::contacts::Contact, entity::to_record};
    (0..n)
        .map(|i| {
            let c = Contact {
                meta: Meta::new(w.admin.tenant_id(), w.crm.now()),
                first_name: format!("Bulk{i}"),
                last_name: format!("Person{:05}", i % 1000),
                email: Some(format!("bulk{i}@example.test")),
                phone: None,
                position: None,
                company_id: None,
                owner_id: w.admin.user_id(),
                lead_id: None,
            };
            to_record(&c).unwrap()
        })
        .collect()
}
