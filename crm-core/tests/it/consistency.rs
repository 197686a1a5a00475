//! Cross-record consistency (issue 10, item 20): a document's contact and deal belong to
//! its company; a payment is dated between the invoice's issue and today.

use chrono::{Duration, TimeZone, Utc};
use crm_core::{
    CrmError,
    customers::companies::{Company, NewCompany},
    customers::contacts::{Contact, NewContact},
    customers::deals::{Deal, NewDeal},
    entity::Entity,
    money::Currency,
    sales::invoices::{Invoice, InvoicePatch, NewInvoice},
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    sales::quotes::{NewQuote, QuotePatch},
    work::projects::NewProject,
};
use rust_decimal_macros::dec;

use crate::support::{World, world};

fn fields(err: &CrmError) -> Vec<&str> {
    match err {
        CrmError::Validation(v) => v.fields.iter().map(|f| f.field.as_str()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn company(w: &World, name: &str) -> Company {
    w.crm.companies().create(&w.admin, NewCompany { name: name.into(), ..NewCompany::default() }).await.unwrap()
}

async fn contact(w: &World, company: Option<&Company>) -> Contact {
    let input = NewContact {
        first_name: "Ann".into(),
        last_name: "Smith".into(),
        email: None,
        phone: None,
        position: None,
        company_id: company.map(Entity::id),
        owner_id: None,
    };
    w.crm.contacts().create(&w.admin, input).await.unwrap()
}

async fn deal(w: &World, company: Option<&Company>) -> Deal {
    let input = NewDeal {
        title: "Deal".into(),
        company_id: company.map(Entity::id),
        contact_id: None,
        owner_id: None,
        amount: dec!(100),
        currency: Currency::EUR,
        stage: None,
        expected_close_date: None,
    };
    w.crm.deals().create(&w.admin, input).await.unwrap()
}

/// Ours, another company, its contact and deal, a standalone contact and a deal without a company.
struct Setup {
    ours: Company,
    our_contact: Contact,
    our_deal: Deal,
    their_contact: Contact,
    their_deal: Deal,
    loose_contact: Contact,
    loose_deal: Deal,
}

async fn setup(w: &World) -> Setup {
    let (ours, theirs) = (company(w, "Ours").await, company(w, "Theirs").await);
    Setup {
        our_contact: contact(w, Some(&ours)).await,
        our_deal: deal(w, Some(&ours)).await,
        their_contact: contact(w, Some(&theirs)).await,
        their_deal: deal(w, Some(&theirs)).await,
        loose_contact: contact(w, None).await,
        loose_deal: deal(w, None).await,
        ours,
    }
}

fn invoice(company: &Company, contact: Option<&Contact>) -> NewInvoice {
    NewInvoice {
        company_id: company.id(),
        contact_id: contact.map(Entity::id),
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Work", dec!(1), dec!(100))],
        payment_terms_days: None,
        notes: None,
    }
}

#[tokio::test]
async fn an_invoices_contact_belongs_to_its_company_on_create_and_update() {
    let w = world().await;
    let s = setup(&w).await;
    for wrong in [&s.their_contact, &s.loose_contact] {
        let err = w.crm.invoices().create(&w.manager, invoice(&s.ours, Some(wrong))).await.unwrap_err();
        assert_eq!(fields(&err), ["contact_id"]);
    }
    let draft = w.crm.invoices().create(&w.manager, invoice(&s.ours, Some(&s.our_contact))).await.unwrap();
    let patch = InvoicePatch { contact_id: Some(Some(s.their_contact.id())), ..InvoicePatch::default() };
    let err = w.crm.invoices().update(&w.manager, draft.id(), patch).await.unwrap_err();
    assert_eq!(fields(&err), ["contact_id"]);
    let cleared = InvoicePatch { contact_id: Some(None), ..InvoicePatch::default() };
    assert_eq!(w.crm.invoices().update(&w.manager, draft.id(), cleared).await.unwrap().contact_id, None);
}

fn quote(w: &World, s: &Setup, contact: &Contact, deal: &Deal) -> NewQuote {
    NewQuote {
        company_id: s.ours.id(),
        contact_id: Some(contact.id()),
        deal_id: Some(deal.id()),
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", dec!(1), dec!(10))],
        valid_until: w.crm.now().date_naive() + Duration::days(30),
        notes: None,
    }
}

#[tokio::test]
async fn a_quotes_contact_and_deal_belong_to_its_company_on_create_and_update() {
    let w = world().await;
    let s = setup(&w).await;
    let err = w.crm.quotes().create(&w.manager, quote(&w, &s, &s.their_contact, &s.their_deal)).await.unwrap_err();
    assert_eq!(fields(&err), ["contact_id", "deal_id"]);
    let err = w.crm.quotes().create(&w.manager, quote(&w, &s, &s.loose_contact, &s.loose_deal)).await.unwrap_err();
    assert_eq!(fields(&err), ["contact_id", "deal_id"]);
    let ok = w.crm.quotes().create(&w.manager, quote(&w, &s, &s.our_contact, &s.our_deal)).await.unwrap();
    let patch = QuotePatch { contact_id: Some(Some(s.their_contact.id())), ..QuotePatch::default() };
    let err = w.crm.quotes().update(&w.manager, ok.id(), patch).await.unwrap_err();
    assert_eq!(fields(&err), ["contact_id"]);
}

#[tokio::test]
async fn a_projects_deal_belongs_to_its_company() {
    let w = world().await;
    let s = setup(&w).await;
    let project = |deal: &Deal| NewProject {
        name: "Rollout".into(),
        company_id: s.ours.id(),
        deal_id: Some(deal.id()),
        budget: None,
        currency: None,
        start_date: None,
        end_date: None,
        manager_id: None,
    };
    for wrong in [&s.their_deal, &s.loose_deal] {
        let err = w.crm.projects().create(&w.manager, project(wrong)).await.unwrap_err();
        assert_eq!(fields(&err), ["deal_id"]);
    }
    assert!(w.crm.projects().create(&w.manager, project(&s.our_deal)).await.is_ok());
}

async fn issued(w: &World, company: &Company) -> Invoice {
    let draft = w.crm.invoices().create(&w.manager, invoice(company, None)).await.unwrap();
    w.crm.invoices().issue(&w.manager, draft.id(), None).await.unwrap()
}

fn payment(invoice: &Invoice, paid_on: Option<chrono::NaiveDate>) -> NewPayment {
    NewPayment { invoice_id: invoice.id(), amount: dec!(10), method: PaymentMethod::Cash, paid_on, reference: None }
}

#[tokio::test]
async fn a_payment_is_dated_between_the_invoices_issue_and_the_tenants_today() {
    let w = world().await;
    let s = setup(&w).await;
    let invoice = issued(&w, &s.ours).await;
    let issued_on = invoice.issue_date.unwrap();
    w.clock.set(w.crm.now() + Duration::days(5));
    let today = w.crm.today(w.admin.tenant_id()).await.unwrap();
    for wrong in [issued_on - Duration::days(1), today + Duration::days(1)] {
        let err = w.crm.payments().record(&w.manager, payment(&invoice, Some(wrong))).await.unwrap_err();
        assert_eq!(fields(&err), ["paid_on"], "{wrong}");
    }
    for right in [issued_on, today] {
        let recorded = w.crm.payments().record(&w.manager, payment(&invoice, Some(right))).await.unwrap();
        assert_eq!(recorded.paid_on, right);
    }
    let after = w.crm.invoices().get(&w.manager, invoice.id()).await.unwrap();
    assert_eq!(after.amount_paid, dec!(20), "refused payments wrote nothing");
}

#[tokio::test]
async fn future_means_after_the_tenants_today_not_utcs() {
    let w = world().await;
    let s = setup(&w).await;
    let invoice = issued(&w, &s.ours).await;
    let zone = crm_core::access::settings::SettingsPatch { time_zone: Some("Pacific/Auckland".into()), version: None };
    w.crm.settings().update(&w.admin, zone).await.unwrap();
    // 20:00 UTC is already the next day in Auckland.
    let now = w.crm.now().date_naive().and_hms_opt(20, 0, 0).unwrap();
    w.clock.set(Utc.from_utc_datetime(&now));
    let tomorrow_in_utc = now.date() + Duration::days(1);
    let recorded = w.crm.payments().record(&w.manager, payment(&invoice, Some(tomorrow_in_utc))).await.unwrap();
    assert_eq!(recorded.paid_on, tomorrow_in_utc);
}
