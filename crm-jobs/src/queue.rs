//! What every worker of a job queue does the same way: reserve a batch, run its jobs
//! at once, ack those that succeeded and fail the others (due again after their retry
//! policy's backoff), and loop.

use std::{future::Future, time::Duration};

use crm_core::{
    CrmError, Result,
    jobs::{JobQueue, Reservation},
};
use futures::future::join_all;

/// One pass over `queue_name`: reserves up to `max` due jobs for `visibility`, runs
/// `run` on each at once, and settles them; says how many jobs it took.
pub(crate) async fn pass<F, Fut>(
    queue: &dyn JobQueue,
    queue_name: &str,
    visibility: Duration,
    max: usize,
    run: F,
) -> Result<usize>
where
    F: Fn(Reservation) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let reserved = queue.reserve_many(queue_name, visibility, max).await?;
    let outcomes = join_all(reserved.iter().cloned().map(run)).await;
    let mut done = Vec::with_capacity(reserved.len());
    for (reservation, outcome) in reserved.iter().zip(outcomes) {
        let label = if outcome.is_ok() { "done" } else { "failed" };
        metrics::counter!("crm_jobs_total", "queue" => queue_name.to_owned(), "outcome" => label).increment(1);
        match outcome {
            Ok(()) => done.push(reservation.clone()),
            Err(e) => {
                tracing::warn!(queue = queue_name, job = %reservation.job.id, attempt = reservation.job.attempts,
                    error = %e, "a job failed; it runs again after its backoff");
                settle(queue_name, queue.fail(reservation, &e.to_string()).await.map(drop));
            }
        }
    }
    for outcome in queue.ack_many(&done).await? {
        settle(queue_name, outcome);
    }
    Ok(reserved.len())
}

/// A job whose reservation went stale (it expired and another worker took it over) is
/// that worker's now: nothing to do. Anything else is logged; the job runs again.
fn settle(queue_name: &str, outcome: Result<()>) {
    if let Err(e) = outcome
        && !matches!(e, CrmError::Conflict { .. })
    {
        tracing::warn!(queue = queue_name, error = %e, "a job could not be settled; it runs again");
    }
}

/// Runs `pass` until the task is aborted: at once again while passes find jobs, else
/// after `idle`.
pub(crate) async fn keep_working<F, Fut>(what: &str, idle: Duration, pass: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<usize>>,
{
    loop {
        match pass().await {
            Ok(taken) if taken > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "{what}'s pass failed; retrying"),
        }
        tokio::time::sleep(idle).await;
    }
}
