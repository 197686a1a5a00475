//! Core calls on in-memory storage with 100k contacts: create, get by id, a filtered
//! page of 50, lead conversion and payment recording.
//!
//! `cargo bench -p crm-benches --bench core`

use std::{sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use crm_benches::{core_calls, seed};
use crm_core::{conformance::World, storage::memory::MemoryStorage};
use tokio::runtime::Runtime;

const CONTACTS: usize = 100_000;
const COMPANIES: usize = 100;

fn memory(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let (world, data) = rt.block_on(async {
        let world = World::new(Arc::new(MemoryStorage::new())).await;
        let data = seed(&world.crm, &world.admin, COMPANIES, CONTACTS).await;
        (world, data)
    });
    core_calls(c, &rt, "memory", &world.crm, &world.admin, &data);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = memory
}
criterion_main!(benches);
