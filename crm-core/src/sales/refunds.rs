//! Refunds: money paid back against one payment, fully or in parts.
//!
//! A refund is a record of its own (its id, date and amount, as accountants expect),
//! never a negative payment. Recording one raises the payment's `amount_refunded` and
//! lowers its invoice's `amount_paid` in the same atomic write, both versioned, so
//! concurrent refunds never return more than was paid; the invoice's status moves back
//! as voiding a payment moves it (`paid` → `partially_paid` → `issued`). Refunds are
//! payments' business: they are read and written under the `payments` permissions.

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
    error::{Result, Validator},
    events::EventPayload,
    fields::indexed_fields,
    id::{Id, Meta},
    money::{Currency, validate_amount},
    sales::invoices::Invoice,
    sales::payments::{Payment, PaymentStatus},
    storage::{EntityKind, Page, Reference},
};

/// The most characters of a refund's reason.
pub const REASON_MAX: usize = 2000;

/// Money paid back against one payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Refund {
    /// Common metadata.
    pub meta: Meta,
    /// The payment it returns (part of).
    pub payment_id: Id<Payment>,
    /// The payment's invoice.
    pub invoice_id: Id<Invoice>,
    /// The invoice's company (kept here so clients can list their refunds).
    pub company_id: Id<Company>,
    /// The amount paid back, in the payment's currency.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// The payment's currency.
    pub currency: Currency,
    /// When it was paid back.
    pub refunded_on: NaiveDate,
    /// Why, or the bank's reference.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = REASON_MAX)))]
    pub reason: Option<String>,
    /// Who recorded it.
    pub recorded_by: Id<User>,
}

impl Entity for Refund {
    const KIND: EntityKind = EntityKind::Refund;
    const RESOURCE: Resource = Resource::Payments;
    const OWNER_FIELD: Option<&'static str> = Some("recorded_by");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        payment_id: Uuid [eq] = |e| e.payment_id,
        invoice_id: Uuid [eq] = |e| e.invoice_id,
        company_id: Uuid [eq] = |e| e.company_id,
        amount: Decimal [sort] = |e| e.amount,
        currency: Text [] = |e| e.currency.as_str(),
        refunded_on: Date [sort, range(refunded_from, refunded_to)] = |e| e.refunded_on,
        recorded_by: Uuid [] = |e| e.recorded_by,
    }

    fn references(&self) -> Vec<Reference> {
        vec![
            reference("payment_id", self.payment_id),
            reference("invoice_id", self.invoice_id),
            reference("recorded_by", self.recorded_by),
        ]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.recorded_by.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        Some(self.company_id.uuid())
    }
}

/// Input to refund (part of) a payment.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRefund {
    /// The payment (completed).
    pub payment_id: Id<Payment>,
    /// The amount: positive, exact in the payment's currency, at most what is left of
    /// the payment after earlier refunds.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// When it was paid back; default today; not before the payment, not in the future.
    pub refunded_on: Option<NaiveDate>,
    /// Why, or the bank's reference.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = REASON_MAX)))]
    pub reason: Option<String>,
}

/// Filters for listing refunds.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefundFilter {
    /// Only this payment's.
    pub payment_id: Option<Id<Payment>>,
    /// Only this invoice's.
    pub invoice_id: Option<Id<Invoice>>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Refunded on or after.
    pub refunded_from: Option<NaiveDate>,
    /// Refunded before.
    pub refunded_to: Option<NaiveDate>,
}

/// The refunds service.
#[derive(Clone, Copy, Debug)]
pub struct Refunds<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The refunds service.
    pub fn refunds(&self) -> Refunds<'_> {
        Refunds { crm: self }
    }
}

impl Refunds<'_> {
    fn validate(&self, input: &NewRefund, payment: &Payment, refunded_on: NaiveDate, today: NaiveDate) -> Result<()> {
        let mut v = Validator::new();
        v.check(
            payment.status == PaymentStatus::Completed,
            "payment_id",
            format!("the payment is {}: nothing to refund", payment.status),
        );
        validate_amount(&mut v, "amount", input.amount, payment.currency);
        let left = payment.amount - payment.amount_refunded;
        v.check(input.amount <= left, "amount", format!("exceeds the {left} {} left of the payment", payment.currency));
        v.check(refunded_on >= payment.paid_on, "refunded_on", "must not be before the payment");
        v.check(refunded_on <= today, "refunded_on", "must not be in the future");
        v.opt_text("reason", input.reason.as_deref(), REASON_MAX);
        v.finish()
    }

    /// Records a refund of (part of) a completed payment, for a principal that may
    /// update the payment and its invoice: lowers the invoice's amount paid and moves
    /// its status back, in one atomic write; emits `refund.recorded`. Concurrent
    /// refunds (and payments) are decided one after the other, on fresh amounts.
    pub async fn record(&self, p: &Principal, input: NewRefund) -> Result<Refund> {
        self.crm.authorize(p, Resource::Payments, Action::Create)?;
        retry_on_conflict(&[EntityKind::Payment, EntityKind::Invoice], || async {
            let payment: Payment = self.crm.load_for(p, input.payment_id, Action::Update, None).await?;
            let invoice: Invoice = self.crm.load_for(p, payment.invoice_id, Action::Update, None).await?;
            let today = self.crm.today(p.tenant_id()).await?;
            let refunded_on = input.refunded_on.unwrap_or(today);
            self.validate(&input, &payment, refunded_on, today)?;
            let refund = Refund {
                meta: self.crm.new_meta(p.tenant_id()),
                payment_id: payment.id(),
                invoice_id: payment.invoice_id,
                company_id: payment.company_id,
                amount: input.amount,
                currency: payment.currency,
                refunded_on,
                reason: input.reason.clone(),
                recorded_by: p.user_id(),
            };
            let mut refunded = payment.clone();
            refunded.amount_refunded += input.amount;
            let mut settled = invoice.clone();
            settled.settle(invoice.amount_paid - input.amount)?;
            let mut tx = self.crm.tx(p);
            tx.insert(&refund)?;
            tx.update_as("refunded", &payment, &mut refunded)?;
            tx.update_as("payment_refunded", &invoice, &mut settled)?;
            tx.event(&refund, &RefundRecorded::of(&refund))?;
            tx.commit().await?;
            Ok(refund)
        })
        .await
    }

    /// One refund.
    pub async fn get(&self, p: &Principal, id: Id<Refund>) -> Result<Refund> {
        self.crm.read(p, id).await
    }

    /// A page of refunds.
    pub async fn list(&self, p: &Principal, filter: &RefundFilter, page: &PageRequest) -> Result<Page<Refund>> {
        let filters = Filters::default()
            .eq("payment_id", filter.payment_id)
            .eq("invoice_id", filter.invoice_id)
            .eq("company_id", filter.company_id)
            .range("refunded_on", filter.refunded_from, filter.refunded_to)
            .build();
        self.crm.list(p, filters, page).await
    }
}

/// `refund.recorded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RefundRecorded {
    /// The payment refunded.
    pub payment_id: Uuid,
    /// The invoice of that payment.
    pub invoice_id: Uuid,
    /// The amount refunded.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// The currency of `amount`.
    pub currency: Currency,
}

impl RefundRecorded {
    /// The event of a new refund.
    pub(crate) fn of(refund: &Refund) -> Self {
        RefundRecorded {
            payment_id: refund.payment_id.uuid(),
            invoice_id: refund.invoice_id.uuid(),
            amount: refund.amount,
            currency: refund.currency,
        }
    }
}

impl EventPayload for RefundRecorded {
    fn action(&self) -> &'static str {
        "recorded"
    }
}
