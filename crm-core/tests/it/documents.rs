//! Document numbers of quotes and delivery notes, and corrections: credit notes,
//! refunds and zero-total invoices.

use chrono::{Duration, TimeZone, Utc};
use crm_core::{
    CrmError, PageRequest,
    conformance::World,
    customers::companies::{Company, NewCompany},
    entity::Entity,
    money::Currency,
    sales::credit_notes::{CreditLineInput, CreditNoteFilter, NewCreditNote},
    sales::delivery_notes::{DeliveryLine, DeliveryNote, NewDeliveryNote},
    sales::invoices::{Invoice, InvoiceStatus, NewInvoice},
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    sales::quotes::{NewQuote, Quote},
    sales::refunds::{NewRefund, RefundFilter},
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::support::world;

async fn company(w: &World, name: &str) -> Company {
    w.crm.companies().create(&w.admin, NewCompany { name: name.into(), ..NewCompany::default() }).await.unwrap()
}

async fn issued(w: &World, company: &Company, quantity: Decimal, price: Decimal) -> Invoice {
    let input = NewInvoice {
        company_id: company.id(),
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Work", quantity, price)],
        payment_terms_days: Some(10),
        notes: None,
    };
    let draft = w.crm.invoices().create(&w.manager, input).await.unwrap();
    w.crm.invoices().issue(&w.manager, draft.id(), None).await.unwrap()
}

async fn draft_quote(w: &World, company: &Company) -> Quote {
    let input = NewQuote {
        company_id: company.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", dec!(1), dec!(10))],
        valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(30),
        notes: None,
    };
    w.crm.quotes().create(&w.manager, input).await.unwrap()
}

async fn sent_quote_number(w: &World, company: &Company) -> String {
    let draft = draft_quote(w, company).await;
    w.crm.quotes().send(&w.manager, draft.id(), None).await.unwrap().number.unwrap()
}

async fn pending_note(w: &World, invoice: &Invoice) -> DeliveryNote {
    let input = NewDeliveryNote {
        invoice_id: invoice.id(),
        lines: vec![DeliveryLine { line_index: 0, quantity: dec!(1) }],
        notes: None,
    };
    w.crm.delivery_notes().create(&w.manager, input).await.unwrap()
}

async fn shipped_note_number(w: &World, invoice: &Invoice) -> String {
    let note = pending_note(w, invoice).await;
    w.crm.delivery_notes().ship(&w.manager, note.id(), None).await.unwrap().number.unwrap()
}

#[tokio::test]
async fn quotes_are_numbered_when_sent_gaplessly_per_year_and_tenant() {
    let w = world().await;
    let customer = company(&w, "Quoted").await;
    let draft = draft_quote(&w, &customer).await;
    assert_eq!(draft.number, None, "a draft has no number yet");
    // A deleted draft never took a number: no gap.
    w.crm.quotes().delete(&w.manager, draft.id(), None).await.unwrap();
    assert_eq!(sent_quote_number(&w, &customer).await, "QUO-2026-000001");
    assert_eq!(sent_quote_number(&w, &customer).await, "QUO-2026-000002");
    // Invoices count on their own series.
    let invoice = issued(&w, &customer, dec!(1), dec!(10)).await;
    assert_eq!(invoice.number.as_deref(), Some("INV-2026-000001"));
    w.clock.set(Utc.with_ymd_and_hms(2027, 1, 1, 0, 30, 0).unwrap());
    assert_eq!(sent_quote_number(&w, &customer).await, "QUO-2027-000001");
    // A second tenant on the same storage starts its own series.
    let other = World::new(w.crm.storage().clone()).await;
    let theirs = company(&other, "Theirs").await;
    assert_eq!(sent_quote_number(&other, &theirs).await, "QUO-2026-000001");
}

#[tokio::test]
async fn delivery_notes_are_numbered_when_shipped_gaplessly_per_year_and_tenant() {
    let w = world().await;
    let customer = company(&w, "Delivered").await;
    let invoice = issued(&w, &customer, dec!(10), dec!(5)).await;
    let pending = pending_note(&w, &invoice).await;
    assert_eq!(pending.number, None, "a pending note has no number yet");
    // A deleted pending note never took a number: no gap.
    w.crm.delivery_notes().delete(&w.manager, pending.id(), None).await.unwrap();
    assert_eq!(shipped_note_number(&w, &invoice).await, "DN-2026-000001");
    assert_eq!(shipped_note_number(&w, &invoice).await, "DN-2026-000002");
    w.clock.set(Utc.with_ymd_and_hms(2027, 1, 1, 0, 30, 0).unwrap());
    assert_eq!(shipped_note_number(&w, &invoice).await, "DN-2027-000001");
    let other = World::new(w.crm.storage().clone()).await;
    let theirs = issued(&other, &company(&other, "Theirs").await, dec!(1), dec!(5)).await;
    assert_eq!(shipped_note_number(&other, &theirs).await, "DN-2026-000001");
}

#[tokio::test]
async fn a_zero_total_invoice_is_paid_when_issued() {
    let w = world().await;
    let customer = company(&w, "Free of charge").await;
    let free = issued(&w, &customer, dec!(1), dec!(0)).await;
    assert_eq!(
        (free.status, free.balance_due, free.number.as_deref()),
        (InvoiceStatus::Paid, dec!(0), Some("INV-2026-000001"))
    );
    let billed = issued(&w, &customer, dec!(1), dec!(10)).await;
    assert_eq!((billed.status, billed.balance_due), (InvoiceStatus::Issued, dec!(10.00)));
}

fn credit(invoice: &Invoice, line_index: usize, quantity: Option<Decimal>, amount: Option<Decimal>) -> NewCreditNote {
    NewCreditNote {
        invoice_id: invoice.id(),
        lines: vec![CreditLineInput { line_index, quantity, amount }],
        reason: None,
    }
}

fn field_of(err: &CrmError) -> &str {
    match err {
        CrmError::Validation(v) => &v.fields[0].field,
        other => panic!("not a validation error: {other:?}"),
    }
}

#[tokio::test]
async fn credit_notes_never_credit_more_than_was_invoiced_and_cancel_a_cleared_invoice() {
    let w = world().await;
    let customer = company(&w, "Credited").await;
    let invoice = issued(&w, &customer, dec!(10), dec!(5)).await;
    let notes = w.crm.credit_notes();
    // Two units returned: their share of the line, numbered in the credit-note series.
    let first = notes.create(&w.manager, credit(&invoice, 0, Some(dec!(2)), None)).await.unwrap();
    assert_eq!((first.number.as_str(), first.total, first.lines[0].quantity), ("CN-2026-000001", dec!(10.00), dec!(2)));
    // A price reduction: an amount, no units.
    let second = notes.create(&w.manager, credit(&invoice, 0, None, Some(dec!(5.00)))).await.unwrap();
    assert_eq!(second.number, "CN-2026-000002");
    let after = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(
        (after.amount_credited, after.balance_due, after.status, after.lines[0].quantity_credited),
        (dec!(15.00), dec!(35.00), InvoiceStatus::Issued, dec!(2))
    );
    let err = notes.create(&w.manager, credit(&invoice, 0, Some(dec!(9)), None)).await.unwrap_err();
    assert_eq!(field_of(&err), "lines[0].quantity", "8 units are left: {err:?}");
    let err = notes.create(&w.manager, credit(&invoice, 0, None, Some(dec!(35.01)))).await.unwrap_err();
    assert_eq!(field_of(&err), "lines[0].amount", "35.00 is left: {err:?}");
    let err = notes.create(&w.manager, credit(&invoice, 3, Some(dec!(1)), None)).await.unwrap_err();
    assert_eq!(field_of(&err), "lines[0].line_index");
    let err = notes.create(&w.manager, credit(&invoice, 0, None, None)).await.unwrap_err();
    assert_eq!(field_of(&err), "lines[0]");
    let err = notes.create(&w.manager, credit(&invoice, 0, None, Some(dec!(0.001)))).await.unwrap_err();
    assert_eq!(field_of(&err), "lines[0].amount");
    // The last units take what is left of the line, in the new year's series.
    w.clock.set(Utc.with_ymd_and_hms(2027, 1, 1, 0, 30, 0).unwrap());
    let last = notes.create(&w.manager, credit(&invoice, 0, Some(dec!(8)), None)).await.unwrap();
    assert_eq!((last.number.as_str(), last.total), ("CN-2027-000001", dec!(35.00)));
    let cleared = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(
        (cleared.status, cleared.balance_due, cleared.amount_paid),
        (InvoiceStatus::Cancelled, dec!(0), dec!(0))
    );
    let err = notes.create(&w.manager, credit(&invoice, 0, None, Some(dec!(1)))).await.unwrap_err();
    assert_eq!(field_of(&err), "invoice_id");
    let listed = notes
        .list(
            &w.manager,
            &CreditNoteFilter { invoice_id: Some(invoice.id()), ..Default::default() },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    assert_eq!(notes.get(&w.manager, last.id()).await.unwrap(), last);
}

#[tokio::test]
async fn payments_and_credit_notes_together_settle_an_invoice_and_refunds_reopen_it() {
    let w = world().await;
    let customer = company(&w, "Mixed").await;
    let invoice = issued(&w, &customer, dec!(1), dec!(100)).await;
    let pay = NewPayment {
        invoice_id: invoice.id(),
        amount: dec!(60),
        method: PaymentMethod::Card,
        paid_on: None,
        reference: None,
    };
    let payment = w.crm.payments().record(&w.manager, pay).await.unwrap();
    w.crm.credit_notes().create(&w.manager, credit(&invoice, 0, None, Some(dec!(40)))).await.unwrap();
    let settled = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!((settled.status, settled.balance_due), (InvoiceStatus::Paid, dec!(0)));
    // Nothing is due: a paid invoice is refunded before it is credited further.
    let err = w.crm.credit_notes().create(&w.manager, credit(&invoice, 0, None, Some(dec!(1)))).await.unwrap_err();
    assert_eq!(field_of(&err), "invoice_id");
    let refund = |amount| NewRefund { payment_id: payment.id(), amount, refunded_on: None, reason: None };
    let first = w.crm.refunds().record(&w.manager, refund(dec!(25))).await.unwrap();
    let partly = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(
        (partly.status, partly.amount_paid, partly.balance_due),
        (InvoiceStatus::PartiallyPaid, dec!(35), dec!(25))
    );
    let err = w.crm.refunds().record(&w.manager, refund(dec!(35.01))).await.unwrap_err();
    assert_eq!(field_of(&err), "amount", "35.00 of the payment is left: {err:?}");
    let err = w.crm.payments().void(&w.manager, payment.id(), None).await.unwrap_err();
    assert_eq!(field_of(&err), "amount_refunded", "a refunded payment is not voided");
    let future = NewRefund {
        refunded_on: Some(w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(1)),
        ..refund(dec!(1))
    };
    assert_eq!(field_of(&w.crm.refunds().record(&w.manager, future).await.unwrap_err()), "refunded_on");
    w.crm.refunds().record(&w.manager, refund(dec!(35))).await.unwrap();
    let reopened = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(
        (reopened.status, reopened.amount_paid, reopened.balance_due),
        (InvoiceStatus::Issued, dec!(0), dec!(60))
    );
    let repaid = w.crm.payments().get(&w.manager, payment.id()).await.unwrap();
    assert_eq!(repaid.amount_refunded, dec!(60));
    assert_eq!(field_of(&w.crm.refunds().record(&w.manager, refund(dec!(0.01))).await.unwrap_err()), "amount");
    let listed = w
        .crm
        .refunds()
        .list(
            &w.manager,
            &RefundFilter { payment_id: Some(payment.id()), ..Default::default() },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(w.crm.refunds().get(&w.manager, first.id()).await.unwrap(), first);
    // A client reads only its own company's refunds.
    assert!(matches!(w.crm.refunds().get(&w.client, first.id()).await, Err(CrmError::NotFound { .. })));
}

#[tokio::test]
async fn credit_notes_and_refunds_need_the_right_to_update_the_invoice() {
    let w = world().await;
    let customer = company(&w, "Guarded").await;
    let managers = issued(&w, &customer, dec!(1), dec!(100)).await;
    let pay = NewPayment {
        invoice_id: managers.id(),
        amount: dec!(10),
        method: PaymentMethod::Cash,
        paid_on: None,
        reference: None,
    };
    let payment = w.crm.payments().record(&w.manager, pay).await.unwrap();
    for who in [&w.user, &w.client] {
        let err = w.crm.credit_notes().create(who, credit(&managers, 0, None, Some(dec!(1)))).await.unwrap_err();
        assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
        let refund = NewRefund { payment_id: payment.id(), amount: dec!(1), refunded_on: None, reason: None };
        let err = w.crm.refunds().record(who, refund).await.unwrap_err();
        assert!(matches!(err, CrmError::Forbidden(_) | CrmError::NotFound { .. }), "{err:?}");
    }
    let untouched = w.crm.invoices().get(&w.admin, managers.id()).await.unwrap();
    assert_eq!((untouched.amount_paid, untouched.amount_credited), (dec!(10), dec!(0)));
    // Another tenant's invoice is not found.
    let other = World::new(w.crm.storage().clone()).await;
    let err =
        other.crm.credit_notes().create(&other.admin, credit(&managers, 0, None, Some(dec!(1)))).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { .. }), "{err:?}");
}

/// Races on real threads: 64 tasks crediting 10.00 each of a 500.00 invoice, then 64
/// tasks refunding 10.00 each of a 500.00 payment. Exactly 50 of each win.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_on_threads_never_credit_or_refund_past_the_limits() {
    let w = std::sync::Arc::new(world().await);
    let customer = company(&w, "Racer").await;
    let invoice = issued(&w, &customer, dec!(50), dec!(10)).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (w, input) = (w.clone(), credit(&invoice, 0, Some(dec!(1)), None));
            tokio::spawn(async move { w.crm.credit_notes().create(&w.manager, input).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(note) => numbers.push(note.number),
            Err(CrmError::Validation(_)) => {}
            Err(e) => panic!("unexpected error under contention: {e:?}"),
        }
    }
    numbers.sort();
    assert_eq!(numbers, (1..=50).map(|n| format!("CN-2026-{n:06}")).collect::<Vec<_>>());
    let credited = w.crm.invoices().get(&w.admin, invoice.id()).await.unwrap();
    assert_eq!((credited.amount_credited, credited.status), (dec!(500), InvoiceStatus::Cancelled));

    let paid = issued(&w, &customer, dec!(50), dec!(10)).await;
    let pay = NewPayment {
        invoice_id: paid.id(),
        amount: dec!(500),
        method: PaymentMethod::Card,
        paid_on: None,
        reference: None,
    };
    let payment = w.crm.payments().record(&w.manager, pay).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let w = w.clone();
            let input = NewRefund { payment_id: payment.id(), amount: dec!(10), refunded_on: None, reason: None };
            tokio::spawn(async move { w.crm.refunds().record(&w.manager, input).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CrmError::Validation(_)) => {}
            Err(e) => panic!("unexpected error under contention: {e:?}"),
        }
    }
    let reopened = w.crm.invoices().get(&w.admin, paid.id()).await.unwrap();
    assert_eq!((accepted, reopened.amount_paid, reopened.status), (50, dec!(0), InvoiceStatus::Issued));
}

#[tokio::test]
async fn revenue_by_month_is_net_of_refunds_in_the_month_they_are_paid_back() {
    let w = world().await;
    let customer = company(&w, "Refunded").await;
    let invoice = issued(&w, &customer, dec!(1), dec!(100)).await;
    let pay = NewPayment {
        invoice_id: invoice.id(),
        amount: dec!(30),
        method: PaymentMethod::Cash,
        paid_on: None,
        reference: None,
    };
    let march = w.crm.payments().record(&w.manager, pay).await.unwrap();
    w.clock.set(Utc.with_ymd_and_hms(2026, 4, 10, 12, 0, 0).unwrap());
    let refund = |amount, day| NewRefund {
        payment_id: march.id(),
        amount,
        refunded_on: Some(chrono::NaiveDate::from_ymd_opt(2026, 3, day).unwrap()),
        reason: None,
    };
    w.crm.refunds().record(&w.manager, refund(dec!(4), 31)).await.unwrap();
    let april = NewRefund { refunded_on: None, ..refund(dec!(5), 31) };
    w.crm.refunds().record(&w.manager, april).await.unwrap();
    let revenue = w
        .crm
        .reports()
        .revenue_by_month(
            &w.manager,
            w.crm.today(w.admin.tenant_id()).await.unwrap() - Duration::days(365),
            w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(1),
        )
        .await
        .unwrap();
    let month = |m| chrono::NaiveDate::from_ymd_opt(2026, m, 1).unwrap();
    assert_eq!(
        revenue.iter().map(|r| (r.month, r.amount, r.payments, r.refunded)).collect::<Vec<_>>(),
        vec![(month(3), dec!(26), 1, dec!(4)), (month(4), dec!(-5), 0, dec!(5))]
    );
}
