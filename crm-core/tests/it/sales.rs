//! Quotes, invoices, payments and delivery notes, including races on real threads.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use crm_core::{
    CrmError, PageRequest, Role,
    access::users::UserPatch,
    customers::companies::{Company, NewCompany},
    entity::Entity,
    money::Currency,
    sales::delivery_notes::{DeliveryLine, NewDeliveryNote},
    sales::invoices::{Invoice, InvoiceFilter, InvoicePatch, InvoiceStatus, NewInvoice},
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    sales::quotes::{NewQuote, QuotePatch, QuoteStatus},
    storage::EntityKind,
};
use rust_decimal_macros::dec;

use crate::support::{World, world};

async fn company(w: &World, name: &str) -> Company {
    w.crm.companies().create(&w.admin, NewCompany { name: name.into(), ..NewCompany::default() }).await.unwrap()
}

fn invoice_input(company: &Company, price: rust_decimal::Decimal) -> NewInvoice {
    NewInvoice {
        company_id: company.id(),
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Work", dec!(1), price)],
        payment_terms_days: Some(10),
        notes: None,
    }
}

async fn issued(w: &World, company: &Company, price: rust_decimal::Decimal) -> Invoice {
    let draft = w.crm.invoices().create(&w.manager, invoice_input(company, price)).await.unwrap();
    w.crm.invoices().issue(&w.manager, draft.id(), None).await.unwrap()
}

#[tokio::test]
async fn quotes_follow_their_state_machine_and_expire() {
    let w = world().await;
    let customer = company(&w, "Customer").await;
    let new_quote = NewQuote {
        company_id: customer.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", dec!(3), dec!(0.125))],
        valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(7),
        notes: None,
    };
    let quote = w.crm.quotes().create(&w.user, new_quote.clone()).await.unwrap();
    // 3 × 0.125 = 0.375 → 0.38, half away from zero.
    assert_eq!(quote.totals.total, dec!(0.38));
    let err = w.crm.quotes().accept(&w.user, quote.id(), None).await.unwrap_err();
    assert!(
        matches!(&err, CrmError::InvalidTransition { kind: EntityKind::Quote, from, to } if from == "draft" && to == "accepted"),
        "{err:?}"
    );
    let patch = QuotePatch { lines: Some(vec![LineInput::new("Widget", dec!(4), dec!(10))]), ..QuotePatch::default() };
    assert_eq!(w.crm.quotes().update(&w.user, quote.id(), patch).await.unwrap().totals.total, dec!(40.00));
    let sent = w.crm.quotes().send(&w.user, quote.id(), None).await.unwrap();
    let err = w.crm.quotes().update(&w.user, sent.id(), QuotePatch::default()).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "status"));
    w.clock.set(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap());
    let err = w.crm.quotes().accept(&w.user, sent.id(), None).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "valid_until"), "{err:?}");
    assert_eq!(w.crm.quotes().expire(&w.user, sent.id(), None).await.unwrap().status, QuoteStatus::Expired);
    let err = w.crm.quotes().create(&w.user, new_quote).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "valid_until"), "valid_until in the past");
}

#[tokio::test]
async fn invoice_numbers_restart_each_year_and_drafts_change_only_as_drafts() {
    let w = world().await;
    let customer = company(&w, "Yearly").await;
    let a = issued(&w, &customer, dec!(10)).await;
    let b = issued(&w, &customer, dec!(10)).await;
    assert_eq!((a.number.as_deref(), b.number.as_deref()), (Some("INV-2026-000001"), Some("INV-2026-000002")));
    w.clock.set(Utc.with_ymd_and_hms(2027, 1, 2, 9, 0, 0).unwrap());
    let c = issued(&w, &customer, dec!(10)).await;
    assert_eq!(c.number.as_deref(), Some("INV-2027-000001"));
    let err = w
        .crm
        .invoices()
        .update(&w.manager, a.id(), InvoicePatch { notes: Some(Some("late".into())), ..InvoicePatch::default() })
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "status"));
    let err = w.crm.invoices().delete(&w.manager, a.id(), None).await.unwrap_err();
    assert!(
        matches!(&err, CrmError::Validation(v) if v.fields[0].field == "status"),
        "issued invoices are cancelled, not deleted"
    );
    assert_eq!(w.crm.invoices().cancel(&w.manager, a.id(), None).await.unwrap().status, InvoiceStatus::Cancelled);
    let err = w
        .crm
        .payments()
        .record(
            &w.manager,
            NewPayment {
                invoice_id: a.id(),
                amount: dec!(1),
                method: PaymentMethod::Cash,
                paid_on: None,
                reference: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "invoice_id"), "{err:?}");
}

#[tokio::test]
async fn overdue_invoices_are_derived_from_the_due_date() {
    let w = world().await;
    let customer = company(&w, "Late payer").await;
    let invoice = issued(&w, &customer, dec!(100)).await;
    let overdue = InvoiceFilter { overdue: true, ..InvoiceFilter::default() };
    assert!(w.crm.invoices().list(&w.admin, &overdue, &PageRequest::default()).await.unwrap().items.is_empty());
    w.clock.set(w.crm.now() + Duration::days(11));
    let listed = w.crm.invoices().list(&w.admin, &overdue, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|i| i.id()).collect::<Vec<_>>(), vec![invoice.id()]);
    assert!(listed.items[0].is_overdue(w.crm.today(w.admin.tenant_id()).await.unwrap()));
}

#[tokio::test]
async fn clients_see_only_their_company_documents_and_users_edit_only_their_own() {
    let w = world().await;
    let theirs = issued(&w, &w.client_company, dec!(50)).await;
    let other = issued(&w, &company(&w, "Someone else").await, dec!(50)).await;
    assert_eq!(w.crm.invoices().get(&w.client, theirs.id()).await.unwrap().id(), theirs.id());
    assert!(matches!(w.crm.invoices().get(&w.client, other.id()).await, Err(CrmError::NotFound { .. })));
    let listed = w.crm.invoices().list(&w.client, &InvoiceFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|i| i.id()).collect::<Vec<_>>(), vec![theirs.id()]);
    let pay = NewPayment {
        invoice_id: theirs.id(),
        amount: dec!(5),
        method: PaymentMethod::Card,
        paid_on: None,
        reference: None,
    };
    assert!(matches!(w.crm.payments().record(&w.client, pay.clone()).await, Err(CrmError::Forbidden(_))));
    let payment = w.crm.payments().record(&w.manager, pay).await.unwrap();
    assert_eq!(w.crm.payments().get(&w.client, payment.id()).await.unwrap().amount, dec!(5));
    let draft = w.crm.invoices().create(&w.other_user, invoice_input(&w.client_company, dec!(1))).await.unwrap();
    let err = w.crm.invoices().update(&w.user, draft.id(), InvoicePatch::default()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
}

/// Races on real threads: 64 tasks issuing 64 invoices and 64 tasks paying one invoice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_on_threads_keep_numbers_gapless_and_balances_exact() {
    let w = Arc::new(world().await);
    let customer = company(&w, "Racer").await;
    let mut drafts = Vec::new();
    for _ in 0..64 {
        drafts.push(w.crm.invoices().create(&w.manager, invoice_input(&customer, dec!(10))).await.unwrap());
    }
    let tasks: Vec<_> = drafts
        .into_iter()
        .map(|d| {
            let w = w.clone();
            tokio::spawn(async move { w.crm.invoices().issue(&w.manager, d.id(), None).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap().unwrap().number.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=64).map(|n| format!("INV-2026-{n:06}")).collect::<Vec<_>>());

    let target = issued(&w, &customer, dec!(500)).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let w = w.clone();
            let input = NewPayment {
                invoice_id: target.id(),
                amount: dec!(10.00),
                method: PaymentMethod::Card,
                paid_on: None,
                reference: None,
            };
            tokio::spawn(async move { w.crm.payments().record(&w.manager, input).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CrmError::Validation(_)) => {}
            Err(e) => panic!("unexpected error under contention: {e:?}"),
        }
    }
    let paid = w.crm.invoices().get(&w.admin, target.id()).await.unwrap();
    assert_eq!((accepted, paid.amount_paid, paid.status), (50, dec!(500.00), InvoiceStatus::Paid));
}

fn payment_of(invoice: &Invoice, amount: rust_decimal::Decimal) -> NewPayment {
    NewPayment { invoice_id: invoice.id(), amount, method: PaymentMethod::Card, paid_on: None, reference: None }
}

fn delivery_of(invoice: &Invoice) -> NewDeliveryNote {
    NewDeliveryNote {
        invoice_id: invoice.id(),
        lines: vec![DeliveryLine { line_index: 0, quantity: dec!(1) }],
        notes: None,
    }
}

#[tokio::test]
async fn payments_and_deliveries_need_the_right_to_update_their_invoice() {
    let w = world().await;
    let customer = company(&w, "Guarded").await;
    // A user reads every invoice and creates payments and notes, but updates only its own invoices.
    let managers = issued(&w, &customer, dec!(100)).await;
    let err = w.crm.payments().record(&w.user, payment_of(&managers, dec!(10))).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let err = w.crm.delivery_notes().create(&w.user, delivery_of(&managers)).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let untouched = w.crm.invoices().get(&w.admin, managers.id()).await.unwrap();
    assert_eq!((untouched.amount_paid, untouched.lines[0].quantity_delivered), (dec!(0), dec!(0)));
    let draft = w.crm.invoices().create(&w.user, invoice_input(&customer, dec!(100))).await.unwrap();
    let own = w.crm.invoices().issue(&w.user, draft.id(), None).await.unwrap();
    w.crm.payments().record(&w.user, payment_of(&own, dec!(10))).await.unwrap();
    w.crm.delivery_notes().create(&w.user, delivery_of(&own)).await.unwrap();
    // Voiding a payment and deleting a note rewrite the invoice too: a manager records
    // both on an admin's invoice, is then made a user, and may no longer undo them.
    let draft = w.crm.invoices().create(&w.admin, invoice_input(&customer, dec!(100))).await.unwrap();
    let admins = w.crm.invoices().issue(&w.admin, draft.id(), None).await.unwrap();
    let payment = w.crm.payments().record(&w.manager, payment_of(&admins, dec!(10))).await.unwrap();
    let note = w.crm.delivery_notes().create(&w.manager, delivery_of(&admins)).await.unwrap();
    let demote = UserPatch { role: Some(Role::User), ..UserPatch::default() };
    w.crm.users().update(&w.admin, w.manager.user_id(), demote).await.unwrap();
    let demoted = w.crm.users().principal(w.admin.tenant_id(), w.manager.user_id()).await.unwrap();
    let err = w.crm.payments().void(&demoted, payment.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let err = w.crm.delivery_notes().delete(&demoted, note.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let untouched = w.crm.invoices().get(&w.admin, admins.id()).await.unwrap();
    assert_eq!((untouched.amount_paid, untouched.lines[0].quantity_delivered), (dec!(10), dec!(1)));
}
