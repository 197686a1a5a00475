//! The lease conformance suite on leases kept as records of PostgreSQL, one fresh
//! database per case.

use std::sync::Arc;

use crm_core::{
    ManualClock,
    leases::{Leases, StorageLeases},
};
use crm_storage_postgres::testing::fresh_storage;

crm_core::lease_suite!(storage_postgres, |clock: Arc<ManualClock>| async move {
    Arc::new(StorageLeases::new(Arc::new(fresh_storage().await), clock)) as Arc<dyn Leases>
});
