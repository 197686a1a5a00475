//! The core calls on sled storage with 100k contacts (the same group as the in-memory
//! bench), a bulk insert of 100k contacts through `Storage::commit`, and the data set's
//! size on disk. Stores live in a temporary directory on disk; every measured commit is
//! flushed before it returns (the default durability).
//!
//! `cargo bench -p crm-benches --bench sled`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use crm_benches::{core_calls, seed, unsaved_contact};
use crm_core::{
    Crm,
    conformance::World,
    customers::companies::NewCompany,
    entity::to_record,
    passwords::PasswordPolicy,
    storage::{Storage, WriteBatch, WriteOp},
};
use crm_storage_sled::{Durability, SledStorage};
use tokio::runtime::Runtime;

const CONTACTS: usize = 100_000;
const COMPANIES: usize = 100;
const BULK_BATCH: usize = 1_000;

fn sled_core_calls(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = SledStorage::open(dir.path()).expect("open sled");
    // Seed without a disk sync per record, then sync once: seeding is not what is measured.
    let loading = storage.with_durability(Durability::Background);
    let started = Instant::now();
    let (world, data) = rt.block_on(async {
        let world = World::new(Arc::new(loading)).await;
        let data = seed(&world.crm, &world.admin, COMPANIES, CONTACTS).await;
        storage.flush().await.expect("flush");
        (world, data)
    });
    let bytes = storage.size_on_disk().expect("size on disk");
    println!(
        "sled: seeded {CONTACTS} contacts in {COMPANIES} companies (with audit entries) in {:.1} s; \
         {:.1} MiB on disk ({} bytes per contact)",
        started.elapsed().as_secs_f64(),
        bytes as f64 / (1 << 20) as f64,
        bytes / CONTACTS as u64,
    );
    let crm =
        Crm::builder(Arc::new(storage)).clock(world.clock.clone()).passwords(PasswordPolicy::insecure_fast()).build();
    core_calls(c, &rt, "sled", &crm, &world.admin, &data);
}

/// 100k contacts committed through the contract in batches of 1,000, into a fresh store.
fn sled_bulk_insert(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("sled_bulk");
    group.sample_size(10);
    group.bench_function("insert_100k_contacts", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temporary directory");
                let storage = Arc::new(SledStorage::open(dir.path()).expect("open sled"));
                let world = World::new(storage.clone()).await;
                let company = world
                    .crm
                    .companies()
                    .create(&world.admin, NewCompany { name: "Bulk".into(), ..NewCompany::default() })
                    .await
                    .expect("company");
                let batches: Vec<WriteBatch> = (0..CONTACTS)
                    .map(|i| WriteOp::Insert(to_record(&unsaved_contact(&world.admin, &company, i)).expect("record")))
                    .collect::<Vec<_>>()
                    .chunks(BULK_BATCH)
                    .map(|ops| WriteBatch { ops: ops.to_vec(), ..WriteBatch::default() })
                    .collect();
                let tenant = world.admin.tenant_id();
                let start = Instant::now();
                for batch in batches {
                    storage.commit(tenant, batch).await.expect("bulk commit");
                }
                spent += start.elapsed();
            }
            spent
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = sled_core_calls, sled_bulk_insert
}
criterion_main!(benches);
