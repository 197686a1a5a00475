//! Password hashing off the async workers: crm-core's [`Offload`] hook backed by
//! tokio's blocking pool, with a bound on how many jobs run at once, so a burst of
//! sign-ins queues instead of taking every blocking thread (sled's calls share that
//! pool) or every core.

use std::{num::NonZeroUsize, sync::Arc};

use crm_core::passwords::{BlockingJob, JobDone, Offload};
use tokio::{runtime::Handle, sync::Semaphore};

/// Runs each job with `spawn_blocking` on one runtime, at most `limit` at a time; the
/// others wait their turn (first come, first served) without holding a thread.
///
/// A job that panics ends its own call only: its permit is returned, and the core turns
/// the unrun job into an internal error.
#[derive(Debug, Clone)]
pub struct BlockingPool {
    runtime: Handle,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl BlockingPool {
    /// Jobs run on `runtime`'s blocking pool, at most `limit` at once.
    pub fn new(runtime: Handle, limit: NonZeroUsize) -> Self {
        Self { runtime, permits: Arc::new(Semaphore::new(limit.get())), limit: limit.get() }
    }

    /// The default bound: half the CPU cores (at least 1). Each job keeps a core busy
    /// for its whole run; the other half stays with the async workers (and sled's
    /// scans take at most half too), so a burst of sign-ins never starves requests.
    pub fn default_limit() -> NonZeroUsize {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        NonZeroUsize::new(cores / 2).unwrap_or(NonZeroUsize::MIN)
    }

    /// How many jobs may run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Offload for BlockingPool {
    fn run(&self, job: BlockingJob) -> JobDone {
        let (runtime, permits) = (self.runtime.clone(), Arc::clone(&self.permits));
        Box::pin(async move {
            // The semaphore is never closed; if it were, the job is dropped unrun.
            let Ok(permit) = permits.acquire_owned().await else { return };
            // The permit lives in the job's closure, so it is returned when the job
            // ends, panicking or not, even if this future was dropped meanwhile. A
            // panic comes back as a join error: the job did not complete, which the
            // caller sees.
            let _ = runtime
                .spawn_blocking(move || {
                    let _permit = permit;
                    job();
                })
                .await;
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    fn pool(limit: usize) -> BlockingPool {
        BlockingPool::new(Handle::current(), NonZeroUsize::new(limit).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_limit_run_at_once() {
        let pool = pool(3);
        let (running, most, done) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..10).map(|_| {
            let (running, most, done) = (Arc::clone(&running), Arc::clone(&most), Arc::clone(&done));
            pool.run(Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(40));
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }))
        });
        let all = join_all(jobs.collect());
        tokio::time::timeout(Duration::from_secs(10), all).await.unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 10, "every job ran");
        assert_eq!(most.load(Ordering::SeqCst), 3, "at most 3 at once, and the bound was reached");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_gives_its_place_back() {
        // This panic is expected: keep the default hook (and its slow backtrace under
        // RUST_BACKTRACE) for every other one.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload_as_str() != Some(EXPECTED_PANIC) {
                report(info);
            }
        }));
        let pool = pool(1);
        pool.run(Box::new(|| panic!("{EXPECTED_PANIC}"))).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let next = pool.run(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::timeout(Duration::from_secs(10), next).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the next job runs after a panic");
    }

    const EXPECTED_PANIC: &str = "a job that panics (expected in this test)";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_caller_does_not_leak_its_place() {
        let pool = pool(1);
        let started = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&started);
        let first = pool.run(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        }));
        // Start the first job, then give up waiting for it.
        let _ = tokio::time::timeout(Duration::from_millis(10), first).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let next = pool.run(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::timeout(Duration::from_secs(10), next).await.unwrap();
        assert_eq!((started.load(Ordering::SeqCst), ran.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn hashing_through_the_pool_works_end_to_end() {
        let storage = crm_core::storage::memory::MemoryStorage::shared();
        let crm = crm_core::Crm::builder(storage)
            .passwords(crm_core::passwords::PasswordPolicy::insecure_fast())
            .offload(Arc::new(pool(1)))
            .build();
        let bootstrap = crm_core::access::users::Bootstrap {
            tenant_name: "Acme".into(),
            admin_email: "admin@acme.test".into(),
            admin_password: "a-long-password".into(),
            admin_first_name: "Ada".into(),
            admin_last_name: "Admin".into(),
        };
        let (tenant, _, _) = crm.users().bootstrap(bootstrap).await.unwrap();
        let tenant = crm_core::TenantId(tenant.meta.id);
        assert!(crm.users().authenticate(tenant, "admin@acme.test", "a-long-password").await.is_ok());
        assert!(crm.users().authenticate(tenant, "admin@acme.test", "wrong-password").await.is_err());
    }

    /// Waits for every future (no `futures` dependency in this crate).
    async fn join_all(all: Vec<JobDone>) {
        let handles: Vec<_> = all.into_iter().map(tokio::spawn).collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }
}
