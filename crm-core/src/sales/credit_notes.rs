//! Credit notes: corrections of an issued invoice, line by line.
//!
//! A credit note is issued as it is created: it gets the next `CN-<year>-<6 digits>`
//! number and, like an issued invoice, is never changed or deleted (a wrong one is
//! corrected by another document, not erased). What it credits is booked on the
//! invoice's lines (`quantity_credited`, `amount_credited`) and on the invoice
//! (`amount_credited`, which lowers `balance_due`) in the same atomic write, versioned
//! on the invoice, so concurrent credit notes never credit more than was invoiced.
//!
//! It credits at most what is still due: a paid invoice gets its payments refunded
//! first. An invoice that credit notes clear entirely, with nothing paid, is
//! `cancelled`; one cleared by payments and credit notes together is `paid`.

use std::collections::HashSet;

use chrono::NaiveDate;
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
    money::{Currency, MAX_SCALE, validate_amount},
    sales::invoices::Invoice,
    sales::invoices::InvoiceEvent,
    sales::lines::Line,
    sales::numbering::{NextNumber, Series},
    storage::{EntityKind, Page, Reference},
};

/// One credited invoice line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreditLine {
    /// The position of the line on the invoice (0-based).
    pub line_index: usize,
    /// The invoice line's description, as credited.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::sales::lines::LINE_DESCRIPTION_MAX)))]
    pub description: String,
    /// Units credited (returned); zero for a price reduction.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub quantity: Decimal,
    /// The amount credited, tax included, in the invoice's currency.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
}

/// A correction of an issued invoice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreditNote {
    /// Common metadata.
    pub meta: Meta,
    /// `CN-<year>-<6 digits>`, unique and gapless per tenant and year; set when issued
    /// (created).
    pub number: String,
    /// The invoice it corrects.
    pub invoice_id: Id<Invoice>,
    /// The invoice's company (kept here so clients can list their credit notes).
    pub company_id: Id<Company>,
    /// The invoice's currency.
    pub currency: Currency,
    /// What it credits.
    pub lines: Vec<CreditLine>,
    /// Σ of the lines' amounts.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub total: Decimal,
    /// When it was issued.
    pub issue_date: NaiveDate,
    /// Why, as the customer reads it.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub reason: Option<String>,
    /// Who issued it.
    pub created_by: Id<User>,
}

impl Entity for CreditNote {
    const KIND: EntityKind = EntityKind::CreditNote;
    const RESOURCE: Resource = Resource::CreditNotes;
    const OWNER_FIELD: Option<&'static str> = Some("created_by");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        number: Text [sort, search, unique] = |e| e.number.clone(),
        invoice_id: Uuid [eq] = |e| e.invoice_id,
        company_id: Uuid [eq] = |e| e.company_id,
        currency: Text [] = |e| e.currency.as_str(),
        total: Decimal [sort] = |e| e.total,
        issue_date: Date [sort, range(issued_from, issued_to)] = |e| e.issue_date,
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

/// What to credit on one invoice line: units, an amount, or both.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditLineInput {
    /// The position of the line on the invoice (0-based).
    pub line_index: usize,
    /// Units to credit; positive, at most those not yet credited.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub quantity: Option<Decimal>,
    /// The amount to credit, tax included; default: the line's total for `quantity`
    /// units (what is left of it when the last units are credited).
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub amount: Option<Decimal>,
}

/// Input to issue a credit note.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCreditNote {
    /// The invoice (issued or partially paid).
    pub invoice_id: Id<Invoice>,
    /// What to credit, at most one entry per invoice line.
    pub lines: Vec<CreditLineInput>,
    /// Why.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub reason: Option<String>,
}

/// Filters for listing credit notes.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreditNoteFilter {
    /// Only this invoice's.
    pub invoice_id: Option<Id<Invoice>>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Issued on or after.
    pub issued_from: Option<NaiveDate>,
    /// Issued before.
    pub issued_to: Option<NaiveDate>,
}

/// The credit notes service.
#[derive(Clone, Copy, Debug)]
pub struct CreditNotes<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The credit notes service.
    pub fn credit_notes(&self) -> CreditNotes<'_> {
        CreditNotes { crm: self }
    }
}

/// Checks the input's shape, before any invoice is read.
fn validate_input(input: &NewCreditNote) -> Result<()> {
    let mut v = Validator::new();
    v.check(!input.lines.is_empty(), "lines", "at least one line is required");
    let mut seen = HashSet::new();
    for (k, line) in input.lines.iter().enumerate() {
        v.check(seen.insert(line.line_index), format!("lines[{k}].line_index"), "appears twice");
        if let Some(quantity) = line.quantity {
            v.check(
                quantity > Decimal::ZERO && quantity.scale() <= MAX_SCALE,
                format!("lines[{k}].quantity"),
                "must be positive with at most 4 decimals",
            );
        }
        v.check(
            line.quantity.is_some() || line.amount.is_some(),
            format!("lines[{k}]"),
            "give a quantity, an amount or both",
        );
    }
    v.opt_text("reason", input.reason.as_deref(), Validator::NOTES_MAX);
    v.finish()
}

/// Credits one line of `invoice` (already checked to exist), refusing what would go past
/// its quantity or total; returns the credited line. Errors name `lines[k].…`.
fn credit_line(
    v: &mut Validator,
    k: usize,
    line: &mut Line,
    input: &CreditLineInput,
    currency: Currency,
) -> CreditLine {
    let quantity = input.quantity.unwrap_or(Decimal::ZERO);
    let units_left = line.quantity - line.quantity_credited;
    let amount_left = line.total - line.amount_credited;
    let amount = match input.amount {
        Some(amount) => {
            validate_amount(v, &format!("lines[{k}].amount"), amount, currency);
            amount
        }
        // The last units take what is left, so rounding never strands a cent.
        None if quantity == units_left => amount_left,
        None => currency.round(line.total * quantity / line.quantity),
    };
    v.check(
        quantity <= units_left,
        format!("lines[{k}].quantity"),
        format!("exceeds the {units_left} units left to credit on this invoice line"),
    );
    v.check(
        amount <= amount_left,
        format!("lines[{k}].amount"),
        format!("exceeds the {amount_left} left to credit on this invoice line"),
    );
    line.quantity_credited += quantity;
    line.amount_credited += amount;
    CreditLine { line_index: input.line_index, description: line.description.clone(), quantity, amount }
}

/// Books `input` on `invoice`: every line within what is left of it, the whole within
/// the balance due. Returns the credited lines and their total.
fn book_credit(invoice: &mut Invoice, input: &NewCreditNote) -> Result<(Vec<CreditLine>, Decimal)> {
    if !invoice.status.is_open() {
        return Err(CrmError::invalid(
            "invoice_id",
            format!("the invoice is {}: nothing is due to credit (refund its payments first)", invoice.status),
        ));
    }
    let mut v = Validator::new();
    let currency = invoice.currency;
    let mut credited = Vec::new();
    for (k, line_input) in input.lines.iter().enumerate() {
        match invoice.lines.get_mut(line_input.line_index) {
            Some(line) => credited.push(credit_line(&mut v, k, line, line_input, currency)),
            None => v.push(format!("lines[{k}].line_index"), "is not a line of the invoice"),
        }
    }
    let total: Decimal = credited.iter().map(|l| l.amount).sum();
    v.check(
        total <= invoice.balance_due,
        "lines",
        format!("the credit of {total} exceeds the balance due of {} {currency}", invoice.balance_due),
    );
    v.check(total > Decimal::ZERO, "lines", "credits nothing");
    v.finish()?;
    invoice.amount_credited += total;
    invoice.settle(invoice.amount_paid)?;
    Ok((credited, total))
}

impl CreditNotes<'_> {
    /// Issues a credit note against an open invoice, for a principal that may update
    /// that invoice: numbers it, books the credited lines and lowers the invoice's
    /// balance, in one atomic write; emits `credit_note.issued`, and
    /// `invoice.cancelled` or `invoice.paid` when nothing is left to pay. Concurrent
    /// credit notes (and payments) on one invoice are decided one after the other.
    pub async fn create(&self, p: &Principal, input: NewCreditNote) -> Result<CreditNote> {
        self.crm.authorize(p, Resource::CreditNotes, Action::Create)?;
        validate_input(&input)?;
        retry_on_conflict(&[EntityKind::Invoice, EntityKind::Tenant], || async {
            // A credit note rewrites its invoice (credited lines, balance, status).
            let before: Invoice = self.crm.load_for(p, input.invoice_id, Action::Update, None).await?;
            let mut after = before.clone();
            let (lines, total) = book_credit(&mut after, &input)?;
            let next = NextNumber::read(self.crm, p.tenant_id(), Series::CreditNote).await?;
            let mut tx = self.crm.tx(p);
            let note = CreditNote {
                meta: self.crm.new_meta(p.tenant_id()),
                issue_date: next.date,
                number: next.take(&mut tx),
                invoice_id: before.id(),
                company_id: before.company_id,
                currency: before.currency,
                lines,
                total,
                reason: input.reason.clone(),
                created_by: p.user_id(),
            };
            tx.insert(&note)?;
            tx.update_as("credited", &before, &mut after)?;
            tx.event(&note, &CreditNoteIssued::of(&note))?;
            if let Some(closed) = InvoiceEvent::closed(&before, &after) {
                tx.event(&after, &closed)?;
            }
            tx.commit().await?;
            Ok(note)
        })
        .await
    }

    /// One credit note.
    pub async fn get(&self, p: &Principal, id: Id<CreditNote>) -> Result<CreditNote> {
        self.crm.read(p, id).await
    }

    /// A page of credit notes.
    pub async fn list(&self, p: &Principal, filter: &CreditNoteFilter, page: &PageRequest) -> Result<Page<CreditNote>> {
        let filters = Filters::default()
            .eq("invoice_id", filter.invoice_id)
            .eq("company_id", filter.company_id)
            .range("issue_date", filter.issued_from, filter.issued_to)
            .build();
        self.crm.list(p, filters, page).await
    }
}

/// `credit_note.issued`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditNoteIssued {
    /// The credit note number.
    pub number: String,
    /// The invoice it credits.
    pub invoice_id: Uuid,
    /// The amount credited, tax included.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub total: Decimal,
    /// The currency of `total`.
    pub currency: Currency,
}

impl CreditNoteIssued {
    /// The event of a new credit note.
    pub(crate) fn of(note: &CreditNote) -> Self {
        CreditNoteIssued {
            number: note.number.clone(),
            invoice_id: note.invoice_id.uuid(),
            total: note.total,
            currency: note.currency,
        }
    }
}

impl EventPayload for CreditNoteIssued {
    fn action(&self) -> &'static str {
        "issued"
    }
}
