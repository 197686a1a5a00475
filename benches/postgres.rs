//! The PostgreSQL adapter with 1M contacts, on a throwaway server it starts itself
//! (default durability: `fsync` and synchronous commits on):
//! get by id, a filtered page of 50 (first page, and page 10,000 reached by cursor),
//! insert, contacts created through the services 16 at a time (each commit: the contact
//! and its audit entry, what HTTP creates with 16 in flight ask of the adapter), and
//! one commit of 100k contacts (the bulk path). In the same run, `pgbench -S` on the same
//! server gives the database's own point-read limit, and the adapter's concurrent
//! get-by-id throughput is measured the same way, so the ratio says how close it gets.
//!
//! `cargo bench -p crm-benches --bench postgres`
//! (`CRM_BENCH_CONTACTS=100000` for a smaller data set; a filter such as `-- 16_in_flight`
//! runs only the matching benchmarks, after the same set-up.)

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use crm_benches::{contact_record, import, new_contact, reads_per_second};
use crm_core::{
    conformance::World,
    entity::Entity,
    storage::{Cursor, EntityKind, Filter, ListQuery, Storage, WriteBatch, WriteOp},
};
use crm_storage_postgres::{
    PostgresOptions, PostgresStorage,
    testing::{Target, TestServer, create_database},
};
use tokio::runtime::Runtime;

const COMPANIES: usize = 100;
const BULK: usize = 100_000;
const DEEP_PAGE: usize = 10_000;
/// Concurrent service calls in the concurrent-create benchmark.
const IN_FLIGHT: usize = 16;

/// `pgbench -S -c16 -j2 -T 10` against the server, in its own database; returns TPS.
fn pgbench_select_only(server: &TestServer) -> f64 {
    let run = |program: &str, args: &[&str]| {
        let out = server.client(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run("createdb", &["pgbench"]);
    run("pgbench", &["-i", "-q", "-s", "10", "pgbench"]);
    let out = run("pgbench", &["-S", "-c", "16", "-j", "2", "-T", "10", "pgbench"]);
    println!("pgbench -S -c16 -j2 -T10 (scale 10):\n{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()))
        .expect("tps in pgbench output")
}

fn postgres(c: &mut Criterion) {
    let n = crm_benches::bench_contacts();
    let server = TestServer::start_durable().unwrap_or_else(|e| panic!("{e}"));
    let rt = Runtime::new().expect("tokio runtime");
    let (storage, world, companies, ids) = rt.block_on(async {
        let url = create_database(&Target::External(server.url("postgres"))).await.expect("create database");
        // A commit of 100k contacts may take longer than the default 30 s call timeout
        // on a busy machine: the bench measures it instead of failing.
        let options = PostgresOptions { call_timeout: Duration::from_secs(600), ..PostgresOptions::default() };
        let storage = Arc::new(PostgresStorage::connect_with(&url, options).await.expect("connect"));
        let s: Arc<dyn Storage> = storage.clone();
        let world = World::new(s.clone()).await;
        let companies = crm_benches::companies(&world, COMPANIES).await;
        let started = Instant::now();
        let ids = import(s.as_ref(), &world, &companies, 0, n).await;
        let took = started.elapsed();
        println!(
            "loaded {n} contacts through the bulk path in {:.1} s ({:.0} rows/s)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
        let pool = sqlx::PgPool::connect(&url).await.expect("connect for analyze");
        sqlx::query("VACUUM ANALYZE").execute(&pool).await.expect("vacuum analyze");
        pool.close().await;
        (storage, world, companies, ids)
    });
    let s: Arc<dyn Storage> = storage.clone();
    let tenant = world.admin.tenant_id();
    let ids = Arc::new(ids);

    let mut group = c.benchmark_group(format!("postgres_{n}_contacts"));
    let mut i = 0;
    group.bench_function("get_by_id", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % ids.len();
            let (s, id) = (s.clone(), ids[i]);
            async move { black_box(s.get(tenant, EntityKind::Contact, id).await.expect("get")) }
        })
    });

    let mut k = 0;
    group.bench_function("page_of_50_by_company_first", |b| {
        b.to_async(&rt).iter(|| {
            k = (k + 1) % COMPANIES;
            let (s, company) = (s.clone(), companies[k].id());
            async move {
                let q = ListQuery::filtered(vec![Filter::eq("company_id", company)]);
                black_box(s.list(tenant, EntityKind::Contact, &q).await.expect("page"))
            }
        })
    });

    // Page 10,000 of the owner's contacts (sorted by last name), reached by walking
    // the cursor: after 499,950 rows.
    let by_owner = ListQuery {
        sort: crm_core::storage::Sort { field: Some("last_name"), descending: false },
        ..ListQuery::filtered(vec![Filter::eq("owner_id", world.admin.user_id())])
    };
    let deep: Option<Cursor> = rt.block_on(async {
        let mut q = ListQuery { limit: 5_000, ..by_owner.clone() };
        let mut cursor = None;
        let mut skipped = 0;
        while skipped < (DEEP_PAGE - 1) * 50 {
            q.limit = ((DEEP_PAGE - 1) * 50 - skipped).min(5_000);
            q.after = cursor.clone();
            let page = s.list(tenant, EntityKind::Contact, &q).await.expect("walk");
            skipped += page.items.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => return None,
            }
        }
        cursor
    });
    match deep {
        Some(cursor) => {
            group.bench_function("page_of_50_by_owner_sorted_page_10000", |b| {
                b.to_async(&rt).iter(|| {
                    let s = s.clone();
                    let q = ListQuery { after: Some(cursor.clone()), ..by_owner.clone() };
                    async move {
                        let page = s.list(tenant, EntityKind::Contact, &q).await.expect("deep page");
                        assert_eq!(page.items.len(), 50);
                        black_box(page)
                    }
                })
            });
        }
        None => println!("fewer than {} contacts: no page {DEEP_PAGE}", DEEP_PAGE * 50),
    }

    let mut next = n;
    group.bench_function("insert_one_contact", |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let record = contact_record(&world, next, &companies[next % COMPANIES]);
            let s = s.clone();
            async move {
                let batch = WriteBatch { ops: vec![WriteOp::Insert(record)], ..WriteBatch::default() };
                s.commit(tenant, batch).await.expect("insert")
            }
        })
    });
    group.finish();

    // Contacts created through the services, IN_FLIGHT at a time: each commit is the
    // contact and its audit entry. Criterion's throughput is creates per second.
    let mut creates = c.benchmark_group(format!("postgres_{n}_contacts_concurrent"));
    creates.throughput(Throughput::Elements(IN_FLIGHT as u64));
    let crm = world.crm.clone();
    let admin = world.admin.clone();
    let shared_companies = Arc::new(companies.clone());
    let numbers = Arc::new(AtomicUsize::new(10 * n));
    creates.bench_function(format!("create_contact_{IN_FLIGHT}_in_flight"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (crm, admin, companies, numbers) =
                (crm.clone(), admin.clone(), shared_companies.clone(), numbers.clone());
            async move {
                let started = Instant::now();
                let tasks: Vec<_> = (0..IN_FLIGHT)
                    .map(|_| {
                        let (crm, admin, companies, numbers) =
                            (crm.clone(), admin.clone(), companies.clone(), numbers.clone());
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                let k = numbers.fetch_add(1, Ordering::Relaxed);
                                let input = new_contact(k, &companies[k % companies.len()]);
                                black_box(crm.contacts().create(&admin, input).await.expect("create"));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("creating task");
                }
                started.elapsed()
            }
        })
    });
    creates.finish();

    let mut bulk = c.benchmark_group(format!("postgres_{n}_contacts_bulk"));
    // Flat sampling: ten samples of one commit each (linear sampling would run 55).
    bulk.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_millis(1));
    bulk.throughput(Throughput::Elements(BULK as u64));
    // One commit of 100k contacts (the records are built before the clock starts).
    let mut from = 2 * n;
    bulk.bench_function("commit_100k_contacts", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (s, world, companies) = (s.clone(), &world, &companies);
            let start = from;
            from += BULK * iters as usize;
            async move {
                let mut spent = Duration::ZERO;
                for j in 0..iters as usize {
                    let first = start + j * BULK;
                    let ops = (first..first + BULK)
                        .map(|k| WriteOp::Insert(contact_record(world, k, &companies[k % COMPANIES])))
                        .collect();
                    let batch = WriteBatch { ops, ..WriteBatch::default() };
                    let started = Instant::now();
                    s.commit(world.admin.tenant_id(), batch).await.expect("bulk commit");
                    spent += started.elapsed();
                }
                spent
            }
        })
    });
    bulk.finish();

    // The database's own limit for point reads, and the adapter's, measured alike.
    let pgbench_tps = pgbench_select_only(&server);
    let adapter = rt.block_on(reads_per_second(s.clone(), world.admin.tenant_id(), ids.clone(), 10));
    println!(
        "point reads, 16 concurrent clients, 10 s: pgbench -S {pgbench_tps:.0} tps; adapter get_by_id {adapter:.0}/s \
         = {:.0}% of pgbench",
        100.0 * adapter / pgbench_tps
    );
    rt.block_on(storage.close());
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    targets = postgres
}
criterion_main!(benches);
