//! Invoices: priced lines, gapless per-tenant numbering at issue, payments settle them.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, JOB_PAGE, PageRequest, apply_patch, retry_on_conflict, unless_moved},
    customers::companies::Company,
    customers::contacts::Contact,
    customers::links::CompanyLinks,
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    events::Named,
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    money::Currency,
    sales::lines::{Line, LineInput, Totals, price_lines, product_references, validate_lines},
    sales::numbering::{NextNumber, Series},
    state::{StateMachine, status_enum},
    storage::{EntityKind, Page, Reference},
};

status_enum! {
    /// An invoice's life: `draft → issued → partially_paid → paid`, or `cancelled`
    /// before anything is paid (also when credit notes clear it). Voiding or refunding
    /// payments moves a paid invoice back; a zero total is `paid` as it is issued.
    InvoiceStatus for Invoice {
        /// Being prepared; lines can change; no number yet.
        Draft = "draft" => [Issued, Cancelled],
        /// Numbered and sent; nothing paid.
        Issued = "issued" => [PartiallyPaid, Paid, Cancelled],
        /// Some of the total is paid.
        PartiallyPaid = "partially_paid" => [Paid, Issued],
        /// Fully paid.
        Paid = "paid" => [PartiallyPaid, Issued],
        /// Void. Final.
        Cancelled = "cancelled" => [],
    }
}

impl InvoiceStatus {
    /// Issued and not fully paid: money is owed.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Issued | Self::PartiallyPaid)
    }
}

/// The days to pay when an invoice names none.
pub const DEFAULT_PAYMENT_TERMS_DAYS: u32 = 30;

/// A bill to a customer company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Invoice {
    /// Common metadata.
    pub meta: Meta,
    /// `INV-<year>-<6 digits>`, unique and gapless per tenant and year; set at issue.
    pub number: Option<String>,
    /// The billed company.
    pub company_id: Id<Company>,
    /// The billed contact.
    pub contact_id: Option<Id<Contact>>,
    /// The quote it came from.
    // A `Quote` id, untyped: quotes sit above invoices (accepting one drafts an invoice).
    pub quote_id: Option<Uuid>,
    /// The responsible user.
    pub owner_id: Id<User>,
    /// The currency of every amount.
    pub currency: Currency,
    /// Priced lines.
    pub lines: Vec<Line>,
    /// Sums of the lines.
    pub totals: Totals,
    /// Σ completed payments, less their refunds.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount_paid: Decimal,
    /// Σ credit notes against it (`"0"` for invoices stored before credit notes existed).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount_credited: Decimal,
    /// `totals.total − amount_paid − amount_credited`; never negative.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub balance_due: Decimal,
    /// Life-cycle status.
    pub status: InvoiceStatus,
    /// When it was issued.
    pub issue_date: Option<NaiveDate>,
    /// When payment is due (issue date + terms).
    pub due_date: Option<NaiveDate>,
    /// Days from issue to due date.
    pub payment_terms_days: u32,
    /// Free notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
    /// When its owner was told it is overdue (the scheduled job tells once per invoice).
    #[serde(default)]
    pub overdue_notified_at: Option<DateTime<Utc>>,
}

impl Invoice {
    /// Open and past its due date on `today`.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.status.is_open() && self.due_date.is_some_and(|due| due < today)
    }

    /// Sets the amount paid and moves the status to match it and the amount credited:
    /// the one place payments, voids, refunds, credit notes and issuing settle an
    /// invoice. Nothing left to pay is `paid`, unless nothing was ever paid and credit
    /// notes cleared it all: then it is `cancelled` (cancelled by credit). A zero total
    /// is `paid` as soon as it is issued.
    pub(crate) fn settle(&mut self, amount_paid: Decimal) -> Result<()> {
        self.amount_paid = amount_paid;
        self.balance_due = self.totals.total - (amount_paid + self.amount_credited);
        let status = if !self.balance_due.is_zero() && amount_paid.is_zero() {
            InvoiceStatus::Issued
        } else if !self.balance_due.is_zero() {
            InvoiceStatus::PartiallyPaid
        } else if amount_paid.is_zero() && !self.amount_credited.is_zero() {
            InvoiceStatus::Cancelled
        } else {
            InvoiceStatus::Paid
        };
        if status != self.status {
            self.status = self.status.transition(status)?;
        }
        Ok(())
    }

    fn set_lines(&mut self, lines: &[LineInput]) {
        let (priced, totals) = price_lines(self.currency, lines);
        self.lines = priced;
        self.totals = totals;
        self.balance_due = totals.total - (self.amount_paid + self.amount_credited);
    }

    /// A draft made by accepting a quote bills what the customer accepted: its lines
    /// do not change, and it is cancelled (never deleted) so the quote keeps its invoice.
    fn refuse_if_from_quote(&self, field: &str, what: &str) -> Result<()> {
        match self.quote_id {
            Some(quote) => Err(CrmError::invalid(field, format!("{what}: the invoice bills accepted quote {quote}"))),
            None => Ok(()),
        }
    }

    fn require_draft(&self, what: &str) -> Result<()> {
        if self.status == InvoiceStatus::Draft {
            Ok(())
        } else {
            Err(CrmError::invalid(
                "status",
                format!("only a draft invoice can be {what} (this one is {})", self.status),
            ))
        }
    }
}

impl Entity for Invoice {
    const KIND: EntityKind = EntityKind::Invoice;
    const RESOURCE: Resource = Resource::Invoices;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        number: Text [sort, search, unique] = |e| e.number.clone(),
        company_id: Uuid [eq] = |e| e.company_id,
        contact_id: Uuid [] = |e| e.contact_id,
        quote_id: Uuid [] = |e| e.quote_id,
        owner_id: Uuid [eq] = |e| e.owner_id,
        status: Text [any(statuses)] = |e| e.status,
        currency: Text [] = |e| e.currency.as_str(),
        total: Decimal [sort] = |e| e.totals.total,
        amount_paid: Decimal [] = |e| e.amount_paid,
        balance_due: Decimal [sort] = |e| e.balance_due,
        issue_date: Date [sort, range(issued_from, issued_to)] = |e| e.issue_date,
        due_date: Date [sort, passed(overdue), range(due_from, due_to)] = |e| e.due_date,
    }

    fn references(&self) -> Vec<Reference> {
        let mut refs = vec![reference("company_id", self.company_id), reference("owner_id", self.owner_id)];
        refs.extend(self.contact_id.map(|c| reference("contact_id", c)));
        refs.extend(self.quote_id.map(|id| Reference { field: "quote_id", kind: EntityKind::Quote, id }));
        refs.extend(product_references(&self.lines));
        refs
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        Some(self.company_id.uuid())
    }
}

/// Input to create a standalone draft invoice.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewInvoice {
    /// The billed company.
    pub company_id: Id<Company>,
    /// The billed contact.
    pub contact_id: Option<Id<Contact>>,
    /// The responsible user; default: the creator.
    pub owner_id: Option<Id<User>>,
    /// The currency.
    pub currency: Currency,
    /// The lines.
    pub lines: Vec<LineInput>,
    /// Days to pay; default [`DEFAULT_PAYMENT_TERMS_DAYS`].
    pub payment_terms_days: Option<u32>,
    /// Notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
}

/// Changes to a draft invoice.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct InvoicePatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New contact.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub contact_id: Option<Option<Id<Contact>>>,
    /// New lines (repriced).
    pub lines: Option<Vec<LineInput>>,
    /// New payment terms.
    pub payment_terms_days: Option<u32>,
    /// New notes.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<Option<String>>,
}

/// Filters for listing invoices.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvoiceFilter {
    /// Only these statuses.
    #[serde(deserialize_with = "crate::input::comma_list")]
    pub statuses: Vec<InvoiceStatus>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this owner's.
    pub owner_id: Option<Id<User>>,
    /// Only overdue invoices (open and past due today).
    pub overdue: bool,
    /// Issued on or after.
    pub issued_from: Option<NaiveDate>,
    /// Issued before.
    pub issued_to: Option<NaiveDate>,
    /// Due on or after.
    pub due_from: Option<NaiveDate>,
    /// Due before.
    pub due_to: Option<NaiveDate>,
}

/// The invoices service.
#[derive(Clone, Copy, Debug)]
pub struct Invoices<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The invoices service.
    pub fn invoices(&self) -> Invoices<'_> {
        Invoices { crm: self }
    }
}

fn validate_terms(v: &mut Validator, days: u32) {
    v.check(days <= 365, "payment_terms_days", "must be at most 365 days");
}

impl Invoices<'_> {
    /// Creates a draft invoice.
    pub async fn create(&self, p: &Principal, input: NewInvoice) -> Result<Invoice> {
        self.crm.authorize(p, Resource::Invoices, Action::Create)?;
        let mut v = Validator::new();
        validate_lines(&mut v, &input.lines);
        let terms = input.payment_terms_days.unwrap_or(DEFAULT_PAYMENT_TERMS_DAYS);
        validate_terms(&mut v, terms);
        v.opt_text("notes", input.notes.as_deref(), Validator::NOTES_MAX);
        v.finish()?;
        let links = CompanyLinks::check(self.crm, p.tenant_id(), input.company_id, input.contact_id, None).await?;
        let mut invoice = Invoice {
            meta: self.crm.new_meta(p.tenant_id()),
            number: None,
            company_id: input.company_id,
            contact_id: input.contact_id,
            quote_id: None,
            owner_id: input.owner_id.unwrap_or(p.user_id()),
            currency: input.currency,
            lines: Vec::new(),
            totals: Totals::default(),
            amount_paid: Decimal::ZERO,
            amount_credited: Decimal::ZERO,
            balance_due: Decimal::ZERO,
            status: InvoiceStatus::Draft,
            issue_date: None,
            due_date: None,
            payment_terms_days: terms,
            notes: input.notes,
            overdue_notified_at: None,
        };
        invoice.set_lines(&input.lines);
        let mut tx = self.crm.tx(p);
        links.guard(&mut tx);
        tx.insert(&invoice)?;
        tx.commit().await?;
        Ok(invoice)
    }

    /// One invoice.
    pub async fn get(&self, p: &Principal, id: Id<Invoice>) -> Result<Invoice> {
        self.crm.read(p, id).await
    }

    /// A page of invoices.
    pub async fn list(&self, p: &Principal, filter: &InvoiceFilter, page: &PageRequest) -> Result<Page<Invoice>> {
        let open = [InvoiceStatus::Issued, InvoiceStatus::PartiallyPaid];
        let statuses: &[InvoiceStatus] = if filter.overdue { &open } else { &filter.statuses };
        let due_before = if filter.overdue { Some(self.crm.today(p.tenant_id()).await?) } else { None };
        let filters = Filters::default()
            .any_of("status", statuses)
            .range("due_date", None, due_before)
            .eq("company_id", filter.company_id)
            .eq("owner_id", filter.owner_id)
            .range("issue_date", filter.issued_from, filter.issued_to)
            .range("due_date", filter.due_from, filter.due_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Tells the owner of each of `tenant`'s overdue invoices (open and past due in the
    /// tenant's today) that it is overdue, once per invoice: the invoice keeps when, in
    /// the same write as the notification and its `invoice.overdue` event. For the
    /// scheduler; an invoice that moved meanwhile is told on the next run. Says how
    /// many owners were told.
    pub async fn notify_overdue(&self, tenant: TenantId) -> Result<u64> {
        let system = Principal::system(tenant);
        let filter = InvoiceFilter { overdue: true, ..InvoiceFilter::default() };
        let mut page = PageRequest::first(JOB_PAGE);
        let mut told = 0;
        loop {
            let found = self.list(&system, &filter, &page).await?;
            for invoice in found.items.iter().filter(|i| i.overdue_notified_at.is_none()) {
                told += u64::from(unless_moved(self.tell_overdue(&system, invoice).await)?.is_some());
            }
            match found.next {
                Some(next) => page = page.after(&next),
                None => return Ok(told),
            }
        }
    }

    async fn tell_overdue(&self, p: &Principal, before: &Invoice) -> Result<()> {
        let mut after = before.clone();
        let mut tx = self.crm.tx(p);
        after.overdue_notified_at = Some(tx.now());
        let number = before.number.as_deref().unwrap_or("without number");
        tx.update_as("overdue", before, &mut after)?;
        tx.notify(before.owner_id.uuid(), &after, format!("Invoice {number} is overdue"))?;
        tx.event(&after, &InvoiceEvent::named("overdue", &after))?;
        tx.commit().await
    }

    /// Changes a draft invoice.
    pub async fn update(&self, p: &Principal, id: Id<Invoice>, patch: InvoicePatch) -> Result<Invoice> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        before.require_draft("changed")?;
        if patch.lines.is_some() {
            before.refuse_if_from_quote("lines", "cannot change")?;
        }
        let mut v = Validator::new();
        if let Some(lines) = &patch.lines {
            validate_lines(&mut v, lines);
        }
        if let Some(days) = patch.payment_terms_days {
            validate_terms(&mut v, days);
        }
        if let Some(Some(notes)) = &patch.notes {
            v.text("notes", notes, Validator::NOTES_MAX);
        }
        v.finish()?;
        let new_contact = patch.contact_id.flatten();
        let links = CompanyLinks::check(self.crm, p.tenant_id(), before.company_id, new_contact, None).await?;
        let mut after = before.clone();
        if let Some(lines) = &patch.lines {
            after.set_lines(lines);
        }
        apply_patch!(patch => after { contact_id, payment_terms_days, notes });
        let mut tx = self.crm.tx(p);
        links.guard(&mut tx);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Issues a draft: assigns the next number of the tenant's year (`INV-2026-000001`,
    /// gapless: the counter moves in the same atomic write), the issue date (today) and
    /// the due date. Concurrent issues retry until each has its own number. A zero
    /// total leaves nothing to pay: the invoice is `paid` as it is issued.
    pub async fn issue(&self, p: &Principal, id: Id<Invoice>, version: Option<u64>) -> Result<Invoice> {
        retry_on_conflict(&[EntityKind::Tenant], || async {
            let before = self.crm.load_for(p, id, Action::Update, version).await?;
            before.require_draft("issued")?;
            let next = NextNumber::read(self.crm, p.tenant_id(), Series::Invoice).await?;
            let today = next.date;
            let mut after = before.clone();
            after.status = before.status.transition(InvoiceStatus::Issued)?;
            after.settle(Decimal::ZERO)?;
            after.issue_date = Some(today);
            after.due_date = Some(today + Duration::days(i64::from(before.payment_terms_days)));
            let mut tx = self.crm.tx(p);
            after.number = Some(next.take(&mut tx));
            tx.update_as("issued", &before, &mut after)?;
            tx.event(&after, &InvoiceEvent::named("issued", &after))?;
            if after.status == InvoiceStatus::Paid {
                tx.event(&after, &InvoiceEvent::named("paid", &after))?;
            }
            tx.commit().await?;
            Ok(after)
        })
        .await
    }

    /// Cancels a draft or an issued invoice on which nothing is paid.
    pub async fn cancel(&self, p: &Principal, id: Id<Invoice>, version: Option<u64>) -> Result<Invoice> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(InvoiceStatus::Cancelled)?;
        let mut tx = self.crm.tx(p);
        tx.update_as("cancelled", &before, &mut after)?;
        tx.event(&after, &InvoiceEvent::named("cancelled", &after))?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a draft invoice (issued ones are cancelled, never deleted: numbers stay gapless).
    pub async fn delete(&self, p: &Principal, id: Id<Invoice>, version: Option<u64>) -> Result<()> {
        let invoice = self.crm.load_for(p, id, Action::Delete, version).await?;
        invoice.require_draft("deleted")?;
        invoice.refuse_if_from_quote("quote_id", "cannot be deleted, only cancelled")?;
        let mut tx = self.crm.tx(p);
        tx.delete(&invoice)?;
        tx.commit().await
    }
}

/// `invoice.issued`, `invoice.paid`, `invoice.cancelled`: the invoice's state after the
/// change (a zero-total invoice is issued and paid in one write: both events). Every
/// emitter builds it here, so `invoice.paid` says the same whether a payment, a credit
/// note or a zero total settled the invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct InvoiceEvent {
    /// The invoice number (from issue on).
    pub number: Option<String>,
    /// The status after the change.
    pub status: InvoiceStatus,
    /// The total, tax included.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub total: Decimal,
    /// Paid so far (payments less refunds).
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount_paid: Decimal,
    /// Credited by credit notes.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount_credited: Decimal,
    /// What is still owed.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub balance_due: Decimal,
    /// The currency of the amounts.
    pub currency: Currency,
}

impl InvoiceEvent {
    /// `invoice.<action>` with `invoice`'s state.
    pub(crate) fn named(action: &'static str, invoice: &Invoice) -> Named<Self> {
        Named::new(
            action,
            InvoiceEvent {
                number: invoice.number.clone(),
                status: invoice.status,
                total: invoice.totals.total,
                amount_paid: invoice.amount_paid,
                amount_credited: invoice.amount_credited,
                balance_due: invoice.balance_due,
                currency: invoice.currency,
            },
        )
    }

    /// The event of an invoice that a payment, credit or cancellation closed, if it
    /// closed: `invoice.paid` or `invoice.cancelled`.
    pub(crate) fn closed(before: &Invoice, after: &Invoice) -> Option<Named<Self>> {
        if after.status == before.status {
            return None;
        }
        match after.status {
            InvoiceStatus::Paid => Some(Self::named("paid", after)),
            InvoiceStatus::Cancelled => Some(Self::named("cancelled", after)),
            _ => None,
        }
    }
}
