//! How deliveries travel through the job queue. The relay's [`WebhookReaction`] plans
//! an event's deliveries and enqueues one [`AttemptJob`] per pending delivery on
//! [`WEBHOOK_ATTEMPTS`]; a worker (crm-jobs) reserves it, asks [`WebhookEndpoints::attempt_due`]
//! what to send, sends it and reports through [`WebhookEndpoints::record_attempt`],
//! which enqueues the next attempt's job before it records the failure. So every
//! pending delivery has a job waiting for it, whatever process dies where:
//!
//! - dies after planning, before the event's ack: the event is relayed again, and
//!   planning returns the deliveries it already wrote, so their jobs are enqueued again;
//! - dies after enqueueing the next attempt, before recording this one: the job runs
//!   again and makes its attempt once more (at least once), then records it;
//! - dies after recording, before acking the job: the job runs again and finds its
//!   attempt made, so it does nothing.
//!
//! A job names its attempt number; a job whose attempt was already made (a duplicate)
//! does nothing, so duplicates die out instead of multiplying.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    crm::Crm,
    error::{CrmError, Result},
    id::{Id, TenantId},
    jobs::{Job, MAX_BATCH, NewJob, Reaction, RetryPolicy},
    storage::OutboxEvent,
    webhooks::{
        deliveries::{DeliveryState, WebhookDelivery},
        endpoints::{WebhookEndpoint, WebhookEndpoints},
        message::WebhookMessage,
        signing::WebhookSecret,
    },
};

/// The queue delivery attempts wait on.
pub const WEBHOOK_ATTEMPTS: &str = "webhooks";

/// One attempt of one delivery, as a job of [`WEBHOOK_ATTEMPTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptJob {
    /// The delivery's tenant.
    pub tenant_id: TenantId,
    /// The delivery.
    pub delivery_id: Uuid,
    /// Which attempt this is (1 for the first): once the delivery has made it, the job
    /// is a duplicate and does nothing.
    pub attempt: u32,
}

impl AttemptJob {
    /// The job of `delivery`'s next attempt, due at its `next_attempt_at` by `now`.
    fn next_of(delivery: &WebhookDelivery, now: DateTime<Utc>) -> Result<NewJob> {
        let job = AttemptJob {
            tenant_id: delivery.meta.tenant_id,
            delivery_id: delivery.meta.id,
            attempt: delivery.attempts + 1,
        };
        let due = delivery.next_attempt_at.unwrap_or(now);
        let delay = (due - now).to_std().unwrap_or_default();
        let payload = serde_json::to_value(job).map_err(|e| CrmError::Internal(e.to_string()))?;
        // The job only fails on a storage error; the delivery's own schedule is in its record.
        Ok(NewJob::new(WEBHOOK_ATTEMPTS, payload).delayed(delay).retry(RetryPolicy::DEFAULT))
    }

    /// The attempt a job of [`WEBHOOK_ATTEMPTS`] carries.
    pub fn of_job(job: &Job) -> Result<Self> {
        serde_json::from_value(job.payload.clone())
            .map_err(|e| CrmError::Internal(format!("job {} is no webhook attempt: {e}", job.id)))
    }
}

/// What one attempt sends, and where.
#[derive(Debug)]
pub struct DueAttempt {
    /// The delivery, as before the attempt.
    pub delivery: WebhookDelivery,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's signing secret.
    pub secret: WebhookSecret,
    /// The message, the same bytes on every attempt.
    pub message: WebhookMessage,
}

impl WebhookEndpoints<'_> {
    /// Enqueues the job of the next attempt of each pending delivery, in one batch.
    pub async fn enqueue_attempts(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        let now = self.crm.now();
        let jobs = deliveries
            .iter()
            .filter(|d| d.status == DeliveryState::Pending)
            .map(|d| AttemptJob::next_of(d, now))
            .collect::<Result<Vec<_>>>()?;
        for chunk in jobs.chunks(MAX_BATCH) {
            self.crm.jobs().enqueue_batch(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// What `job` should send, or `None` when it has nothing to do: the delivery is
    /// gone (its endpoint was deleted), settled, or past this attempt already (the job
    /// is a duplicate), or its endpoint is inactive (an admin redelivers after
    /// reactivating it).
    pub async fn attempt_due(&self, job: &AttemptJob) -> Result<Option<DueAttempt>> {
        let id: Id<WebhookDelivery> = Id::from_uuid(job.delivery_id);
        let Some(delivery) = self.crm.fetch_opt::<WebhookDelivery>(job.tenant_id, id).await? else {
            return Ok(None);
        };
        if delivery.status != DeliveryState::Pending || delivery.attempts >= job.attempt {
            return Ok(None);
        }
        let Some(endpoint) = self.crm.fetch_opt::<WebhookEndpoint>(job.tenant_id, delivery.endpoint_id).await? else {
            return Ok(None);
        };
        if !endpoint.active {
            return Ok(None);
        }
        let message = WebhookMessage::sealed(delivery.event_id, &delivery.message)?;
        Ok(Some(DueAttempt { secret: endpoint.signing_secret()?, url: endpoint.url, message, delivery }))
    }
}

/// The relay's webhook reaction: plans each event's deliveries and enqueues their
/// first attempts.
#[derive(Debug, Clone)]
pub struct WebhookReaction {
    crm: Crm,
}

impl WebhookReaction {
    /// The reaction of `crm`'s webhooks (it enqueues on `crm`'s job queue).
    pub fn new(crm: Crm) -> Self {
        Self { crm }
    }
}

#[async_trait]
impl Reaction for WebhookReaction {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    async fn react(&self, event: &OutboxEvent) -> Result<()> {
        self.react_all(std::slice::from_ref(event)).await
    }

    async fn react_all(&self, events: &[OutboxEvent]) -> Result<()> {
        let hooks = self.crm.webhooks();
        let deliveries = hooks.plan_all(events).await?;
        hooks.enqueue_attempts(&deliveries).await
    }
}
