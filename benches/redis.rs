//! Redis in front of PostgreSQL, on servers the bench starts itself (PostgreSQL and
//! Redis each on a unix socket of their own temporary directory):
//!
//! - point reads by id from 16 concurrent tasks, 10 s each, through `CachedStorage`
//!   (cache warmed) and straight from PostgreSQL, over the same hot set of contacts
//!   (`CRM_BENCH_HOT`, default 100k, of `CRM_BENCH_CONTACTS`, default 1M, loaded
//!   through the adapter's bulk path: 50k inserts per commit);
//! - one rate-limit decision (`RedisRateLimiter::check`) and one session lookup
//!   (`RedisSessionStore::get`): criterion's estimates, and p50/p99 over 20k calls in a
//!   row.
//!
//! `cargo bench -p crm-benches --bench redis`

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use crm_benches::{bench_contacts, companies, import, reads_per_second};
use crm_cache_redis::{CacheOptions, CachedStorage, RedisRateLimiter, RedisSessionStore, testing::TestRedis};
use crm_core::{
    Meta, TenantId,
    conformance::World,
    rate_limit::{RateLimiter, gcra::GcraQuota},
    session_store::{Session, SessionStore},
    storage::{EntityKind, Storage},
};
use crm_storage_postgres::{
    PostgresStorage,
    testing::{Target, TestServer, create_database},
};
use tokio::runtime::Runtime;
use uuid::Uuid;

const COMPANIES: usize = 100;
const LATENCY_CALLS: usize = 20_000;
const THROUGHPUT_SECS: u64 = 10;

fn hot_set() -> usize {
    std::env::var("CRM_BENCH_HOT").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

/// p50 and p99 of `calls` calls of `call` in a row.
async fn percentiles<F, Fut>(calls: usize, mut call: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut took = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        call(i).await;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    (took[calls / 2], took[calls * 99 / 100])
}

/// Cached against uncached point reads on one hot set.
fn cached_gets(rt: &Runtime, redis: &TestRedis, postgres: &TestServer) {
    let (n, hot) = (bench_contacts(), hot_set().min(bench_contacts()));
    let (pg, cached, tenant, ids) = rt.block_on(async {
        let url = create_database(&Target::External(postgres.url("postgres"))).await.expect("create database");
        let pg: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(&url).await.expect("connect"));
        let world = World::new(pg.clone()).await;
        let companies = companies(&world, COMPANIES).await;
        let started = Instant::now();
        let ids = import(pg.as_ref(), &world, &companies, 0, n).await;
        println!("loaded {n} contacts through the bulk path in {:.1} s", started.elapsed().as_secs_f64());
        let connection = crm_cache_redis::connect(&redis.url()).await.expect("connect to redis");
        let cached: Arc<dyn Storage> =
            Arc::new(CachedStorage::shared(pg.clone(), connection, CacheOptions::with_prefix("bench:")));
        let hot: Vec<Uuid> = ids.iter().step_by((n / hot).max(1)).take(hot).copied().collect();
        let tenant = world.admin.tenant_id();
        for chunk in hot.chunks(1000) {
            cached.get_many(tenant, EntityKind::Contact, chunk).await.expect("warm the cache");
        }
        (pg, cached, tenant, Arc::new(hot))
    });
    let uncached = rt.block_on(reads_per_second(pg, tenant, ids.clone(), THROUGHPUT_SECS));
    let through_cache = rt.block_on(reads_per_second(cached, tenant, ids.clone(), THROUGHPUT_SECS));
    println!(
        "get by id, 16 concurrent tasks, {THROUGHPUT_SECS} s, {} hot of {n} contacts: PostgreSQL {uncached:.0}/s; \
         through the Redis cache {through_cache:.0}/s = {:.2}x",
        ids.len(),
        through_cache / uncached
    );
}

fn redis(c: &mut Criterion) {
    let redis = TestRedis::start().unwrap_or_else(|e| panic!("{e}"));
    let postgres = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let rt = Runtime::new().expect("tokio runtime");
    cached_gets(&rt, &redis, &postgres);

    let (limiter, sessions, tenant, session) = rt.block_on(async {
        let connection = crm_cache_redis::connect(&redis.url()).await.expect("connect to redis");
        // A quota no run exhausts: every decision is a full check-and-write.
        let quota = GcraQuota::new(u32::MAX, Duration::from_secs(1));
        let limiter = RedisRateLimiter::new(connection.clone(), "bench:", quota);
        let sessions = RedisSessionStore::new(connection, "bench:");
        let tenant = TenantId(Uuid::now_v7());
        let now = Utc::now();
        let session = Session::from_parts(
            Meta::new(tenant, now),
            Uuid::now_v7(),
            now + chrono::Duration::hours(1),
            false,
            "h".into(),
        );
        sessions.insert(&session).await.expect("insert a session");
        (limiter, sessions, tenant, session.meta.id.into())
    });
    let (limit_p50, limit_p99) = rt.block_on(percentiles(LATENCY_CALLS, |i| {
        let limiter = &limiter;
        async move {
            black_box(limiter.check(&format!("user:{}", i % 1000)).await.expect("check"));
        }
    }));
    let (session_p50, session_p99) = rt.block_on(percentiles(LATENCY_CALLS, |_| {
        let sessions = &sessions;
        async move {
            black_box(sessions.get(tenant, session).await.expect("get").expect("present"));
        }
    }));
    println!(
        "{LATENCY_CALLS} calls in a row on a unix socket: rate-limit decision p50 {limit_p50:?} p99 {limit_p99:?}; \
         session lookup p50 {session_p50:?} p99 {session_p99:?}"
    );

    let mut group = c.benchmark_group("redis");
    let mut i = 0usize;
    group.bench_function("rate_limit_decision", |b| {
        b.to_async(&rt).iter(|| {
            i = i.wrapping_add(1);
            let (limiter, key) = (&limiter, format!("user:{}", i % 1000));
            async move { black_box(limiter.check(&key).await.expect("check")) }
        })
    });
    group.bench_function("session_lookup", |b| {
        b.to_async(&rt).iter(|| async { black_box(sessions.get(tenant, session).await.expect("get")) })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    targets = redis
}
criterion_main!(benches);
