//! Quotes: priced offers that, once accepted, become invoices.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, JOB_PAGE, PageRequest, apply_patch, retry_on_conflict, unless_moved},
    customers::companies::Company,
    customers::contacts::Contact,
    customers::deals::Deal,
    customers::links::CompanyLinks,
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    events::EventPayload,
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    money::Currency,
    sales::invoices::{DEFAULT_PAYMENT_TERMS_DAYS, Invoice, InvoiceStatus},
    sales::lines::product_references,
    sales::lines::{Line, LineInput, Totals, price_lines, validate_lines},
    sales::numbering::{NextNumber, Series},
    state::{StateMachine, status_enum},
    storage::{EntityKind, Page, Reference},
};

status_enum! {
    /// A quote's life: `draft → sent → accepted | rejected | expired`.
    QuoteStatus for Quote {
        /// Being prepared; lines can change.
        Draft = "draft" => [Sent],
        /// With the customer.
        Sent = "sent" => [Accepted, Rejected, Expired],
        /// Accepted; its invoice exists. Final.
        Accepted = "accepted" => [],
        /// Declined. Final.
        Rejected = "rejected" => [],
        /// Lapsed. Final.
        Expired = "expired" => [],
    }
}

/// A priced offer to a customer company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Quote {
    /// Common metadata.
    pub meta: Meta,
    /// `QUO-<year>-<6 digits>`, unique and gapless per tenant and year; set when sent
    /// (a draft can still be deleted, a sent quote cannot).
    pub number: Option<String>,
    /// The customer company.
    pub company_id: Id<Company>,
    /// The customer contact.
    pub contact_id: Option<Id<Contact>>,
    /// The deal it belongs to.
    pub deal_id: Option<Id<Deal>>,
    /// The responsible user.
    pub owner_id: Id<User>,
    /// The currency of every amount.
    pub currency: Currency,
    /// Priced lines.
    pub lines: Vec<Line>,
    /// Sums of the lines.
    pub totals: Totals,
    /// Life-cycle status.
    pub status: QuoteStatus,
    /// The last day it can be accepted.
    pub valid_until: NaiveDate,
    /// Free notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was accepted, rejected or expired.
    pub decided_at: Option<DateTime<Utc>>,
    /// The invoice created on acceptance.
    pub invoice_id: Option<Id<Invoice>>,
}

impl Entity for Quote {
    const KIND: EntityKind = EntityKind::Quote;
    const RESOURCE: Resource = Resource::Quotes;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        number: Text [sort, search, unique] = |e| e.number.clone(),
        company_id: Uuid [eq] = |e| e.company_id,
        contact_id: Uuid [] = |e| e.contact_id,
        deal_id: Uuid [eq] = |e| e.deal_id,
        owner_id: Uuid [eq] = |e| e.owner_id,
        status: Text [any(statuses)] = |e| e.status,
        currency: Text [] = |e| e.currency.as_str(),
        total: Decimal [sort] = |e| e.totals.total,
        valid_until: Date [sort, range(valid_from, valid_to)] = |e| e.valid_until,
    }

    fn references(&self) -> Vec<Reference> {
        let mut refs = vec![reference("company_id", self.company_id), reference("owner_id", self.owner_id)];
        refs.extend(self.contact_id.map(|c| reference("contact_id", c)));
        refs.extend(self.deal_id.map(|d| reference("deal_id", d)));
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

/// Input to create a draft quote.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewQuote {
    /// The customer company.
    pub company_id: Id<Company>,
    /// The customer contact.
    pub contact_id: Option<Id<Contact>>,
    /// The deal it belongs to.
    pub deal_id: Option<Id<Deal>>,
    /// The responsible user; default: the creator.
    pub owner_id: Option<Id<User>>,
    /// The currency.
    pub currency: Currency,
    /// The lines.
    pub lines: Vec<LineInput>,
    /// The last day it can be accepted (today or later).
    pub valid_until: NaiveDate,
    /// Notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
}

/// Changes to a draft quote.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotePatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New contact.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub contact_id: Option<Option<Id<Contact>>>,
    /// New lines (repriced).
    pub lines: Option<Vec<LineInput>>,
    /// New validity.
    pub valid_until: Option<NaiveDate>,
    /// New notes.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<Option<String>>,
}

/// Filters for listing quotes.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuoteFilter {
    /// Only these statuses.
    #[serde(deserialize_with = "crate::input::comma_list")]
    pub statuses: Vec<QuoteStatus>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this deal's.
    pub deal_id: Option<Id<Deal>>,
    /// Only this owner's.
    pub owner_id: Option<Id<User>>,
    /// Valid until on or after.
    pub valid_from: Option<NaiveDate>,
    /// Valid until before.
    pub valid_to: Option<NaiveDate>,
}

/// The quotes service.
#[derive(Clone, Copy, Debug)]
pub struct Quotes<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The quotes service.
    pub fn quotes(&self) -> Quotes<'_> {
        Quotes { crm: self }
    }
}

impl Quotes<'_> {
    async fn validate(
        &self,
        p: &Principal,
        lines: Option<&[LineInput]>,
        valid_until: Option<NaiveDate>,
        notes: Option<&str>,
    ) -> Result<()> {
        let mut v = Validator::new();
        if let Some(lines) = lines {
            validate_lines(&mut v, lines);
        }
        if let Some(date) = valid_until {
            v.check(date >= self.crm.today(p.tenant_id()).await?, "valid_until", "must be today or later");
        }
        v.opt_text("notes", notes, Validator::NOTES_MAX);
        v.finish()
    }

    /// Creates a draft quote.
    pub async fn create(&self, p: &Principal, input: NewQuote) -> Result<Quote> {
        self.crm.authorize(p, Resource::Quotes, Action::Create)?;
        self.validate(p, Some(&input.lines), Some(input.valid_until), input.notes.as_deref()).await?;
        let links =
            CompanyLinks::check(self.crm, p.tenant_id(), input.company_id, input.contact_id, input.deal_id).await?;
        let (lines, totals) = price_lines(input.currency, &input.lines);
        let quote = Quote {
            meta: self.crm.new_meta(p.tenant_id()),
            number: None,
            company_id: input.company_id,
            contact_id: input.contact_id,
            deal_id: input.deal_id,
            owner_id: input.owner_id.unwrap_or(p.user_id()),
            currency: input.currency,
            lines,
            totals,
            status: QuoteStatus::Draft,
            valid_until: input.valid_until,
            notes: input.notes,
            sent_at: None,
            decided_at: None,
            invoice_id: None,
        };
        let mut tx = self.crm.tx(p);
        links.guard(&mut tx);
        tx.insert(&quote)?;
        tx.commit().await?;
        Ok(quote)
    }

    /// One quote.
    pub async fn get(&self, p: &Principal, id: Id<Quote>) -> Result<Quote> {
        self.crm.read(p, id).await
    }

    /// A page of quotes.
    pub async fn list(&self, p: &Principal, filter: &QuoteFilter, page: &PageRequest) -> Result<Page<Quote>> {
        let filters = Filters::default()
            .any_of("status", &filter.statuses)
            .eq("company_id", filter.company_id)
            .eq("deal_id", filter.deal_id)
            .eq("owner_id", filter.owner_id)
            .range("valid_until", filter.valid_from, filter.valid_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a draft quote.
    pub async fn update(&self, p: &Principal, id: Id<Quote>, patch: QuotePatch) -> Result<Quote> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        if before.status != QuoteStatus::Draft {
            return Err(CrmError::invalid(
                "status",
                format!("only a draft quote can be changed (this one is {})", before.status),
            ));
        }
        let notes = patch.notes.as_ref().and_then(Option::as_deref);
        self.validate(p, patch.lines.as_deref(), patch.valid_until, notes).await?;
        let new_contact = patch.contact_id.flatten();
        let links = CompanyLinks::check(self.crm, p.tenant_id(), before.company_id, new_contact, None).await?;
        let mut after = before.clone();
        if let Some(lines) = &patch.lines {
            (after.lines, after.totals) = price_lines(after.currency, lines);
        }
        apply_patch!(patch => after { contact_id, valid_until, notes });
        let mut tx = self.crm.tx(p);
        links.guard(&mut tx);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    async fn decide(&self, p: &Principal, id: Id<Quote>, to: QuoteStatus, version: Option<u64>) -> Result<Quote> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(to)?;
        let mut tx = self.crm.tx(p);
        match to {
            QuoteStatus::Sent => after.sent_at = Some(tx.now()),
            _ => after.decided_at = Some(tx.now()),
        }
        tx.update_as(to.as_str(), &before, &mut after)?;
        tx.event(&after, &QuoteEvent::of(&after))?;
        tx.commit().await?;
        Ok(after)
    }

    /// Sends a draft to the customer: it gets the next quote number of the tenant's
    /// year (`QUO-2026-000001`, gapless: the counter moves in the same atomic write; a
    /// sent quote is never deleted). Concurrent sends retry until each has its own number.
    pub async fn send(&self, p: &Principal, id: Id<Quote>, version: Option<u64>) -> Result<Quote> {
        retry_on_conflict(&[EntityKind::Tenant], || async {
            let before = self.crm.load_for(p, id, Action::Update, version).await?;
            let mut after = before.clone();
            after.status = before.status.transition(QuoteStatus::Sent)?;
            let next = NextNumber::read(self.crm, p.tenant_id(), Series::Quote).await?;
            let mut tx = self.crm.tx(p);
            after.number = Some(next.take(&mut tx));
            after.sent_at = Some(tx.now());
            tx.update_as("sent", &before, &mut after)?;
            tx.event(&after, &QuoteEvent::of(&after))?;
            tx.commit().await?;
            Ok(after)
        })
        .await
    }

    /// Records that the customer declined.
    pub async fn reject(&self, p: &Principal, id: Id<Quote>, version: Option<u64>) -> Result<Quote> {
        self.decide(p, id, QuoteStatus::Rejected, version).await
    }

    /// Marks a sent quote as lapsed.
    pub async fn expire(&self, p: &Principal, id: Id<Quote>, version: Option<u64>) -> Result<Quote> {
        self.decide(p, id, QuoteStatus::Expired, version).await
    }

    /// Expires each of `tenant`'s sent quotes whose `valid_until` is before the
    /// tenant's today, each with its `quote.expired` event. For the scheduler; a quote
    /// decided meanwhile keeps its decision. Says how many expired.
    pub async fn expire_lapsed(&self, tenant: TenantId) -> Result<u64> {
        let system = Principal::system(tenant);
        let today = self.crm.today(tenant).await?;
        let filters =
            Filters::default().any_of("status", &[QuoteStatus::Sent]).range("valid_until", None, Some(today)).build();
        let mut page = PageRequest::first(JOB_PAGE);
        let mut expired = 0;
        loop {
            let found: Page<Quote> = self.crm.list(&system, filters.clone(), &page).await?;
            for quote in &found.items {
                let outcome = self.expire(&system, quote.id(), Some(quote.meta.version)).await;
                expired += u64::from(unless_moved(outcome)?.is_some());
            }
            match found.next {
                Some(next) => page = page.after(&next),
                None => return Ok(expired),
            }
        }
    }

    /// Accepts a sent quote that is still valid and creates its draft invoice, in one
    /// atomic write. Returns both.
    pub async fn accept(&self, p: &Principal, id: Id<Quote>, version: Option<u64>) -> Result<(Quote, Invoice)> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(QuoteStatus::Accepted)?;
        if before.valid_until < self.crm.today(p.tenant_id()).await? {
            return Err(CrmError::invalid("valid_until", format!("the quote expired on {}", before.valid_until)));
        }
        self.crm.authorize(p, Resource::Invoices, Action::Create)?;
        let invoice = draft_invoice(self.crm, &before);
        after.invoice_id = Some(invoice.id());
        let mut tx = self.crm.tx(p);
        after.decided_at = Some(tx.now());
        tx.insert(&invoice)?;
        tx.update_as("accepted", &before, &mut after)?;
        tx.event(&after, &QuoteEvent::of(&after))?;
        tx.commit().await?;
        Ok((after, invoice))
    }

    /// Deletes a draft quote.
    pub async fn delete(&self, p: &Principal, id: Id<Quote>, version: Option<u64>) -> Result<()> {
        let quote = self.crm.load_for(p, id, Action::Delete, version).await?;
        if quote.status != QuoteStatus::Draft {
            return Err(CrmError::invalid("status", "only a draft quote can be deleted"));
        }
        let mut tx = self.crm.tx(p);
        tx.delete(&quote)?;
        tx.commit().await
    }
}

/// A draft invoice for an accepted quote: same company, contact, owner and lines.
fn draft_invoice(crm: &Crm, quote: &Quote) -> Invoice {
    Invoice {
        meta: crm.new_meta(quote.meta.tenant_id),
        number: None,
        company_id: quote.company_id,
        contact_id: quote.contact_id,
        quote_id: Some(quote.meta.id),
        owner_id: quote.owner_id,
        currency: quote.currency,
        lines: quote.lines.clone(),
        totals: quote.totals,
        amount_paid: Decimal::ZERO,
        amount_credited: Decimal::ZERO,
        balance_due: quote.totals.total,
        status: InvoiceStatus::Draft,
        issue_date: None,
        due_date: None,
        payment_terms_days: DEFAULT_PAYMENT_TERMS_DAYS,
        notes: quote.notes.clone(),
        overdue_notified_at: None,
    }
}

/// `quote.sent`, `quote.accepted`, `quote.rejected`, `quote.expired`: the quote after
/// the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QuoteEvent {
    /// The quote number (from sending on).
    pub number: Option<String>,
    /// The status after the change; the event's action.
    pub status: QuoteStatus,
    /// The total, tax included.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub total: Decimal,
    /// The currency of `total`.
    pub currency: Currency,
    /// The draft invoice its acceptance created.
    pub invoice_id: Option<Uuid>,
}

impl QuoteEvent {
    /// The event of `quote`'s move to its current status.
    pub(crate) fn of(quote: &Quote) -> Self {
        QuoteEvent {
            number: quote.number.clone(),
            status: quote.status,
            total: quote.totals.total,
            currency: quote.currency,
            invoice_id: quote.invoice_id.map(|id| id.uuid()),
        }
    }
}

impl EventPayload for QuoteEvent {
    fn action(&self) -> &'static str {
        self.status.as_str()
    }
}
