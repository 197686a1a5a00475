//! What a webhook delivery sends for one outbox event: the Standard Webhooks envelope
//! `{"type", "timestamp", "data"}`, with the catalogue version and the record the event
//! is about. `data` is the event's payload exactly, so a receiver can deserialise it
//! into the catalogue's type for `type`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::{CrmError, Result},
    storage::{EntityKind, OutboxEvent},
    webhooks::catalogue::CATALOGUE_VERSION,
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

/// The JSON body of every delivery (Standard Webhooks' `{type, timestamp, data}`, with
/// the catalogue version and the record the event is about).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookEnvelope {
    /// The event's name (`invoice.paid`).
    pub r#type: String,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// The version of the event catalogue the payload follows.
    pub catalogue_version: u32,
    /// The record the event is about.
    pub subject: WebhookSubject,
    /// The event's payload, exactly: its type is the catalogue's for `type`.
    pub data: Value,
}

/// The record an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookSubject {
    /// Its kind.
    pub kind: EntityKind,
    /// Its id.
    pub id: Uuid,
}

impl WebhookEnvelope {
    /// The envelope of `event`.
    pub fn of(event: &OutboxEvent) -> Self {
        WebhookEnvelope {
            r#type: event.name.clone(),
            timestamp: event.occurred_at,
            catalogue_version: CATALOGUE_VERSION,
            subject: WebhookSubject { kind: event.entity_kind, id: event.entity_id },
            data: event.payload.clone(),
        }
    }
}

impl WebhookMessage {
    /// The message of `event`.
    pub fn of(event: &OutboxEvent) -> Result<Self> {
        Self::sealed(event.id, &WebhookEnvelope::of(event))
    }

    /// The message of event `event` whose envelope is `envelope` (a delivery sends the
    /// envelope planned with it).
    pub fn sealed(event: Uuid, envelope: &WebhookEnvelope) -> Result<Self> {
        let body = serde_json::to_vec(envelope).map_err(|e| CrmError::Internal(e.to_string()))?;
        Ok(WebhookMessage { id: message_id(event), event_type: envelope.r#type.clone(), body })
    }
}

/// `webhook-id`: one per event, whichever endpoint and attempt.
fn message_id(event: Uuid) -> String {
    format!("msg_{}", event.simple())
}
