//! Measurements to run by hand; they print numbers and assert nothing about time or
//! size (machines differ):
//!
//! `cargo nextest run -p crm-storage-sled --run-ignored only --no-capture measure::`
//!
//! - `bytes_per_contact`: contacts created through the services (each with its audit
//!   entry, one commit each, as the HTTP API makes them) in 100 companies; the store's
//!   size on disk per contact, and the process's resident memory. `CRM_MEASURE_CONTACTS`
//!   sets the number (default 20,000).
//! - `bulk_commit`: 100k contact inserts committed in one batch and in batches of 1,000,
//!   rows per second (`CRM_MEASURE_BATCHES=100000,1000` sets the batch sizes).
//! - `concurrent_creates`: contacts created by 16 concurrent callers of one tenant, each
//!   commit flushed before it returns (the default durability), creates per second.
//!
//! `CRM_MEASURE_COMPRESSION=0` measures stores created without compression.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crm_core::{
    Crm, Meta, Principal,
    conformance::World,
    customers::{
        companies::{Company, NewCompany},
        contacts::{Contact, NewContact},
    },
    entity::{Entity, to_record},
    storage::{Storage, WriteBatch, WriteOp},
};
use crm_storage_sled::{Durability, SledOptions, SledStorage};

fn new_contact(i: usize, company: &Company) -> NewContact {
    NewContact {
        first_name: format!("First{i}"),
        last_name: format!("Last{:04}", i % 5000),
        email: Some(format!("contact{i}@bench.test")),
        company_id: Some(company.id()),
        ..NewContact::default()
    }
}

fn unsaved_contact(admin: &Principal, company: &Company, i: usize) -> Contact {
    let input = new_contact(i, company);
    Contact {
        meta: Meta::new(admin.tenant_id(), chrono::Utc::now()),
        first_name: input.first_name,
        last_name: input.last_name,
        email: input.email,
        phone: None,
        position: None,
        company_id: input.company_id,
        owner_id: admin.user_id(),
        lead_id: None,
    }
}

async fn companies(crm: &Crm, admin: &Principal, n: usize) -> Vec<Company> {
    let mut companies = Vec::with_capacity(n);
    for i in 0..n {
        let input = NewCompany { name: format!("Company {i:05}"), ..NewCompany::default() };
        companies.push(crm.companies().create(admin, input).await.unwrap());
    }
    companies
}

/// A new store in `dir`, compressed unless `CRM_MEASURE_COMPRESSION=0`.
fn open(dir: &std::path::Path) -> SledStorage {
    let compression = std::env::var("CRM_MEASURE_COMPRESSION").map_or(true, |v| v != "0");
    SledStorage::open_with(dir, SledOptions { compression, ..SledOptions::default() }).unwrap()
}

/// The resident memory of this process, in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement to run by hand"]
async fn bytes_per_contact() {
    let contacts: usize = std::env::var("CRM_MEASURE_CONTACTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    println!("idle store: {:.1} MiB resident", rss_mib());
    let loading = storage.with_durability(Durability::Background);
    let world = World::new(Arc::new(loading)).await;
    let companies = companies(&world.crm, &world.admin, 100).await;
    let empty = storage.size_on_disk().unwrap();
    let started = Instant::now();
    for i in 0..contacts {
        world.crm.contacts().create(&world.admin, new_contact(i, &companies[i % 100])).await.unwrap();
    }
    storage.flush().await.unwrap();
    let seeded = started.elapsed();
    let bytes = storage.size_on_disk().unwrap();
    println!(
        "{contacts} contacts with their audit entries in {:.1} s: {:.1} MiB on disk, {} bytes per contact \
         ({} without the store before them); {:.1} MiB resident",
        seeded.as_secs_f64(),
        bytes as f64 / f64::from(1 << 20),
        bytes / contacts as u64,
        (bytes - empty) / contacts as u64,
        rss_mib(),
    );
    drop(world);
    drop(storage);
    // Reopened: what a restarted server holds after opening it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reopened = SledStorage::open(dir.path()).unwrap();
    println!("reopened: {} bytes on disk, {:.1} MiB resident", reopened.size_on_disk().unwrap(), rss_mib());
    drop(reopened);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let compressed = std::fs::read(dir.path().join("conf"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("use_compression: true"));
    let raw = sled::Config::new().path(dir.path()).use_compression(compressed).open().unwrap();
    println!("sled's space amplification (file bytes / live page bytes): {:.2}", raw.space_amplification().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement to run by hand"]
async fn bulk_commit() {
    const CONTACTS: usize = 100_000;
    let sizes = std::env::var("CRM_MEASURE_BATCHES").unwrap_or_else(|_| "100000,1000".into());
    for batch_size in sizes.split(',').map(|n| n.trim().parse::<usize>().unwrap()) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(open(dir.path()));
        let world = World::new(storage.clone()).await;
        let company = companies(&world.crm, &world.admin, 1).await.remove(0);
        let ops: Vec<WriteOp> = (0..CONTACTS)
            .map(|i| WriteOp::Insert(to_record(&unsaved_contact(&world.admin, &company, i)).unwrap()))
            .collect();
        let batches: Vec<WriteBatch> =
            ops.chunks(batch_size).map(|ops| WriteBatch { ops: ops.to_vec(), ..WriteBatch::default() }).collect();
        let tenant = world.admin.tenant_id();
        let started = Instant::now();
        for batch in batches {
            storage.commit(tenant, batch).await.unwrap();
        }
        let spent = started.elapsed();
        println!(
            "{CONTACTS} inserts in batches of {batch_size}: {:.2} s, {:.0} rows/s, {} bytes per contact on disk",
            spent.as_secs_f64(),
            CONTACTS as f64 / spent.as_secs_f64(),
            storage.size_on_disk().unwrap() / CONTACTS as u64,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement to run by hand"]
async fn concurrent_creates() {
    const CALLERS: usize = 16;
    const EACH: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let world = Arc::new(World::new(Arc::new(storage)).await);
    let companies = Arc::new(companies(&world.crm, &world.admin, 10).await);
    let started = Instant::now();
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let (world, companies) = (world.clone(), companies.clone());
        callers.push(tokio::spawn(async move {
            for n in 0..EACH {
                let i = caller * EACH + n;
                world.crm.contacts().create(&world.admin, new_contact(i, &companies[i % 10])).await.unwrap();
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    let spent = started.elapsed();
    println!(
        "{} creates by {CALLERS} concurrent callers: {:.2} s, {:.0} creates/s",
        CALLERS * EACH,
        spent.as_secs_f64(),
        (CALLERS * EACH) as f64 / spent.as_secs_f64()
    );
}
