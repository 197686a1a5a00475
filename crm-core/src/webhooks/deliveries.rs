//! The delivery log: one record per event and endpoint, holding where its delivery
//! stands (pending with its next attempt, succeeded, failed for good). The relay
//! plans deliveries for each event ([`WebhookEndpoints::plan`]); the worker sends the
//! due ones and reports each attempt ([`WebhookEndpoints::record_attempt`]), which
//! applies the retry schedule and disables an endpoint whose delivery failed its last
//! attempt. Admins read the log and ask for a redelivery.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    authz::{Action, Principal, Resource},
    crm::{PageRequest, stamp_update},
    entity::{Entity, entity_meta, from_stored, reference, to_record},
    error::{CrmError, Result},
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    state::{StateMachine, status_enum},
    storage::{EntityKind, FieldValue, Filter, ListQuery, OutboxEvent, Page, Reference, WriteBatch, WriteOp},
    webhooks::{
        endpoints::{WebhookEndpoint, WebhookEndpoints},
        message::WebhookEnvelope,
        schedule::RetrySchedule,
    },
};

/// The longest error text kept per attempt.
const ERROR_MAX: usize = 1000;

status_enum! {
    /// A delivery's progress: `pending` until an attempt succeeds or the last one
    /// fails; an admin's redelivery makes it `pending` again.
    DeliveryState for WebhookDelivery {
        /// Waiting for its next attempt (`next_attempt_at`).
        Pending = "pending" => [Pending, Succeeded, Failed],
        /// The receiver answered 2xx.
        Succeeded = "succeeded" => [Pending],
        /// Every attempt failed (or a redelivery did).
        Failed = "failed" => [Pending],
    }
}

/// One event's delivery to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookDelivery {
    /// Common metadata.
    pub meta: Meta,
    /// The endpoint delivered to.
    pub endpoint_id: Id<WebhookEndpoint>,
    /// The outbox event delivered (its `webhook-id` is derived from it).
    pub event_id: Uuid,
    /// The event's name.
    pub event_type: String,
    /// Where the delivery stands.
    pub status: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last attempt, if it got one.
    pub response_status: Option<u16>,
    /// How long the last attempt took, in milliseconds.
    pub latency_ms: Option<u64>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// An admin asked for this redelivery: one attempt, and the endpoint stays active
    /// if it fails.
    pub redelivery: bool,
    /// The body sent on every attempt.
    pub message: WebhookEnvelope,
}

impl Entity for WebhookDelivery {
    const KIND: EntityKind = EntityKind::WebhookDelivery;
    const RESOURCE: Resource = Resource::Webhooks;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        endpoint_id: Uuid [] = |e| e.endpoint_id,
        status: Text [] = |e| e.status.as_str(),
        next_attempt_at: Timestamp [] = |e| e.next_attempt_at,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("endpoint_id", self.endpoint_id)]
    }
}

/// What the worker saw on one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptReport {
    /// The receiver answered 2xx.
    pub succeeded: bool,
    /// The HTTP status, if one came back.
    pub response_status: Option<u16>,
    /// How long the attempt took.
    pub latency_ms: u64,
    /// Why it failed (refused target, timeout, status…).
    pub error: Option<String>,
}

impl WebhookEndpoints<'_> {
    /// A page of an endpoint's delivery log, newest last (keyset pagination).
    pub async fn deliveries(
        &self,
        p: &Principal,
        endpoint: Id<WebhookEndpoint>,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        let endpoint: WebhookEndpoint = self.crm.read(p, endpoint).await?;
        self.crm.list(p, vec![Filter::eq("endpoint_id", endpoint.meta.id)], page).await
    }

    /// Asks for one more attempt of a delivery, now. The endpoint must be active.
    pub async fn redeliver(
        &self,
        p: &Principal,
        endpoint: Id<WebhookEndpoint>,
        delivery: Id<WebhookDelivery>,
    ) -> Result<WebhookDelivery> {
        let endpoint: WebhookEndpoint = self.crm.load_for(p, endpoint, Action::Update, None).await?;
        let before: WebhookDelivery = self.crm.load_for(p, delivery, Action::Update, None).await?;
        if before.endpoint_id != endpoint.id() {
            return Err(CrmError::NotFound { kind: EntityKind::WebhookDelivery, id: delivery.uuid() });
        }
        if !endpoint.active {
            return Err(CrmError::invalid("endpoint", "the endpoint is inactive: activate it first"));
        }
        let mut after = before.clone();
        after.status = before.status.transition(DeliveryState::Pending)?;
        after.next_attempt_at = Some(self.crm.now());
        after.redelivery = true;
        let mut tx = self.crm.tx(p);
        // Checked with the delivery: deactivating the endpoint meanwhile is a conflict.
        tx.check(&endpoint);
        tx.update_as("redelivery_requested", &before, &mut after)?;
        tx.commit().await?;
        // Should this enqueue fail, the delivery stays pending and a second request
        // enqueues it (a pending delivery may be redelivered again).
        self.enqueue_attempts(std::slice::from_ref(&after)).await?;
        Ok(after)
    }

    /// Plans the deliveries of `event`: one pending delivery, due now, per active
    /// endpoint of its tenant that wants it, written in one batch, and returns them.
    /// The relay calls it before acknowledging the event. A second call for the same
    /// event (after a crash before the ack) writes nothing twice, since a delivery's id
    /// is derived from the event and the endpoint; it returns those of the first call
    /// that are still pending, so that their attempts get enqueued.
    pub async fn plan(&self, event: &OutboxEvent) -> Result<Vec<WebhookDelivery>> {
        self.plan_all(std::slice::from_ref(event)).await
    }

    /// [`plan`](Self::plan) for many events at once: each tenant's active endpoints
    /// read once, and its new deliveries written in one batch.
    pub async fn plan_all(&self, events: &[OutboxEvent]) -> Result<Vec<WebhookDelivery>> {
        let mut tenants: Vec<TenantId> = events.iter().map(|e| e.tenant_id).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut planned = Vec::new();
        for tenant in tenants {
            let endpoints = self.active_endpoints(tenant).await?;
            // Every (event, endpoint) to deliver, and the deliveries an earlier pass (a
            // replay) already planned for them, read in one call.
            let targets: Vec<(&OutboxEvent, &WebhookEndpoint)> = events
                .iter()
                .filter(|e| e.tenant_id == tenant)
                .flat_map(|event| {
                    endpoints.iter().filter(|e| e.wants(&event.name)).map(move |endpoint| (event, endpoint))
                })
                .collect();
            let ids: Vec<Uuid> =
                targets.iter().map(|(event, endpoint)| delivery_id(event.id, endpoint.meta.id)).collect();
            let mut earlier = self.crm.fetch_many::<WebhookDelivery>(tenant, &ids).await?;
            let mut batch = WriteBatch::default();
            let mut checked = std::collections::HashSet::new();
            for ((event, endpoint), id) in targets.into_iter().zip(ids) {
                if let Some(earlier) = earlier.remove(&id) {
                    if earlier.status == DeliveryState::Pending {
                        planned.push(earlier);
                    }
                    continue;
                }
                let delivery = WebhookDelivery {
                    meta: Meta { id, ..Meta::new(tenant, self.crm.now()) },
                    endpoint_id: endpoint.id(),
                    event_id: event.id,
                    event_type: event.name.clone(),
                    status: DeliveryState::Pending,
                    attempts: 0,
                    response_status: None,
                    latency_ms: None,
                    last_attempt_at: None,
                    next_attempt_at: Some(self.crm.now()),
                    last_error: None,
                    redelivery: false,
                    message: WebhookEnvelope::of(event),
                };
                // Checked with the deliveries: an endpoint changed meanwhile is a conflict.
                if checked.insert(endpoint.meta.id) {
                    let (kind, id, version) = (EntityKind::WebhookEndpoint, endpoint.meta.id, endpoint.meta.version);
                    batch.ops.push(WriteOp::Check { kind, id, version });
                }
                batch.ops.push(WriteOp::Insert(to_record(&delivery)?));
                planned.push(delivery);
            }
            if !batch.is_empty() {
                self.crm.storage.commit(tenant, batch).await?;
            }
        }
        Ok(planned)
    }

    /// Records one attempt of a pending delivery, made at `at`, and decides what next:
    /// succeeded; another attempt at the schedule's time, whose job is enqueued before
    /// the record is written (so no crash leaves a pending delivery without one); or
    /// failed for good, which also disables the endpoint and tells the tenant's active
    /// admins (in the same write) unless it was an admin's redelivery.
    pub async fn record_attempt(
        &self,
        tenant: TenantId,
        id: Id<WebhookDelivery>,
        report: AttemptReport,
        at: DateTime<Utc>,
    ) -> Result<WebhookDelivery> {
        let before: WebhookDelivery = self.crm.fetch(tenant, id).await?;
        if before.status != DeliveryState::Pending {
            return Err(CrmError::invalid(
                "status",
                format!("the delivery is {}, not pending", before.status.as_str()),
            ));
        }
        let mut after = before.clone();
        after.attempts += 1;
        after.response_status = report.response_status;
        after.latency_ms = Some(report.latency_ms);
        after.last_attempt_at = Some(at);
        after.last_error = report.error.map(|e| e.chars().take(ERROR_MAX).collect());
        let retry_at =
            (!before.redelivery).then(|| RetrySchedule.next_attempt(id.uuid(), after.attempts, at)).flatten();
        (after.status, after.next_attempt_at) = match (report.succeeded, retry_at) {
            (true, _) => (DeliveryState::Succeeded, None),
            (false, Some(next)) => (DeliveryState::Pending, Some(next)),
            (false, None) => (DeliveryState::Failed, None),
        };
        after.redelivery = false;
        let mut batch = WriteBatch::default();
        batch.ops.push(stamp_update(&before, &mut after, at)?);
        if after.status == DeliveryState::Pending {
            self.enqueue_attempts(std::slice::from_ref(&after)).await?;
        }
        if after.status == DeliveryState::Failed && !before.redelivery {
            let endpoint: WebhookEndpoint = self.crm.fetch(tenant, before.endpoint_id).await?;
            let mut disabled = endpoint.clone();
            disabled.active = false;
            disabled.disabled_reason = Some(format!(
                "{} delivery {} failed {} attempts (last: {})",
                before.event_type,
                id.uuid(),
                after.attempts,
                after.last_error.as_deref().unwrap_or("no detail")
            ));
            batch.ops.push(stamp_update(&endpoint, &mut disabled, at)?);
            let title = format!("Webhook endpoint {} was disabled: its deliveries keep failing", endpoint.url);
            for admin in self.crm.active_admins(tenant).await? {
                self.crm.notify_into(&mut batch, tenant, admin.meta.id, &endpoint, title.clone(), at)?;
            }
        }
        self.crm.storage.commit(tenant, batch).await?;
        Ok(after)
    }

    /// Pending deliveries of `tenant` due by `now`, oldest due first, at most `limit`.
    pub async fn due(&self, tenant: TenantId, now: DateTime<Utc>, limit: usize) -> Result<Vec<WebhookDelivery>> {
        let filters = vec![
            Filter::eq("status", DeliveryState::Pending.as_str()),
            Filter::lt("next_attempt_at", now + Duration::milliseconds(1)),
        ];
        let query = ListQuery { limit, ..ListQuery::filtered(filters) };
        let page = self.crm.storage.list(tenant, EntityKind::WebhookDelivery, &query).await?;
        page.items.into_iter().map(from_stored).collect()
    }

    /// Deletes up to `limit` of `tenant`'s settled deliveries (succeeded or failed) last
    /// changed before `before`; says how many.
    pub async fn prune_log(&self, tenant: TenantId, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let settled = [DeliveryState::Succeeded, DeliveryState::Failed].map(|s| FieldValue::from(s.as_str()));
        let filters = vec![Filter::one_of("status", settled), Filter::lt("updated_at", before)];
        self.crm.delete_matching(tenant, EntityKind::WebhookDelivery, filters, limit).await
    }

    async fn active_endpoints(&self, tenant: TenantId) -> Result<Vec<WebhookEndpoint>> {
        self.crm.list_all(tenant, vec![Filter::eq("active", true)]).await
    }

    /// Every delivery of `endpoint` (to delete them with it).
    pub(crate) async fn whole_log(&self, endpoint: &WebhookEndpoint) -> Result<Vec<WebhookDelivery>> {
        self.crm.list_all(endpoint.meta.tenant_id, vec![Filter::eq("endpoint_id", endpoint.meta.id)]).await
    }
}

/// The id of `event`'s delivery to `endpoint`: the same on every call.
fn delivery_id(event: Uuid, endpoint: Uuid) -> Uuid {
    let digest = Sha256::new().chain_update(event.as_bytes()).chain_update(endpoint.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
