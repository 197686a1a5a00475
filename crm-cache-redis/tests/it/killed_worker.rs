//! At least once across a real process kill: a child process (this test binary, one
//! ignored test selected) reserves a job from the Redis queue and is SIGKILLed before
//! acking it; the parent, another consumer of the group, claims the job (`XAUTOCLAIM`)
//! once the visibility timeout has passed.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
};

use crm_cache_redis::{RedisJobQueue, testing};
use crm_core::{
    SystemClock,
    conformance::job_queue::{killed_workers_job_runs_again, reported_job, reserve_then_wait_to_be_killed},
    jobs::JobQueue,
};

/// The key prefix the child works under.
const PREFIX_VAR: &str = "CRM_REDIS_TEST_CHILD_PREFIX";

async fn queue_under(prefix: String) -> Arc<dyn JobQueue> {
    Arc::new(RedisJobQueue::new(testing::connection().await, prefix, Arc::new(SystemClock)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of `killed_workers_job_runs_again_on_redis`"]
async fn killed_worker_child() {
    let prefix = std::env::var(PREFIX_VAR).expect("run by the parent test, which names the prefix");
    reserve_then_wait_to_be_killed(queue_under(prefix).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_job_runs_again_on_redis() {
    let server = tokio::task::spawn_blocking(testing::shared_server).await.unwrap();
    let prefix = testing::unique_prefix();
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .args(["killed_worker::killed_worker_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(testing::REDIS_URL_VAR, server.url())
        .env(PREFIX_VAR, &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the worker process");
    let stdout = BufReader::new(worker.stdout.take().unwrap());
    let id = tokio::task::spawn_blocking(move || stdout.lines().map_while(Result::ok).find_map(|l| reported_job(&l)))
        .await
        .unwrap();
    worker.kill().unwrap();
    worker.wait().unwrap();
    let id = id.expect("the worker process reserved no job");
    killed_workers_job_runs_again(queue_under(prefix).await, id).await;
}
