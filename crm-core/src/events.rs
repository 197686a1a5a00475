//! What an outbox event says. Every event a service emits is a typed payload that
//! names its own action; the unit of work (`Tx::event`) prefixes the subject's kind
//! (`deal` + `stage_changed` → `deal.stage_changed`), so names and payloads are built in
//! one place per area (`customers::events`, `sales::events`, `work::events`) and the
//! webhooks catalogue can hold each name to one declared type.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::storage::EntityKind;

/// The details of one kind of event, as stored in the outbox and delivered to webhooks.
pub trait EventPayload: Serialize {
    /// The action part of the event's name: `stage_changed` in `deal.stage_changed`.
    /// A payload may derive it from a status (an invoice event is `issued` or `paid`).
    fn action(&self) -> &'static str;
}

/// `<kind>.assigned`: a record (deal, lead, task, project) got a new owner, manager or
/// assignee, who was notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Assigned {
    /// The user the record is now assigned to.
    pub user_id: Uuid,
}

impl EventPayload for Assigned {
    fn action(&self) -> &'static str {
        "assigned"
    }
}

/// `<kind>.status_changed`: a record (lead, task) moved along its state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "{S}Changed"))]
#[serde(deny_unknown_fields)]
pub struct StatusChanged<S> {
    /// The status before.
    pub from: S,
    /// The status after.
    pub to: S,
}

impl<S: Serialize> EventPayload for StatusChanged<S> {
    fn action(&self) -> &'static str {
        "status_changed"
    }
}

/// A payload under an action its caller chooses, for payload types that several events
/// share (`invoice.issued` and `invoice.paid` both carry an invoice's state); it
/// serialises as the payload alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<P> {
    action: &'static str,
    payload: P,
}

impl<P> Named<P> {
    /// `payload` as the event `<kind>.<action>`.
    pub fn new(action: &'static str, payload: P) -> Self {
        Named { action, payload }
    }
}

impl<P: Serialize> Serialize for Named<P> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.payload.serialize(serializer)
    }
}

impl<P: Serialize> EventPayload for Named<P> {
    fn action(&self) -> &'static str {
        self.action
    }
}

/// `notification.created`: a user was told about a record (an assignment, an overdue
/// invoice, a disabled webhook endpoint). Only that user's live stream shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Notified {
    /// The user told.
    pub user_id: Uuid,
    /// What they are told.
    pub title: String,
    /// The kind of the record it is about.
    pub entity_kind: EntityKind,
    /// The record it is about.
    pub entity_id: Uuid,
}

impl EventPayload for Notified {
    fn action(&self) -> &'static str {
        "created"
    }
}
