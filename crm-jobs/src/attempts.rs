//! The webhook worker: reserves attempt jobs ([`WEBHOOK_ATTEMPTS`]), sends what the
//! core says is due through the [`WebhookClient`], and reports each attempt back to the
//! core, which applies the retry schedule. Any number of workers may run, on any
//! number of servers: the queue gives each job to one of them at a time.

use std::time::Duration;

use crm_core::{
    Crm, CrmError, Result,
    jobs::Reservation,
    webhooks::{
        attempts::{AttemptJob, WEBHOOK_ATTEMPTS},
        deliveries::AttemptReport,
    },
};
use futures::future::join_all;

use crate::delivery::{DeliveryOutcome, WebhookClient};

/// How long a reserved attempt stays with its worker: well past the client's deadline,
/// so only a dead worker's job is handed out again.
pub const ATTEMPT_VISIBILITY: Duration = Duration::from_secs(60);

/// One server's webhook worker.
#[derive(Debug, Clone)]
pub struct AttemptWorker {
    crm: Crm,
    client: WebhookClient,
    concurrency: usize,
    idle: Duration,
}

impl AttemptWorker {
    /// A worker sending through `client` for `crm`, up to 16 attempts at once.
    pub fn new(crm: Crm, client: WebhookClient) -> Self {
        AttemptWorker { crm, client, concurrency: 16, idle: Duration::from_millis(200) }
    }

    /// The same worker making up to `concurrency` attempts at once (at least 1).
    pub fn concurrency(self, concurrency: usize) -> Self {
        AttemptWorker { concurrency: concurrency.max(1), ..self }
    }

    /// Reserves up to a batch of due attempts, makes them all at once, and settles
    /// their jobs; says how many jobs it took.
    pub async fn pass(&self) -> Result<usize> {
        let queue = self.crm.jobs();
        let reserved = queue.reserve_many(WEBHOOK_ATTEMPTS, ATTEMPT_VISIBILITY, self.concurrency).await?;
        let outcomes = join_all(reserved.iter().map(|r| self.attempt(r))).await;
        let mut done = Vec::with_capacity(reserved.len());
        for (reservation, outcome) in reserved.iter().zip(outcomes) {
            match outcome {
                Ok(()) => done.push(reservation.clone()),
                Err(e) => {
                    tracing::warn!(job = %reservation.job.id, error = %e, "a webhook attempt job failed; it will run again");
                    settle(queue.fail(reservation, &e.to_string()).await.map(|_| ()));
                }
            }
        }
        for outcome in queue.ack_many(&done).await? {
            settle(outcome);
        }
        Ok(reserved.len())
    }

    /// One job: what the core says is due, sent, and reported.
    async fn attempt(&self, reservation: &Reservation) -> Result<()> {
        let job = AttemptJob::of_job(&reservation.job)?;
        let hooks = self.crm.webhooks();
        let Some(due) = hooks.attempt_due(&job).await? else { return Ok(()) };
        let outcome = self.client.deliver(&due.url, &due.secret, &due.message, self.crm.now()).await;
        match hooks.record_attempt(job.tenant_id, due.delivery.meta.id.into(), report(&outcome), self.crm.now()).await {
            // Another worker recorded it meanwhile (a duplicate job): its record stands.
            Ok(_) | Err(CrmError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Works until the task is aborted: a pass, then another at once while passes find
    /// jobs, else after a short pause.
    pub async fn run(self) {
        loop {
            match self.pass().await {
                Ok(taken) if taken > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the webhook worker's pass failed; retrying"),
            }
            tokio::time::sleep(self.idle).await;
        }
    }
}

/// A job whose reservation went stale (another worker took it over) is that worker's
/// now: nothing to do.
fn settle(outcome: Result<()>) {
    if let Err(e) = outcome
        && !matches!(e, CrmError::Conflict { .. })
    {
        tracing::warn!(error = %e, "a webhook attempt job could not be settled; it will run again");
    }
}

/// The delivery log's view of an outcome.
fn report(outcome: &DeliveryOutcome) -> AttemptReport {
    AttemptReport {
        succeeded: outcome.result.is_ok(),
        response_status: outcome.status(),
        latency_ms: u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX),
        error: outcome.result.as_ref().err().map(ToString::to_string),
    }
}
