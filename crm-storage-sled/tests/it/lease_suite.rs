//! The lease conformance suite on leases kept as records of a sled storage.

use std::sync::Arc;

use crm_core::{
    ManualClock,
    leases::{Leases, StorageLeases},
};
use crm_storage_sled::SledStorage;

crm_core::lease_suite!(storage_sled, |clock: Arc<ManualClock>| async move {
    let storage = Arc::new(SledStorage::temporary().expect("temporary sled store"));
    Arc::new(StorageLeases::new(storage, clock)) as Arc<dyn Leases>
});
