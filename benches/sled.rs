//! The core calls on sled storage with 100k contacts (the same group as the in-memory
//! bench), a bulk insert of 100k contacts through `Storage::commit` (in batches of
//! 1,000, and as one batch), contacts created by 16 concurrent callers of one tenant,
//! and the data set's size on disk. Stores live in a temporary directory on disk; every
//! measured commit is flushed before it returns (the default durability).
//!
//! `cargo bench -p crm-benches --bench sled` (the bulk and concurrent groups alone:
//! `cargo bench -p crm-benches --bench sled -- 'sled_bulk|sled_concurrent'`)

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

/// 100k contacts committed through the contract in batches of 1,000 and in one batch,
/// into a fresh store.
fn sled_bulk_insert(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("sled_bulk");
    group.sample_size(10);
    group.throughput(criterion::Throughput::Elements(CONTACTS as u64));
    for (name, batch_size) in [("insert_100k_contacts", BULK_BATCH), ("insert_100k_contacts_one_batch", CONTACTS)] {
        bulk_insert(&rt, &mut group, name, batch_size);
    }
    group.finish();
}

fn bulk_insert(
    rt: &Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    batch_size: usize,
) {
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| async move {
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
                    .chunks(batch_size)
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
}

/// Contacts created through the service by 16 concurrent callers of one tenant (as 16
/// HTTP connections do), each commit flushed before it returns: what group commit serves.
fn sled_concurrent_creates(c: &mut Criterion) {
    const CALLERS: usize = 16;
    const EACH: usize = 50;
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = SledStorage::open(dir.path()).expect("open sled");
    let (world, companies) = rt.block_on(async {
        let world = World::new(Arc::new(storage)).await;
        let companies = seed(&world.crm, &world.admin, 10, 0).await.companies;
        (Arc::new(world), Arc::new(companies))
    });
    let mut group = c.benchmark_group("sled_concurrent");
    group.sample_size(10);
    group.throughput(criterion::Throughput::Elements((CALLERS * EACH) as u64));
    let mut round = 0;
    group.bench_function("create_contacts_16_callers", |b| {
        b.to_async(&rt).iter(|| {
            round += 1;
            let (world, companies) = (world.clone(), companies.clone());
            async move {
                let callers: Vec<_> = (0..CALLERS)
                    .map(|caller| {
                        let (world, companies) = (world.clone(), companies.clone());
                        tokio::spawn(async move {
                            for n in 0..EACH {
                                let i = (round * CALLERS + caller) * EACH + n;
                                let input = crm_benches::new_contact(i, &companies[i % companies.len()]);
                                world.crm.contacts().create(&world.admin, input).await.expect("create");
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.expect("caller");
                }
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = sled_core_calls, sled_bulk_insert, sled_concurrent_creates
}
criterion_main!(benches);
