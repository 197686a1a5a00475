//! The event catalogue: every event the core emits, by name, with the type of its
//! payload. This is what webhook subscribers rely on, so it is versioned: a removed
//! event, a removed or retyped payload field raises [`CATALOGUE_VERSION`]; an added
//! event or an added optional field does not. `tests/it/events.rs` runs the services
//! and holds every name and payload in the outbox to this list.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    customers::{
        deals::{DealClosed, DealStageChanged},
        leads::{LeadConverted, LeadStatus},
    },
    events::{Assigned, Notified, StatusChanged},
    sales::{
        credit_notes::CreditNoteIssued, delivery_notes::DeliveryNoteEvent, invoices::InvoiceEvent,
        payments::PaymentEvent, quotes::QuoteEvent, refunds::RefundRecorded,
    },
    work::{closing::ProjectStatusChanged, tasks::TaskStatus},
};

/// The catalogue's version, sent with every delivery.
pub const CATALOGUE_VERSION: u32 = 1;

/// The name subscribers use for "every event".
pub const ALL_EVENTS: &str = "*";

/// One kind of event: its name, what it means and its payload's type.
#[derive(Clone, Copy)]
pub struct EventType {
    /// `<kind>.<action>`, as in the outbox and the `type` of a delivery.
    pub name: &'static str,
    /// When it happens.
    pub summary: &'static str,
    /// The payload type's name (as in the API spec's schemas).
    pub payload_type: &'static str,
    check: fn(&Value) -> Result<(), String>,
    #[cfg(feature = "schema")]
    schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl EventType {
    /// Whether `payload` is a valid payload of this event (it deserialises into the
    /// declared type, which refuses unknown fields); the error names what is wrong.
    pub fn check_payload(&self, payload: &Value) -> Result<(), String> {
        (self.check)(payload)
    }

    /// The JSON Schema of the payload.
    #[cfg(feature = "schema")]
    pub fn payload_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        (self.schema)(generator)
    }
}

impl std::fmt::Debug for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventType").field("name", &self.name).field("payload_type", &self.payload_type).finish()
    }
}

fn check<P: DeserializeOwned>(payload: &Value) -> Result<(), String> {
    P::deserialize(payload).map(|_: P| ()).map_err(|e| e.to_string())
}

macro_rules! catalogue {
    ($( $name:literal => $payload:ty, $summary:literal; )*) => {
        &[$(EventType {
            name: $name,
            summary: $summary,
            payload_type: stringify!($payload),
            check: check::<$payload>,
            #[cfg(feature = "schema")]
            schema: |generator| generator.subschema_for::<$payload>(),
        }),*]
    };
}

const EVENTS: &[EventType] = catalogue! {
    "lead.assigned" => Assigned, "A lead got a new owner.";
    "lead.status_changed" => StatusChanged<LeadStatus>, "A lead moved in the funnel.";
    "lead.converted" => LeadConverted, "A lead became a contact, with its company and possibly a deal.";
    "deal.assigned" => Assigned, "A deal got a new owner.";
    "deal.stage_changed" => DealStageChanged, "A deal moved in the pipeline.";
    "deal.won" => DealClosed, "A deal closed as won (after its deal.stage_changed).";
    "deal.lost" => DealClosed, "A deal closed as lost (after its deal.stage_changed).";
    "quote.sent" => QuoteEvent, "A quote was numbered and sent.";
    "quote.accepted" => QuoteEvent, "A quote was accepted; its draft invoice exists.";
    "quote.rejected" => QuoteEvent, "The customer declined a quote.";
    "quote.expired" => QuoteEvent, "A sent quote lapsed.";
    "invoice.issued" => InvoiceEvent, "An invoice was numbered and issued.";
    "invoice.paid" => InvoiceEvent, "An invoice was settled: by payments, credit notes, or a zero total.";
    "invoice.cancelled" => InvoiceEvent, "An invoice was cancelled, or fully credited before any payment.";
    "invoice.overdue" => InvoiceEvent, "An issued invoice passed its due date unpaid (once; its owner is notified).";
    "payment.recorded" => PaymentEvent, "A payment was recorded against an invoice.";
    "payment.voided" => PaymentEvent, "A payment was reversed.";
    "refund.recorded" => RefundRecorded, "Part or all of a payment was refunded.";
    "credit_note.issued" => CreditNoteIssued, "A credit note was issued against an invoice.";
    "delivery_note.shipped" => DeliveryNoteEvent, "A delivery was numbered and shipped.";
    "delivery_note.delivered" => DeliveryNoteEvent, "A delivery was received.";
    "project.assigned" => Assigned, "A project got a new manager.";
    "project.status_changed" => ProjectStatusChanged, "A project changed status, possibly closing its open work.";
    "task.assigned" => Assigned, "A task got a new assignee.";
    "task.status_changed" => StatusChanged<TaskStatus>, "A task changed status.";
    "notification.created" => Notified, "A user was notified (assignment, overdue invoice, disabled webhook endpoint).";
};

/// Every event the core emits, in the order of the areas.
pub fn catalogue() -> &'static [EventType] {
    EVENTS
}

/// The event named `name`, if the core emits it.
pub fn event_type(name: &str) -> Option<&'static EventType> {
    EVENTS.iter().find(|e| e.name == name)
}
