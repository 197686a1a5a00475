//! At least once across a real process kill: a child process reserves a job from the
//! storage queue on a sled directory and is SIGKILLed before acking it; the parent
//! opens the directory and gets the job again once the visibility timeout has passed.

use std::{io::BufRead, sync::Arc};

use crm_core::{
    SystemClock,
    conformance::job_queue::{killed_workers_job_runs_again, reported_job, reserve_then_wait_to_be_killed},
    jobs::{JobQueue, StorageJobQueue},
};
use crm_storage_sled::SledStorage;

use crm_core::conformance::child;

fn queue_on(storage: SledStorage) -> Arc<dyn JobQueue> {
    Arc::new(StorageJobQueue::new(Arc::new(storage), Arc::new(SystemClock)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of `killed_workers_job_runs_again_on_sled`"]
async fn killed_worker_child() {
    let storage = SledStorage::open(child::dir()).expect("open the store");
    reserve_then_wait_to_be_killed(queue_on(storage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_job_runs_again_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let (mut worker, stdout) = child::spawn("killed_worker::killed_worker_child", dir.path());
    let id = stdout.lines().map_while(Result::ok).find_map(|l| reported_job(&l));
    worker.kill().unwrap();
    worker.wait().unwrap();
    let id = id.expect("the worker process reserved no job");
    let storage = SledStorage::open(dir.path()).expect("reopen after SIGKILL");
    killed_workers_job_runs_again(queue_on(storage), id).await;
}
