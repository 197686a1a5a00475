//! Job-queue throughput: each job enqueued, reserved and acked, one at a time (three
//! round trips per job) by 16 and by 64 concurrent tasks, and in batches of [`BATCH`]
//! (`enqueue_batch`, `reserve_many`, `ack_many`: three round trips per batch) by 16 tasks, on Redis (a throwaway `redis-server` on a unix socket, as
//! the tests start one) and on the storage queue over sled (a temporary directory,
//! every commit flushed to disk before it returns). Goals: at least 20k jobs/s on
//! Redis, 5k/s on sled.
//!
//! `cargo bench -p crm-benches --bench queue`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crm_cache_redis::{RedisJobQueue, testing};
use crm_core::{
    SystemClock,
    jobs::{JobQueue, NewJob, StorageJobQueue},
};
use crm_storage_sled::SledStorage;
use serde_json::json;
use tokio::runtime::Runtime;

/// How many tasks enqueue, reserve and ack at once, in turn.
const CONCURRENCY: [usize; 2] = [16, 64];
/// Jobs per measured iteration, shared out among the tasks.
const JOBS: usize = 2048;
const VISIBILITY: Duration = Duration::from_secs(60);
/// Jobs per batch in the batched runs.
const BATCH: usize = 64;
/// How many tasks run batches at once.
const BATCH_CONCURRENCY: usize = 16;

/// One job through the queue: enqueue, reserve (a job, not necessarily this one), ack.
async fn one_job(queue: &dyn JobQueue, name: &str, n: usize) {
    queue.enqueue(NewJob::new(name, json!({ "n": n }))).await.expect("enqueue");
    loop {
        if let Some(reserved) = queue.reserve(name, VISIBILITY).await.expect("reserve") {
            queue.ack(&reserved).await.expect("ack");
            return;
        }
    }
}

/// `count` jobs through the queue in one batch: enqueued together, reserved and acked
/// (jobs, not necessarily these) in batches until as many were acked.
async fn one_batch(queue: &dyn JobQueue, name: &str, count: usize) {
    let jobs = (0..count).map(|n| NewJob::new(name, json!({ "n": n }))).collect();
    queue.enqueue_batch(jobs).await.expect("enqueue_batch");
    let mut acked = 0;
    while acked < count {
        let reserved = queue.reserve_many(name, VISIBILITY, count - acked).await.expect("reserve_many");
        let outcomes = queue.ack_many(&reserved).await.expect("ack_many");
        acked += outcomes.into_iter().filter(Result::is_ok).count();
    }
}

/// Runs [`JOBS`] jobs through `queue` on `concurrency` tasks, in batches of `batch`
/// (1: one job at a time); returns the time taken.
async fn round(queue: Arc<dyn JobQueue>, name: &'static str, concurrency: usize, batch: usize) -> Duration {
    let per_task = JOBS / concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let queue = queue.clone();
            tokio::spawn(async move {
                if batch == 1 {
                    for i in 0..per_task {
                        one_job(queue.as_ref(), name, t * per_task + i).await;
                    }
                } else {
                    for _ in 0..per_task / batch {
                        one_batch(queue.as_ref(), name, batch).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("worker task");
    }
    started.elapsed()
}

fn bench_queue(c: &mut Criterion, rt: &Runtime, label: &str, queue: Arc<dyn JobQueue>) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(JOBS as u64));
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    let runs = CONCURRENCY.map(|c| (format!("{label}_enqueue_reserve_ack_x{c}"), c, 1));
    let batched = (format!("{label}_batch{BATCH}_x{BATCH_CONCURRENCY}"), BATCH_CONCURRENCY, BATCH);
    for (name, concurrency, batch) in runs.into_iter().chain([batched]) {
        group.bench_function(name, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let queue = queue.clone();
                async move {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        spent += round(queue.clone(), "bench", concurrency, batch).await;
                    }
                    spent
                }
            })
        });
    }
    group.finish();
}

fn redis_queue(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let queue = rt.block_on(async {
        let connection = testing::connection().await;
        Arc::new(RedisJobQueue::new(connection, testing::unique_prefix(), Arc::new(SystemClock))) as Arc<dyn JobQueue>
    });
    bench_queue(c, &rt, "redis", queue);
}

fn sled_queue(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = Arc::new(SledStorage::open(dir.path()).expect("open sled"));
    let queue = Arc::new(StorageJobQueue::new(storage, Arc::new(SystemClock))) as Arc<dyn JobQueue>;
    bench_queue(c, &rt, "sled", queue);
}

criterion_group!(benches, redis_queue, sled_queue);
criterion_main!(benches);
