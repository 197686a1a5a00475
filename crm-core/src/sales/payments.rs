//! Payments against invoices. Recording or voiding one settles its invoice in the same
//! atomic write; a payment never takes an invoice past its total.

use chrono::{DateTime, NaiveDate, Utc};
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
    events::Named,
    fields::indexed_fields,
    id::{Id, Meta},
    money::{Currency, validate_amount},
    sales::invoices::Invoice,
    sales::invoices::InvoiceEvent,
    state::{StateMachine, status_enum, text_enum},
    storage::{EntityKind, Page, Reference},
};

text_enum! {
    /// How a payment was made.
    PaymentMethod {
        /// Bank transfer.
        BankTransfer = "bank_transfer",
        /// Card.
        Card = "card",
        /// Cash.
        Cash = "cash",
        /// Check.
        Check = "check",
        /// Anything else.
        Other = "other",
    }
}

status_enum! {
    /// A payment counts until it is voided.
    PaymentStatus for Payment {
        /// Counts towards its invoice.
        Completed = "completed" => [Voided],
        /// Reversed. Final.
        Voided = "voided" => [],
    }
}

/// Money received against one invoice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Payment {
    /// Common metadata.
    pub meta: Meta,
    /// The invoice it pays.
    pub invoice_id: Id<Invoice>,
    /// The invoice's company (kept here so clients can list their payments).
    pub company_id: Id<Company>,
    /// The amount, in the invoice's currency.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// Σ of its refunds; at most `amount`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount_refunded: Decimal,
    /// The invoice's currency.
    pub currency: Currency,
    /// How it was paid.
    pub method: PaymentMethod,
    /// When it was paid.
    pub paid_on: NaiveDate,
    /// Bank or card reference.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub reference: Option<String>,
    /// Completed or voided.
    pub status: PaymentStatus,
    /// Who recorded it.
    pub recorded_by: Id<User>,
    /// When it was voided.
    pub voided_at: Option<DateTime<Utc>>,
}

impl Entity for Payment {
    const KIND: EntityKind = EntityKind::Payment;
    const RESOURCE: Resource = Resource::Payments;
    const OWNER_FIELD: Option<&'static str> = Some("recorded_by");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        invoice_id: Uuid [eq] = |e| e.invoice_id,
        company_id: Uuid [eq] = |e| e.company_id,
        amount: Decimal [sort] = |e| e.amount,
        currency: Text [] = |e| e.currency.as_str(),
        method: Text [] = |e| e.method,
        paid_on: Date [sort, range(paid_from, paid_to)] = |e| e.paid_on,
        status: Text [eq] = |e| e.status,
        recorded_by: Uuid [] = |e| e.recorded_by,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("invoice_id", self.invoice_id), reference("recorded_by", self.recorded_by)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.recorded_by.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        Some(self.company_id.uuid())
    }
}

/// Input to record a payment.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// The invoice it pays (issued or partially paid).
    pub invoice_id: Id<Invoice>,
    /// The amount: positive, exact in the invoice's currency, at most its balance.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// How it was paid.
    pub method: PaymentMethod,
    /// When it was paid; default today.
    pub paid_on: Option<NaiveDate>,
    /// Bank or card reference.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub reference: Option<String>,
}

/// Filters for listing payments.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentFilter {
    /// Only this invoice's.
    pub invoice_id: Option<Id<Invoice>>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this status.
    pub status: Option<PaymentStatus>,
    /// Paid on or after.
    pub paid_from: Option<NaiveDate>,
    /// Paid before.
    pub paid_to: Option<NaiveDate>,
}

/// The payments service.
#[derive(Clone, Copy, Debug)]
pub struct Payments<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The payments service.
    pub fn payments(&self) -> Payments<'_> {
        Payments { crm: self }
    }
}

/// A payment is dated on a day the invoice existed as issued, and not after today
/// (the tenant's): a date outside that range is a typing error, not a payment.
fn validate_paid_on(v: &mut Validator, paid_on: NaiveDate, invoice: &Invoice, today: NaiveDate) {
    v.check(paid_on <= today, "paid_on", format!("must not be after today ({today})"));
    if let Some(issued) = invoice.issue_date {
        v.check(paid_on >= issued, "paid_on", format!("must not be before the invoice's issue date ({issued})"));
    }
}

impl Payments<'_> {
    /// Records a payment and settles its invoice in one atomic write, for a principal
    /// that may update that invoice; emits
    /// `payment.recorded`, and `invoice.paid` when the balance reaches zero. Concurrent
    /// payments on one invoice are decided one after the other, on fresh balances.
    pub async fn record(&self, p: &Principal, input: NewPayment) -> Result<Payment> {
        self.crm.authorize(p, Resource::Payments, Action::Create)?;
        retry_on_conflict(&[EntityKind::Invoice], || async {
            // A payment rewrites its invoice (amount paid, balance, status).
            let before: Invoice = self.crm.load_for(p, input.invoice_id, Action::Update, None).await?;
            let mut v = Validator::new();
            v.check(
                before.status.is_open(),
                "invoice_id",
                format!("the invoice is {}, not open for payment", before.status),
            );
            validate_amount(&mut v, "amount", input.amount, before.currency);
            v.check(
                input.amount <= before.balance_due,
                "amount",
                format!("exceeds the balance due of {} {}", before.balance_due, before.currency),
            );
            v.opt_text("reference", input.reference.as_deref(), Validator::NAME_MAX);
            let today = self.crm.today(p.tenant_id()).await?;
            let paid_on = input.paid_on.unwrap_or(today);
            validate_paid_on(&mut v, paid_on, &before, today);
            v.finish()?;
            let payment = Payment {
                meta: self.crm.new_meta(p.tenant_id()),
                invoice_id: input.invoice_id,
                company_id: before.company_id,
                amount: input.amount,
                amount_refunded: Decimal::ZERO,
                currency: before.currency,
                method: input.method,
                paid_on,
                reference: input.reference.clone(),
                status: PaymentStatus::Completed,
                recorded_by: p.user_id(),
                voided_at: None,
            };
            let mut after = before.clone();
            after.settle(before.amount_paid + payment.amount)?;
            let mut tx = self.crm.tx(p);
            tx.insert(&payment)?;
            tx.update_as("payment_recorded", &before, &mut after)?;
            tx.event(&payment, &PaymentEvent::named("recorded", &payment))?;
            if let Some(closed) = InvoiceEvent::closed(&before, &after) {
                tx.event(&after, &closed)?;
            }
            tx.commit().await?;
            Ok(payment)
        })
        .await
    }

    /// One payment.
    pub async fn get(&self, p: &Principal, id: Id<Payment>) -> Result<Payment> {
        self.crm.read(p, id).await
    }

    /// A page of payments.
    pub async fn list(&self, p: &Principal, filter: &PaymentFilter, page: &PageRequest) -> Result<Page<Payment>> {
        let filters = Filters::default()
            .eq("invoice_id", filter.invoice_id)
            .eq("company_id", filter.company_id)
            .eq("status", filter.status)
            .range("paid_on", filter.paid_from, filter.paid_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Voids a payment and reverses it on its invoice, in one atomic write, for a
    /// principal that may update both. A payment with refunds is not voided (its
    /// refunds happened): refund the rest instead.
    pub async fn void(&self, p: &Principal, id: Id<Payment>, version: Option<u64>) -> Result<Payment> {
        let first = self.crm.load_for(p, id, Action::Update, version).await?;
        retry_on_conflict(&[EntityKind::Invoice], || async {
            let before: Payment = self.crm.fetch(p.tenant_id(), id).await?;
            if before.meta.version != first.meta.version {
                return Err(CrmError::Conflict { kind: EntityKind::Payment, id: id.uuid() });
            }
            if !before.amount_refunded.is_zero() {
                return Err(CrmError::invalid(
                    "amount_refunded",
                    format!(
                        "{} {} of this payment is refunded: refund the rest instead",
                        before.amount_refunded, before.currency
                    ),
                ));
            }
            let mut after = before.clone();
            after.status = before.status.transition(PaymentStatus::Voided)?;
            let invoice: Invoice = self.crm.load_for(p, before.invoice_id, Action::Update, None).await?;
            let mut settled = invoice.clone();
            settled.settle(invoice.amount_paid - before.amount)?;
            let mut tx = self.crm.tx(p);
            after.voided_at = Some(tx.now());
            tx.update_as("voided", &before, &mut after)?;
            tx.update_as("payment_voided", &invoice, &mut settled)?;
            tx.event(&after, &PaymentEvent::named("voided", &after))?;
            tx.commit().await?;
            Ok(after)
        })
        .await
    }
}

/// `payment.recorded`, `payment.voided`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PaymentEvent {
    /// The invoice it pays.
    pub invoice_id: Uuid,
    /// The amount paid.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// The currency of `amount`.
    pub currency: Currency,
    /// `completed` or `voided`.
    pub status: PaymentStatus,
}

impl PaymentEvent {
    /// `payment.<action>` with `payment`'s state.
    pub(crate) fn named(action: &'static str, payment: &Payment) -> Named<Self> {
        Named::new(
            action,
            PaymentEvent {
                invoice_id: payment.invoice_id.uuid(),
                amount: payment.amount,
                currency: payment.currency,
                status: payment.status,
            },
        )
    }
}
