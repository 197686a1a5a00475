//! What a webhook delivery sends for one outbox event: the Standard Webhooks envelope
//! `{"type", "timestamp", "data"}`, with the catalogue version and the record the event
//! is about. `data` is the event's payload exactly, so a receiver can deserialise it
//! into the catalogue's type for `type`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::{CrmError, Result},
    storage::{EntityKind, OutboxEvent},
    webhooks::{catalogue::CATALOGUE_VERSION, deliveries::WebhookDelivery},
};

/// One event as delivered to every endpoint that wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    /// `webhook-id`: the event's id, the same on every attempt and every endpoint, so
    /// receivers can drop duplicates (delivery is at least once).
    pub id: String,
    /// The event's name (`invoice.paid`).
    pub event_type: String,
    /// The JSON body, exactly the bytes that are signed.
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    r#type: &'a str,
    timestamp: DateTime<Utc>,
    catalogue_version: u32,
    subject: Subject,
    data: &'a Value,
}

#[derive(Serialize)]
struct Subject {
    kind: EntityKind,
    id: Uuid,
}

impl WebhookMessage {
    /// The message of `event`.
    pub fn of(event: &OutboxEvent) -> Result<Self> {
        let envelope = Envelope {
            r#type: &event.name,
            timestamp: event.occurred_at,
            catalogue_version: CATALOGUE_VERSION,
            subject: Subject { kind: event.entity_kind, id: event.entity_id },
            data: &event.payload,
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| CrmError::Internal(e.to_string()))?;
        Ok(WebhookMessage { id: message_id(event.id), event_type: event.name.clone(), body })
    }

    /// The message a delivery sends: the envelope planned with it.
    pub fn of_delivery(delivery: &WebhookDelivery) -> Result<Self> {
        let body = serde_json::to_vec(&delivery.message).map_err(|e| CrmError::Internal(e.to_string()))?;
        Ok(WebhookMessage { id: message_id(delivery.event_id), event_type: delivery.event_type.clone(), body })
    }
}

/// `webhook-id`: one per event, whichever endpoint and attempt.
fn message_id(event: Uuid) -> String {
    format!("msg_{}", event.simple())
}
