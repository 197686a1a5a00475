//! At least once across a real process kill: a child process (this test binary, one
//! ignored test selected) reserves a job from the storage queue on a PostgreSQL
//! database and is SIGKILLed before acking it; the parent gets the job again once the
//! visibility timeout has passed.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
};

use crm_core::{
    SystemClock,
    conformance::job_queue::{killed_workers_job_runs_again, reported_job, reserve_then_wait_to_be_killed},
    jobs::{JobQueue, StorageJobQueue},
};
use crm_storage_postgres::{
    PostgresStorage,
    testing::{create_database, shared_server},
};

/// The database the child works in.
const URL_VAR: &str = "CRM_PG_TEST_CHILD_URL";

async fn queue_on(url: &str) -> Arc<dyn JobQueue> {
    let storage = PostgresStorage::connect(url).await.expect("connect to the test database");
    Arc::new(StorageJobQueue::new(Arc::new(storage), Arc::new(SystemClock)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of `killed_workers_job_runs_again_on_postgres`"]
async fn killed_worker_child() {
    let url = std::env::var(URL_VAR).expect("run by the parent test, which names the database");
    reserve_then_wait_to_be_killed(queue_on(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_job_runs_again_on_postgres() {
    let target = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let url = create_database(target).await.unwrap();
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .args(["killed_worker::killed_worker_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(URL_VAR, &url)
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
    killed_workers_job_runs_again(queue_on(&url).await, id).await;
}
