//! The webhook worker: reserves attempt jobs ([`WEBHOOK_ATTEMPTS`]), sends what the
//! core says is due through the [`WebhookClient`], and reports each attempt back to the
//! core, which applies the retry schedule. Any number of workers may run, on any
//! number of servers: the queue gives each job to one of them at a time.

use std::time::Duration;

use crate::{
    delivery::{DeliveryOutcome, WebhookClient},
    queue,
};
use crm_core::{
    Crm, CrmError, Result,
    jobs::Reservation,
    webhooks::{
        attempts::{AttemptJob, WEBHOOK_ATTEMPTS},
        deliveries::AttemptReport,
    },
};

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
        let queue = self.crm.jobs().as_ref();
        queue::pass(
            queue,
            WEBHOOK_ATTEMPTS,
            ATTEMPT_VISIBILITY,
            self.concurrency,
            |r| async move { self.attempt(&r).await },
        )
        .await
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

    /// Works until the task is aborted.
    pub async fn run(self) {
        queue::keep_working("the webhook worker", self.idle, || self.pass()).await;
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
