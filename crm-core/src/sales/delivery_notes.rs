//! Delivery notes: what was shipped against an invoice. Delivered quantities are kept
//! on the invoice's lines, so no set of notes ever exceeds what was invoiced. A note is
//! numbered when it ships: a pending note can still be deleted, a shipped one cannot.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, retry_on_conflict},
    customers::companies::Company,
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    events::EventPayload,
    fields::indexed_fields,
    id::{Id, Meta},
    sales::invoices::{Invoice, InvoiceStatus},
    sales::numbering::{NextNumber, Series},
    state::{StateMachine, status_enum},
    storage::{EntityKind, Page, Reference},
};

status_enum! {
    /// A delivery's progress: `pending → shipped → delivered`.
    DeliveryStatus for DeliveryNote {
        /// Prepared, not yet shipped.
        Pending = "pending" => [Shipped],
        /// On its way.
        Shipped = "shipped" => [Delivered],
        /// Received. Final.
        Delivered = "delivered" => [],
    }
}

/// One delivered line: a quantity of one invoice line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeliveryLine {
    /// The position of the line on the invoice (0-based).
    pub line_index: usize,
    /// The quantity delivered; positive.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub quantity: Decimal,
}

/// A delivery against one invoice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeliveryNote {
    /// Common metadata.
    pub meta: Meta,
    /// `DN-<year>-<6 digits>`, unique and gapless per tenant and year; set when shipped
    /// (a pending note can still be deleted, a shipped one cannot).
    pub number: Option<String>,
    /// The invoice delivered against.
    pub invoice_id: Id<Invoice>,
    /// The invoice's company (kept here so clients can list their deliveries).
    pub company_id: Id<Company>,
    /// What is delivered.
    pub lines: Vec<DeliveryLine>,
    /// Progress.
    pub status: DeliveryStatus,
    /// When it shipped.
    pub shipped_at: Option<DateTime<Utc>>,
    /// When it arrived.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Who prepared it.
    pub created_by: Id<User>,
    /// Free notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
}

impl Entity for DeliveryNote {
    const KIND: EntityKind = EntityKind::DeliveryNote;
    const RESOURCE: Resource = Resource::DeliveryNotes;
    const OWNER_FIELD: Option<&'static str> = Some("created_by");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        number: Text [sort, search, unique] = |e| e.number.clone(),
        invoice_id: Uuid [eq] = |e| e.invoice_id,
        company_id: Uuid [eq] = |e| e.company_id,
        status: Text [eq] = |e| e.status,
        created_by: Uuid [] = |e| e.created_by,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("invoice_id", self.invoice_id), reference("created_by", self.created_by)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.created_by.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        Some(self.company_id.uuid())
    }
}

/// Input to create a delivery note.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDeliveryNote {
    /// The invoice (issued, partially paid or paid).
    pub invoice_id: Id<Invoice>,
    /// What is delivered.
    pub lines: Vec<DeliveryLine>,
    /// Notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
}

/// Filters for listing delivery notes.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryNoteFilter {
    /// Only this invoice's.
    pub invoice_id: Option<Id<Invoice>>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
}

/// The delivery notes service.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryNotes<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The delivery notes service.
    pub fn delivery_notes(&self) -> DeliveryNotes<'_> {
        DeliveryNotes { crm: self }
    }
}

/// Adds `sign × quantity` of each delivery line to the invoice's delivered quantities,
/// refusing (naming `lines[k].quantity`) anything that would go past the invoiced
/// quantity or below zero.
fn apply_delivery(invoice: &mut Invoice, lines: &[DeliveryLine], sign: Decimal) -> Result<()> {
    let mut v = Validator::new();
    for (k, line) in lines.iter().enumerate() {
        let Some(invoiced) = invoice.lines.get_mut(line.line_index) else {
            v.push(format!("lines[{k}].line_index"), "is not a line of the invoice");
            continue;
        };
        let delivered = invoiced.quantity_delivered + sign * line.quantity;
        if delivered > invoiced.quantity || delivered < Decimal::ZERO {
            let left = invoiced.quantity - invoiced.quantity_delivered;
            v.push(format!("lines[{k}].quantity"), format!("exceeds the {left} left to deliver on this invoice line"));
        } else {
            invoiced.quantity_delivered = delivered;
        }
    }
    v.finish()
}

impl DeliveryNotes<'_> {
    /// Creates a pending delivery note and books its quantities on the invoice in one
    /// atomic write, for a principal that may update that invoice.
    pub async fn create(&self, p: &Principal, input: NewDeliveryNote) -> Result<DeliveryNote> {
        self.crm.authorize(p, Resource::DeliveryNotes, Action::Create)?;
        let mut v = Validator::new();
        v.check(!input.lines.is_empty(), "lines", "at least one line is required");
        let mut seen = HashSet::new();
        for (k, line) in input.lines.iter().enumerate() {
            v.check(seen.insert(line.line_index), format!("lines[{k}].line_index"), "appears twice");
            v.check(
                line.quantity > Decimal::ZERO && line.quantity.scale() <= 4,
                format!("lines[{k}].quantity"),
                "must be positive with at most 4 decimals",
            );
        }
        v.opt_text("notes", input.notes.as_deref(), Validator::NOTES_MAX);
        v.finish()?;
        retry_on_conflict(&[EntityKind::Invoice], || async {
            // Booking rewrites the invoice's delivered quantities.
            let before: Invoice = self.crm.load_for(p, input.invoice_id, Action::Update, None).await?;
            if matches!(before.status, InvoiceStatus::Draft | InvoiceStatus::Cancelled) {
                return Err(CrmError::invalid(
                    "invoice_id",
                    format!("the invoice is {}: nothing to deliver", before.status),
                ));
            }
            let mut after = before.clone();
            apply_delivery(&mut after, &input.lines, Decimal::ONE)?;
            let note = DeliveryNote {
                meta: self.crm.new_meta(p.tenant_id()),
                number: None,
                invoice_id: input.invoice_id,
                company_id: before.company_id,
                lines: input.lines.clone(),
                status: DeliveryStatus::Pending,
                shipped_at: None,
                delivered_at: None,
                created_by: p.user_id(),
                notes: input.notes.clone(),
            };
            let mut tx = self.crm.tx(p);
            tx.insert(&note)?;
            tx.update_as("delivery_booked", &before, &mut after)?;
            tx.commit().await?;
            Ok(note)
        })
        .await
    }

    /// One delivery note.
    pub async fn get(&self, p: &Principal, id: Id<DeliveryNote>) -> Result<DeliveryNote> {
        self.crm.read(p, id).await
    }

    /// A page of delivery notes.
    pub async fn list(
        &self,
        p: &Principal,
        filter: &DeliveryNoteFilter,
        page: &PageRequest,
    ) -> Result<Page<DeliveryNote>> {
        let filters = Filters::default()
            .eq("invoice_id", filter.invoice_id)
            .eq("company_id", filter.company_id)
            .eq("status", filter.status)
            .build();
        self.crm.list(p, filters, page).await
    }

    async fn advance(
        &self,
        p: &Principal,
        id: Id<DeliveryNote>,
        to: DeliveryStatus,
        version: Option<u64>,
    ) -> Result<DeliveryNote> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(to)?;
        let mut tx = self.crm.tx(p);
        match to {
            DeliveryStatus::Shipped => after.shipped_at = Some(tx.now()),
            DeliveryStatus::Delivered => after.delivered_at = Some(tx.now()),
            DeliveryStatus::Pending => {}
        }
        tx.update_as(to.as_str(), &before, &mut after)?;
        tx.event(&after, &DeliveryNoteEvent::of(&after))?;
        tx.commit().await?;
        Ok(after)
    }

    /// Marks a pending note shipped and gives it the next delivery-note number of the
    /// tenant's year (`DN-2026-000001`, gapless: the counter moves in the same atomic
    /// write). Concurrent shipments retry until each has its own number.
    pub async fn ship(&self, p: &Principal, id: Id<DeliveryNote>, version: Option<u64>) -> Result<DeliveryNote> {
        retry_on_conflict(&[EntityKind::Tenant], || async {
            let before = self.crm.load_for(p, id, Action::Update, version).await?;
            let mut after = before.clone();
            after.status = before.status.transition(DeliveryStatus::Shipped)?;
            let next = NextNumber::read(self.crm, p.tenant_id(), Series::DeliveryNote).await?;
            let mut tx = self.crm.tx(p);
            after.number = Some(next.take(&mut tx));
            after.shipped_at = Some(tx.now());
            tx.update_as("shipped", &before, &mut after)?;
            tx.event(&after, &DeliveryNoteEvent::of(&after))?;
            tx.commit().await?;
            Ok(after)
        })
        .await
    }

    /// Marks a shipped note delivered.
    pub async fn deliver(&self, p: &Principal, id: Id<DeliveryNote>, version: Option<u64>) -> Result<DeliveryNote> {
        self.advance(p, id, DeliveryStatus::Delivered, version).await
    }

    /// Deletes a pending note and gives its quantities back to the invoice, atomically,
    /// for a principal that may update both.
    pub async fn delete(&self, p: &Principal, id: Id<DeliveryNote>, version: Option<u64>) -> Result<()> {
        let note = self.crm.load_for(p, id, Action::Delete, version).await?;
        if note.status != DeliveryStatus::Pending {
            return Err(CrmError::invalid("status", "only a pending delivery note can be deleted"));
        }
        retry_on_conflict(&[EntityKind::Invoice], || async {
            let before: Invoice = self.crm.load_for(p, note.invoice_id, Action::Update, None).await?;
            let mut after = before.clone();
            apply_delivery(&mut after, &note.lines, Decimal::NEGATIVE_ONE)?;
            let mut tx = self.crm.tx(p);
            tx.delete(&note)?;
            tx.update_as("delivery_released", &before, &mut after)?;
            tx.commit().await
        })
        .await
    }
}

/// `delivery_note.shipped`, `delivery_note.delivered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeliveryNoteEvent {
    /// The delivery-note number (from shipping on).
    pub number: Option<String>,
    /// The invoice delivered.
    pub invoice_id: Uuid,
    /// The status after the change; the event's action.
    pub status: DeliveryStatus,
}

impl DeliveryNoteEvent {
    /// The event of `note`'s move to its current status.
    pub(crate) fn of(note: &DeliveryNote) -> Self {
        DeliveryNoteEvent { number: note.number.clone(), invoice_id: note.invoice_id.uuid(), status: note.status }
    }
}

impl EventPayload for DeliveryNoteEvent {
    fn action(&self) -> &'static str {
        self.status.as_str()
    }
}
