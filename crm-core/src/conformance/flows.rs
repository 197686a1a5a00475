//! Business flows end to end, and the numbering and payments races.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use chrono::Duration;
use futures::future::join_all;
use rust_decimal::Decimal;

use super::World;
use crate::{CrmError, PageRequest, customers::companies::NewCompany, entity::Entity, money::Currency};

/// An exact decimal from its text.
#[allow(unused_imports)]
use super::support::*;

/// Lead → contact, company and deal, atomically, through the services.
pub async fn flow_lead_conversion(s: Store) {
    use crate::customers::leads::{ConvertCompany, ConvertDeal, ConvertLead, LeadStatus, NewLead};
    let w = World::new(s.clone()).await;
    let lead = w
        .crm
        .leads()
        .create(
            &w.manager,
            NewLead {
                first_name: "Grace".into(),
                last_name: "Hopper".into(),
                email: Some("grace@globex.test".into()),
                phone: None,
                company_name: Some("Globex".into()),
                source: crate::customers::leads::LeadSource::Referral,
                score: Some(90),
                owner_id: Some(w.user.user_id()),
                notes: None,
            },
        )
        .await
        .unwrap();
    let lead = w.crm.leads().change_status(&w.user, lead.id(), LeadStatus::Qualified, Some(1)).await.unwrap();
    let input = ConvertLead {
        version: Some(lead.meta.version),
        company: ConvertCompany::New(None),
        deal: Some(ConvertDeal { title: "Globex rollout".into(), amount: amount("12000.00"), currency: Currency::EUR }),
    };
    let done = w.crm.leads().convert(&w.user, lead.id(), input).await.unwrap();
    let (company, deal) = (done.company.clone().unwrap(), done.deal.clone().unwrap());
    // Everything it created is stored, linked and owned by the lead's owner.
    assert_eq!(w.crm.companies().get(&w.user, company.id()).await.unwrap(), company);
    assert_eq!(w.crm.contacts().get(&w.user, done.contact.id()).await.unwrap(), done.contact);
    assert_eq!(w.crm.deals().get(&w.user, deal.id()).await.unwrap(), deal);
    assert_eq!(w.crm.leads().get(&w.user, lead.id()).await.unwrap(), done.lead);
    assert_eq!(done.contact.lead_id, Some(lead.meta.id));
    assert_eq!(
        (deal.owner_id, done.contact.owner_id, company.owner_id),
        (w.user.user_id(), w.user.user_id(), w.user.user_id())
    );
    let events = s.outbox_pending(10_000).await.unwrap();
    assert!(events.iter().any(|e| e.name == "lead.converted" && e.entity_id == lead.meta.id));
    // A stale version is refused and writes nothing.
    let again =
        w.crm.leads().create(&w.user, NewLead { company_name: Some("Initech".into()), ..lead_input() }).await.unwrap();
    let stale = ConvertLead { version: Some(7), company: ConvertCompany::New(None), deal: None };
    assert!(matches!(w.crm.leads().convert(&w.user, again.id(), stale).await, Err(CrmError::Conflict { .. })));
    let companies = w.crm.companies().list(&w.admin, &Default::default(), &PageRequest::default()).await.unwrap();
    assert!(!companies.items.iter().any(|c| c.name == "Initech"));
}

fn lead_input() -> crate::customers::leads::NewLead {
    crate::customers::leads::NewLead {
        first_name: "Ann".into(),
        last_name: "Other".into(),
        email: None,
        phone: None,
        company_name: None,
        source: crate::customers::leads::LeadSource::Website,
        score: None,
        owner_id: None,
        notes: None,
    }
}

/// Quote → accepted → invoice → issued → partial and final payments → paid.
pub async fn flow_quote_to_paid_invoice(s: Store) {
    use crate::{
        sales::invoices::InvoiceStatus,
        sales::lines::LineInput,
        sales::payments::{NewPayment, PaymentFilter, PaymentMethod},
        sales::quotes::{NewQuote, QuoteStatus},
    };
    let w = World::new(s.clone()).await;
    let customer = w
        .crm
        .companies()
        .create(&w.user, NewCompany { name: "Customer".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let lines = vec![
        LineInput { tax_rate: amount("20"), ..LineInput::new("Licence", amount("10"), amount("99.99")) },
        LineInput { discount_percent: amount("10"), ..LineInput::new("Setup", amount("1"), amount("500")) },
    ];
    let quote = w
        .crm
        .quotes()
        .create(
            &w.user,
            NewQuote {
                company_id: customer.id(),
                contact_id: None,
                deal_id: None,
                owner_id: None,
                currency: Currency::EUR,
                lines,
                valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(30),
                notes: None,
            },
        )
        .await
        .unwrap();
    // 999.90 + 199.98 tax, 500.00 − 50.00 discount: 1649.88.
    assert_eq!(quote.totals.total, amount("1649.88"));
    let sent = w.crm.quotes().send(&w.user, quote.id(), Some(1)).await.unwrap();
    let (accepted, invoice) = w.crm.quotes().accept(&w.user, sent.id(), Some(sent.meta.version)).await.unwrap();
    assert_eq!((accepted.status, accepted.invoice_id), (QuoteStatus::Accepted, Some(invoice.id())));
    assert_eq!(
        (invoice.status, invoice.totals, invoice.quote_id),
        (InvoiceStatus::Draft, quote.totals, Some(quote.meta.id))
    );
    assert_eq!(w.crm.invoices().get(&w.user, invoice.id()).await.unwrap(), invoice);

    let issued = w.crm.invoices().issue(&w.user, invoice.id(), Some(1)).await.unwrap();
    assert_eq!(issued.number.as_deref(), Some("INV-2026-000001"));
    assert_eq!(
        (issued.issue_date, issued.due_date),
        (
            Some(w.crm.today(w.admin.tenant_id()).await.unwrap()),
            Some(w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(30))
        )
    );
    let pay = |value: &str| NewPayment {
        invoice_id: invoice.id(),
        amount: amount(value),
        method: PaymentMethod::BankTransfer,
        paid_on: None,
        reference: None,
    };
    w.crm.payments().record(&w.user, pay("649.88")).await.unwrap();
    let partly = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!(
        (partly.status, partly.amount_paid, partly.balance_due),
        (InvoiceStatus::PartiallyPaid, amount("649.88"), amount("1000.00"))
    );
    let err = w.crm.payments().record(&w.user, pay("1000.01")).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "amount"), "overpayment: {err:?}");
    let last = w.crm.payments().record(&w.user, pay("1000.00")).await.unwrap();
    let paid = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!((paid.status, paid.balance_due), (InvoiceStatus::Paid, Decimal::ZERO));
    let events = s.outbox_pending(10_000).await.unwrap();
    for name in ["quote.accepted", "invoice.issued", "payment.recorded", "invoice.paid"] {
        assert!(events.iter().any(|e| e.name == name), "missing event {name}");
    }
    // Voiding the last payment reopens the balance, atomically.
    w.crm.payments().void(&w.manager, last.id(), None).await.unwrap();
    let reopened = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!((reopened.status, reopened.balance_due), (InvoiceStatus::PartiallyPaid, amount("1000.00")));
    let filter = PaymentFilter { invoice_id: Some(invoice.id()), ..Default::default() };
    assert_eq!(w.crm.payments().list(&w.user, &filter, &PageRequest::default()).await.unwrap().items.len(), 2);
    // A cancelled or paid invoice takes no payment; a paid-in-part one cannot be cancelled.
    let err = w.crm.invoices().cancel(&w.manager, invoice.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }), "{err:?}");
}

/// Invoice → delivery notes that never exceed the invoiced quantities.
pub async fn flow_invoice_to_delivery(s: Store) {
    use crate::sales::delivery_notes::{DeliveryLine, DeliveryStatus, NewDeliveryNote};
    let w = World::new(s).await;
    // The manager's invoice: booking and releasing deliveries rewrite it, so the
    // manager, who may update it, prepares the notes.
    let invoice = issued_invoice(&w, "10", "5").await;
    let note = |qty: &str| NewDeliveryNote {
        invoice_id: invoice.id(),
        lines: vec![DeliveryLine { line_index: 0, quantity: amount(qty) }],
        notes: None,
    };
    let first = w.crm.delivery_notes().create(&w.manager, note("6")).await.unwrap();
    let err = w.crm.delivery_notes().create(&w.manager, note("5")).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "lines[0].quantity"), "{err:?}");
    let second = w.crm.delivery_notes().create(&w.manager, note("4")).await.unwrap();
    let booked = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(booked.lines[0].quantity_delivered, amount("10"));
    let shipped = w.crm.delivery_notes().ship(&w.manager, first.id(), Some(1)).await.unwrap();
    assert_eq!(shipped.status, DeliveryStatus::Shipped);
    let delivered = w.crm.delivery_notes().deliver(&w.manager, first.id(), None).await.unwrap();
    assert!(delivered.delivered_at.is_some());
    let err = w.crm.delivery_notes().ship(&w.manager, first.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }));
    // Deleting the pending note gives its quantity back.
    w.crm.delivery_notes().delete(&w.manager, second.id(), None).await.unwrap();
    let released = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(released.lines[0].quantity_delivered, amount("6"));
    let err = w
        .crm
        .delivery_notes()
        .create(
            &w.manager,
            NewDeliveryNote { lines: vec![DeliveryLine { line_index: 3, quantity: amount("1") }], ..note("1") },
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "lines[0].line_index"), "{err:?}");
}

/// 64 concurrent issues get 64 distinct, consecutive numbers (joined futures: real
/// interleaving on adapters whose calls yield).
pub async fn invoice_numbers_under_concurrency(s: Store) {
    use crate::{sales::invoices::NewInvoice, sales::lines::LineInput};
    let w = World::new(s.clone()).await;
    let company = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Numbered".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let mut drafts = Vec::new();
    for i in 0..64 {
        let input = NewInvoice {
            company_id: company.id(),
            contact_id: None,
            owner_id: None,
            currency: Currency::EUR,
            lines: vec![LineInput::new(format!("Item {i}"), amount("1"), amount("10"))],
            payment_terms_days: None,
            notes: None,
        };
        drafts.push(w.crm.invoices().create(&w.admin, input).await.unwrap());
    }
    let invoices = w.crm.invoices();
    let issued = join_all(drafts.iter().map(|d| invoices.issue(&w.admin, d.id(), None))).await;
    let mut numbers: Vec<String> = issued.into_iter().map(|r| r.unwrap().number.unwrap()).collect();
    numbers.sort();
    let expected: Vec<String> = (1..=64).map(|n| format!("INV-2026-{n:06}")).collect();
    assert_eq!(numbers, expected);
    assert_eq!(s.counter(tenant(&w), "invoice:2026").await.unwrap(), 64);
}

/// 32 concurrent quote sends and 32 concurrent shipments get distinct, consecutive
/// numbers in their own series, next to each other's counters.
pub async fn quote_and_delivery_numbers_under_concurrency(s: Store) {
    use crate::{
        sales::delivery_notes::{DeliveryLine, NewDeliveryNote},
        sales::lines::LineInput,
        sales::quotes::NewQuote,
    };
    let w = World::new(s.clone()).await;
    let invoice = issued_invoice(&w, "32", "10").await;
    let (mut quotes, mut notes) = (Vec::new(), Vec::new());
    for i in 0..32 {
        let quote = NewQuote {
            company_id: invoice.company_id,
            contact_id: None,
            deal_id: None,
            owner_id: None,
            currency: Currency::EUR,
            lines: vec![LineInput::new(format!("Item {i}"), amount("1"), amount("10"))],
            valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(30),
            notes: None,
        };
        quotes.push(w.crm.quotes().create(&w.manager, quote).await.unwrap());
        let note = NewDeliveryNote {
            invoice_id: invoice.id(),
            lines: vec![DeliveryLine { line_index: 0, quantity: amount("1") }],
            notes: None,
        };
        notes.push(w.crm.delivery_notes().create(&w.manager, note).await.unwrap());
    }
    let (q, d) = (w.crm.quotes(), w.crm.delivery_notes());
    let (sent, shipped) = futures::join!(
        join_all(quotes.iter().map(|x| q.send(&w.manager, x.id(), None))),
        join_all(notes.iter().map(|x| d.ship(&w.manager, x.id(), None))),
    );
    let mut quote_numbers: Vec<String> = sent.into_iter().map(|r| r.unwrap().number.unwrap()).collect();
    let mut note_numbers: Vec<String> = shipped.into_iter().map(|r| r.unwrap().number.unwrap()).collect();
    quote_numbers.sort();
    note_numbers.sort();
    assert_eq!(quote_numbers, (1..=32).map(|n| format!("QUO-2026-{n:06}")).collect::<Vec<_>>());
    assert_eq!(note_numbers, (1..=32).map(|n| format!("DN-2026-{n:06}")).collect::<Vec<_>>());
    assert_eq!(s.counter(tenant(&w), "quote:2026").await.unwrap(), 32);
    assert_eq!(s.counter(tenant(&w), "delivery_note:2026").await.unwrap(), 32);
    // Numbers are indexed: found by a case-insensitive search, sorted.
    let found = PageRequest { search: Some("quo-2026-000032".into()), ..PageRequest::default() };
    let listed = q.list(&w.manager, &Default::default(), &found).await.unwrap();
    assert_eq!(listed.items.iter().map(|x| x.number.clone()).collect::<Vec<_>>(), [Some("QUO-2026-000032".into())]);
    let last = PageRequest { sort: Some("number".into()), descending: true, ..PageRequest::first(1) };
    let listed = d.list(&w.manager, &Default::default(), &last).await.unwrap();
    assert_eq!(listed.items[0].number.as_deref(), Some("DN-2026-000032"));
}

/// 64 concurrent payments of 10.00 on a 500.00 invoice: exactly 50 succeed, and the
/// invoice's paid amount is the sum of the accepted payments.
pub async fn payments_under_concurrency(s: Store) {
    use crate::sales::payments::{NewPayment, PaymentFilter, PaymentMethod};
    let w = World::new(s).await;
    let invoice = issued_invoice(&w, "50", "10").await;
    let payments = w.crm.payments();
    let attempts = (0..64).map(|_| {
        let input = NewPayment {
            invoice_id: invoice.id(),
            amount: amount("10.00"),
            method: PaymentMethod::Card,
            paid_on: None,
            reference: None,
        };
        payments.record(&w.manager, input)
    });
    let results = join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CrmError::Validation(_)), "a refused payment names the amount or status: {e:?}");
        }
    }
    assert_eq!(accepted, 50);
    let paid = w.crm.invoices().get(&w.admin, invoice.id()).await.unwrap();
    let filter = PaymentFilter { invoice_id: Some(invoice.id()), ..Default::default() };
    let listed = w.crm.payments().list(&w.admin, &filter, &PageRequest::first(500)).await.unwrap();
    let sum: Decimal = listed.items.iter().map(|p| p.amount).sum();
    assert_eq!((paid.amount_paid, sum, listed.items.len()), (amount("500.00"), amount("500.00"), 50));
    assert_eq!(paid.balance_due, Decimal::ZERO);
}

/// The tenant's only two admins demote, deactivate or delete each other at the same
/// moment, round after round: exactly one change commits, and one active admin always
/// remains (each change checks every other active admin in its batch).
pub async fn last_admin_under_concurrency(s: Store) {
    use crate::{
        access::users::{NewUser, UserFilter, UserPatch},
        authz::Role,
    };
    for round in 0..12 {
        let w = World::new(s.clone()).await;
        let users = w.crm.users();
        // Two admins that nothing references (so either may be deleted) take over.
        let mut admins = Vec::new();
        for name in ["b", "c"] {
            let input = NewUser {
                email: format!("{name}-admin@acme.test"),
                password: "admin-password".into(),
                first_name: name.to_uppercase(),
                last_name: "Admin".into(),
                role: Role::Admin,
                company_id: None,
            };
            let user = users.create(&w.admin, input).await.unwrap();
            admins.push(users.principal(w.admin.tenant_id(), user.id()).await.unwrap());
        }
        let (b, c) = (&admins[0], &admins[1]);
        let demote = UserPatch { role: Some(Role::Manager), ..UserPatch::default() };
        users.update(b, w.admin.user_id(), demote.clone()).await.unwrap();

        let results = join_all([(b, c.user_id()), (c, b.user_id())].map(|(actor, target)| {
            let demote = demote.clone();
            async move {
                match round % 3 {
                    0 => users.update(actor, target, demote).await.map(drop),
                    1 => users
                        .update(actor, target, UserPatch { active: Some(false), ..UserPatch::default() })
                        .await
                        .map(drop),
                    _ => users.delete(actor, target, None).await,
                }
            }
        }))
        .await;
        for result in &results {
            if let Err(e) = result {
                // A conflict, or, read after the other committed, a refusal to leave no admin.
                assert!(matches!(e, CrmError::Conflict { .. } | CrmError::Validation(_)), "round {round}: {e:?}");
            }
        }
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
        let survivor = if results[0].is_ok() { b } else { c };
        let active_admins = UserFilter { role: Some(Role::Admin), active: Some(true) };
        let left = users.list(survivor, &active_admins, &PageRequest::first(10)).await.unwrap();
        assert_eq!(left.items.len(), 1, "round {round}: one active admin remains");
    }
}

/// 64 concurrent credit notes of 10.00 on a 500.00 invoice, then 64 concurrent refunds
/// of 10.00 of a 500.00 payment: exactly 50 of each succeed, credit-note numbers stay
/// gapless, and nothing is credited or refunded past what was invoiced or paid.
pub async fn credit_notes_and_refunds_under_concurrency(s: Store) {
    use crate::sales::{
        credit_notes::{CreditLineInput, CreditNoteFilter, NewCreditNote},
        invoices::InvoiceStatus,
        payments::{NewPayment, PaymentMethod},
        refunds::{NewRefund, RefundFilter},
    };
    let w = World::new(s.clone()).await;
    let credited = issued_invoice(&w, "50", "10").await;
    let notes = w.crm.credit_notes();
    let attempts = (0..64).map(|_| {
        let line = CreditLineInput { line_index: 0, quantity: Some(amount("1")), amount: None };
        notes.create(&w.manager, NewCreditNote { invoice_id: credited.id(), lines: vec![line], reason: None })
    });
    let results = join_all(attempts).await;
    let mut numbers: Vec<String> = results.iter().filter_map(|r| r.as_ref().ok()).map(|n| n.number.clone()).collect();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(e, CrmError::Validation(_)), "a refused credit note names the line or invoice: {e:?}");
    }
    numbers.sort();
    assert_eq!(numbers, (1..=50).map(|n| format!("CN-2026-{n:06}")).collect::<Vec<_>>());
    let after = w.crm.invoices().get(&w.admin, credited.id()).await.unwrap();
    assert_eq!(
        (after.amount_credited, after.lines[0].quantity_credited, after.status),
        (amount("500.00"), amount("50"), InvoiceStatus::Cancelled)
    );
    let by_invoice = CreditNoteFilter { invoice_id: Some(credited.id()), ..Default::default() };
    let listed = notes.list(&w.admin, &by_invoice, &PageRequest::first(500)).await.unwrap();
    assert_eq!(listed.items.len(), 50);
    assert_eq!(notes.get(&w.admin, listed.items[0].id()).await.unwrap(), listed.items[0]);

    let paid = issued_invoice(&w, "50", "10").await;
    let pay = NewPayment {
        invoice_id: paid.id(),
        amount: amount("500.00"),
        method: PaymentMethod::Card,
        paid_on: None,
        reference: None,
    };
    let payment = w.crm.payments().record(&w.manager, pay).await.unwrap();
    let refunds = w.crm.refunds();
    let attempts = (0..64).map(|_| {
        let input = NewRefund { payment_id: payment.id(), amount: amount("10.00"), refunded_on: None, reason: None };
        refunds.record(&w.manager, input)
    });
    let results = join_all(attempts).await;
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(e, CrmError::Validation(_)), "a refused refund names the amount: {e:?}");
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 50);
    let by_payment = RefundFilter { payment_id: Some(payment.id()), ..Default::default() };
    let listed = refunds.list(&w.admin, &by_payment, &PageRequest::first(500)).await.unwrap();
    assert_eq!(listed.items.len(), 50);
    assert_eq!(refunds.get(&w.admin, listed.items[0].id()).await.unwrap(), listed.items[0]);
    let refunded = w.crm.payments().get(&w.admin, payment.id()).await.unwrap();
    let reopened = w.crm.invoices().get(&w.admin, paid.id()).await.unwrap();
    assert_eq!(
        (refunded.amount_refunded, reopened.amount_paid, reopened.balance_due, reopened.status),
        (amount("500.00"), Decimal::ZERO, amount("500.00"), InvoiceStatus::Issued)
    );
}

/// The webhook delivery log on this storage: planning an event writes one delivery per
/// wanting endpoint once (ids derived, a replay plans nothing), due deliveries are found
/// by their next attempt's time, the last failed attempt fails the delivery and disables
/// its endpoint in one write, and deleting the endpoint deletes its log with it.
pub async fn webhook_delivery_log(s: Store) {
    use crate::{
        storage::{EntityKind, OutboxEvent},
        webhooks::{
            deliveries::{AttemptReport, DeliveryState},
            endpoints::NewWebhookEndpoint,
            schedule::RetrySchedule,
        },
    };
    let w = World::new(s.clone()).await;
    let (hooks, tenant) = (w.crm.webhooks(), w.admin.tenant_id());
    let new = |url: &str, events: &[&str]| NewWebhookEndpoint {
        url: url.into(),
        event_types: events.iter().map(|e| (*e).to_owned()).collect(),
        description: None,
        active: None,
    };
    let (target, _) = hooks.create(&w.admin, new("https://a.example/", &["*"])).await.unwrap();
    hooks.create(&w.admin, new("https://b.example/", &["deal.won"])).await.unwrap();
    let event = OutboxEvent {
        id: uuid::Uuid::now_v7(),
        tenant_id: tenant,
        name: "invoice.paid".into(),
        entity_kind: EntityKind::Invoice,
        entity_id: uuid::Uuid::now_v7(),
        payload: serde_json::json!({}),
        occurred_at: w.crm.now(),
    };
    let planned = hooks.plan(&event).await.unwrap();
    assert_eq!(planned.len(), 1, "only the endpoint that wants invoice.paid");
    let delivery = planned[0].id();
    let replayed = hooks.plan(&event).await.unwrap();
    assert_eq!(replayed.iter().map(Entity::id).collect::<Vec<_>>(), [delivery], "a replayed event planned twice");
    let report =
        AttemptReport { succeeded: false, response_status: Some(500), latency_ms: 5, error: Some("500".into()) };
    let mut at = w.crm.now();
    for attempt in 1..=RetrySchedule.max_attempts() {
        let due = hooks.due(tenant, at, 10).await.unwrap();
        assert_eq!(due.iter().map(Entity::id).collect::<Vec<_>>(), [delivery], "due at attempt {attempt}");
        assert!(hooks.due(tenant, at - Duration::milliseconds(1), 10).await.unwrap().is_empty(), "due too early");
        let after = hooks.record_attempt(tenant, delivery, report.clone(), at).await.unwrap();
        assert_eq!(after.attempts, attempt);
        if let Some(next) = after.next_attempt_at {
            at = next;
        }
    }
    let failed = hooks.deliveries(&w.admin, target.id(), &PageRequest::default()).await.unwrap().items;
    assert_eq!(failed.iter().map(|d| d.status).collect::<Vec<_>>(), [DeliveryState::Failed]);
    assert!(!hooks.get(&w.admin, target.id()).await.unwrap().active, "the endpoint was not disabled");
    assert!(hooks.due(tenant, at + Duration::days(30), 10).await.unwrap().is_empty());
    hooks.delete(&w.admin, target.id(), None).await.unwrap();
    let left = s.list(tenant, EntityKind::WebhookDelivery, &Default::default()).await.unwrap();
    assert!(left.items.is_empty(), "the delivery log outlived its endpoint");
}
