//! Services over the storage: every entity's CRUD, and roles and tenants enforced.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::World;
use crate::{
    CrmError, PageRequest,
    customers::companies::{CompanyPatch, NewCompany},
    customers::contacts::NewContact,
    customers::deals::{DealStage, NewDeal},
    entity::Entity,
    money::Currency,
};

/// An exact decimal from its text.
#[allow(unused_imports)]
use super::support::*;

/// Asserts a record is gone: reading it through its service answers `NotFound`.
fn assert_gone<T: std::fmt::Debug>(result: crate::Result<T>) {
    let err = result.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { .. }), "expected NotFound after delete, got {err:?}");
}

/// Create, read, update and delete every entity through its service.
pub async fn services_crud_every_entity(s: Store) {
    use crate::{
        access::users::{NewUser, UserPatch},
        customers::contacts::ContactPatch,
        customers::deals::DealPatch,
        customers::leads::{LeadPatch, NewLead},
    };
    let w = World::new(s).await;
    let (crm, admin) = (&w.crm, &w.admin);

    let user = crm
        .users()
        .create(
            admin,
            NewUser {
                email: "crud@acme.test".into(),
                password: "crud-password".into(),
                first_name: "Cru".into(),
                last_name: "D".into(),
                role: crate::Role::User,
                company_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.users().get(admin, user.id()).await.unwrap(), user);
    let patch = UserPatch { version: Some(1), last_name: Some("Dee".into()), ..UserPatch::default() };
    assert_eq!(crm.users().update(admin, user.id(), patch).await.unwrap().meta.version, 2);
    crm.users().delete(admin, user.id(), Some(2)).await.unwrap();
    assert_gone(crm.users().get(admin, user.id()).await);

    let company =
        crm.companies().create(admin, NewCompany { name: "Crud Co".into(), ..NewCompany::default() }).await.unwrap();
    assert_eq!(crm.companies().get(admin, company.id()).await.unwrap(), company);
    let patch =
        CompanyPatch { version: Some(1), website: Some(Some("https://crud.test".into())), ..CompanyPatch::default() };
    let company = crm.companies().update(admin, company.id(), patch).await.unwrap();
    assert_eq!((company.website.as_deref(), company.meta.version), (Some("https://crud.test"), 2));

    let contact = crm
        .contacts()
        .create(
            admin,
            NewContact {
                first_name: "C".into(),
                last_name: "Rud".into(),
                company_id: Some(company.id()),
                ..NewContact::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.contacts().get(admin, contact.id()).await.unwrap(), contact);
    let patch = ContactPatch { version: Some(1), phone: Some(Some("+1 555".into())), ..ContactPatch::default() };
    assert_eq!(crm.contacts().update(admin, contact.id(), patch).await.unwrap().phone.as_deref(), Some("+1 555"));

    let lead = crm
        .leads()
        .create(
            admin,
            NewLead {
                first_name: "L".into(),
                last_name: "Ead".into(),
                email: None,
                phone: None,
                company_name: None,
                source: crate::customers::leads::LeadSource::Event,
                score: Some(5),
                owner_id: None,
                notes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.leads().get(admin, lead.id()).await.unwrap(), lead);
    let patch = LeadPatch { version: Some(1), score: Some(90), ..LeadPatch::default() };
    assert_eq!(crm.leads().update(admin, lead.id(), patch).await.unwrap().score, 90);
    crm.leads().delete(admin, lead.id(), Some(2)).await.unwrap();
    assert_gone(crm.leads().get(admin, lead.id()).await);

    let deal = crm
        .deals()
        .create(
            admin,
            NewDeal {
                title: "Crud deal".into(),
                company_id: Some(company.id()),
                contact_id: Some(contact.id()),
                owner_id: None,
                amount: amount("99.99"),
                currency: Currency::USD,
                stage: Some(DealStage::Qualification),
                expected_close_date: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.deals().get(admin, deal.id()).await.unwrap(), deal);
    let patch = DealPatch { version: Some(1), amount: Some(amount("150.00")), ..DealPatch::default() };
    assert_eq!(crm.deals().update(admin, deal.id(), patch).await.unwrap().amount, amount("150.00"));
    // The deal references the contact and the company: deleting those first is refused.
    assert!(matches!(crm.contacts().delete(admin, contact.id(), None).await, Err(CrmError::Referenced { .. })));
    crm.deals().delete(admin, deal.id(), Some(2)).await.unwrap();
    assert_gone(crm.deals().get(admin, deal.id()).await);
    crm.contacts().delete(admin, contact.id(), Some(2)).await.unwrap();
    assert_gone(crm.contacts().get(admin, contact.id()).await);
    crm.companies().delete(admin, company.id(), Some(2)).await.unwrap();
    assert_gone(crm.companies().get(admin, company.id()).await);

    // Notifications: created by an assignment, marked read, deleted by their owner.
    crm.deals()
        .create(&w.manager, NewDeal { owner_id: Some(w.user.user_id()), ..deal_input("Assigned") })
        .await
        .unwrap();
    let inbox = crm.notifications().list(&w.user, false, &PageRequest::default()).await.unwrap();
    assert_eq!(inbox.items.len(), 1);
    let note = crm.notifications().mark_read(&w.user, inbox.items[0].id()).await.unwrap();
    assert!(note.read_at.is_some());
    crm.notifications().delete(&w.user, note.id()).await.unwrap();
    assert!(crm.notifications().list(&w.user, false, &PageRequest::default()).await.unwrap().items.is_empty());

    crud_catalog_projects_documents_and_keys(&w).await;
}

/// The second half of [`services_crud_every_entity`]: catalog, projects, documents, keys.
async fn crud_catalog_projects_documents_and_keys(w: &World) {
    use crate::{
        access::api_keys::NewApiKey,
        sales::delivery_notes::{DeliveryLine, NewDeliveryNote},
        sales::invoices::{InvoicePatch, NewInvoice},
        sales::lines::LineInput,
        sales::payments::{NewPayment, PaymentMethod, PaymentStatus},
        sales::products::{NewProduct, ProductPatch},
        sales::quotes::{NewQuote, QuotePatch},
        work::{
            projects::{NewProject, ProjectPatch},
            tasks::{NewTask, TaskPatch},
        },
    };
    let (crm, admin) = (&w.crm, &w.admin);
    let company = w.client_company.id();

    let category = crm.product_categories().create(admin, "Tools".into(), None).await.unwrap();
    let category = crm.product_categories().rename(admin, category.id(), "Hand tools".into(), Some(1)).await.unwrap();
    assert_eq!(crm.product_categories().get(admin, category.id()).await.unwrap(), category);
    let product = crm
        .products()
        .create(
            admin,
            NewProduct {
                sku: "HAM-1".into(),
                name: "Hammer".into(),
                description: None,
                unit_price: amount("12.50"),
                currency: Currency::EUR,
                tax_rate: amount("20"),
                unit: None,
                category_id: Some(category.id()),
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.products().get(admin, product.id()).await.unwrap(), product);
    let patch = ProductPatch { version: Some(1), unit_price: Some(amount("13.00")), ..ProductPatch::default() };
    assert_eq!(crm.products().update(admin, product.id(), patch).await.unwrap().unit_price, amount("13.00"));

    let project = crm
        .projects()
        .create(
            admin,
            NewProject {
                name: "Fit-out".into(),
                company_id: company,
                deal_id: None,
                budget: None,
                currency: None,
                start_date: None,
                end_date: None,
                manager_id: Some(w.manager.user_id()),
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.projects().get(admin, project.id()).await.unwrap(), project);
    let patch = ProjectPatch { version: Some(1), name: Some("Fit-out 2".into()), ..ProjectPatch::default() };
    assert_eq!(crm.projects().update(admin, project.id(), patch).await.unwrap().name, "Fit-out 2");
    let milestone = crm.milestones().create(admin, project.id(), "Design".into(), None).await.unwrap();
    assert_eq!(crm.milestones().get(admin, milestone.id()).await.unwrap(), milestone);
    let task = crm
        .tasks()
        .create(
            admin,
            NewTask {
                project_id: project.id(),
                milestone_id: Some(milestone.id()),
                title: "Draw".into(),
                description: None,
                assignee_id: Some(w.user.user_id()),
                priority: None,
                due_date: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((crm.tasks().get(admin, task.id()).await.unwrap(), task.company_id), (task.clone(), company));
    let patch = TaskPatch { version: Some(1), title: Some("Draw plans".into()), ..TaskPatch::default() };
    assert_eq!(crm.tasks().update(admin, task.id(), patch).await.unwrap().title, "Draw plans");
    crm.tasks().delete(admin, task.id(), Some(2)).await.unwrap();
    assert_gone(crm.tasks().get(admin, task.id()).await);
    crm.milestones().delete(admin, milestone.id(), Some(1)).await.unwrap();
    assert_gone(crm.milestones().get(admin, milestone.id()).await);
    crm.projects().delete(admin, project.id(), Some(2)).await.unwrap();
    assert_gone(crm.projects().get(admin, project.id()).await);

    let line = LineInput { product_id: Some(product.id()), ..LineInput::new("Hammer", amount("2"), amount("13.00")) };
    let quote = crm
        .quotes()
        .create(
            admin,
            NewQuote {
                company_id: company,
                contact_id: None,
                deal_id: None,
                owner_id: None,
                currency: Currency::EUR,
                lines: vec![line.clone()],
                valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap(),
                notes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.quotes().get(admin, quote.id()).await.unwrap(), quote);
    let patch = QuotePatch { version: Some(1), notes: Some(Some("Net 30".into())), ..QuotePatch::default() };
    assert_eq!(crm.quotes().update(admin, quote.id(), patch).await.unwrap().notes.as_deref(), Some("Net 30"));
    assert!(matches!(crm.products().delete(admin, product.id(), None).await, Err(CrmError::Referenced { .. })));
    crm.quotes().delete(admin, quote.id(), Some(2)).await.unwrap();
    assert_gone(crm.quotes().get(admin, quote.id()).await);

    let new_invoice = NewInvoice {
        company_id: company,
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![line],
        payment_terms_days: None,
        notes: None,
    };
    let draft = crm.invoices().create(admin, new_invoice.clone()).await.unwrap();
    assert_eq!(crm.invoices().get(admin, draft.id()).await.unwrap(), draft);
    let patch = InvoicePatch { version: Some(1), payment_terms_days: Some(45), ..InvoicePatch::default() };
    assert_eq!(crm.invoices().update(admin, draft.id(), patch).await.unwrap().payment_terms_days, 45);
    crm.invoices().delete(admin, draft.id(), Some(2)).await.unwrap();
    assert_gone(crm.invoices().get(admin, draft.id()).await);

    let invoice = crm.invoices().create(admin, new_invoice).await.unwrap();
    let invoice = crm.invoices().issue(admin, invoice.id(), None).await.unwrap();
    let payment = NewPayment {
        invoice_id: invoice.id(),
        amount: amount("1.00"),
        method: PaymentMethod::Other,
        paid_on: None,
        reference: Some("r".into()),
    };
    let payment = crm.payments().record(admin, payment).await.unwrap();
    assert_eq!(crm.payments().get(admin, payment.id()).await.unwrap(), payment);
    assert_eq!(crm.payments().void(admin, payment.id(), Some(1)).await.unwrap().status, PaymentStatus::Voided);
    let note = NewDeliveryNote {
        invoice_id: invoice.id(),
        lines: vec![DeliveryLine { line_index: 0, quantity: amount("1") }],
        notes: None,
    };
    let note = crm.delivery_notes().create(admin, note).await.unwrap();
    assert_eq!(crm.delivery_notes().get(admin, note.id()).await.unwrap(), note);
    crm.delivery_notes().delete(admin, note.id(), Some(1)).await.unwrap();
    assert_gone(crm.delivery_notes().get(admin, note.id()).await);

    let key =
        NewApiKey { name: "CRUD".into(), owner_id: None, scopes: vec!["*:read".parse().unwrap()], expires_at: None };
    let (key, _token) = crm.api_keys().create(admin, key).await.unwrap();
    assert_eq!(crm.api_keys().get(admin, key.id()).await.unwrap(), key);
    assert!(crm.api_keys().revoke(admin, key.id(), Some(1)).await.unwrap().revoked);
    crm.api_keys().delete(admin, key.id(), Some(2)).await.unwrap();
    assert_gone(crm.api_keys().get(admin, key.id()).await);
}

fn deal_input(title: &str) -> NewDeal {
    NewDeal {
        title: title.into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount: amount("500.00"),
        currency: Currency::EUR,
        stage: None,
        expected_close_date: None,
    }
}

/// The services apply the permission matrix and the tenant wall on this storage.
pub async fn services_enforce_roles_and_tenants(s: Store) {
    let w = World::new(s.clone()).await;
    let other = World::new(s).await;
    let mine = w.crm.deals().create(&w.user, deal_input("Mine")).await.unwrap();
    let theirs = w.crm.deals().create(&w.other_user, deal_input("Theirs")).await.unwrap();
    let rename = |title: &str| crate::customers::deals::DealPatch { title: Some(title.into()), ..Default::default() };
    assert!(w.crm.deals().update(&w.user, mine.id(), rename("ok")).await.is_ok());
    let err = w.crm.deals().update(&w.user, theirs.id(), rename("no")).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    assert!(w.crm.deals().update(&w.manager, theirs.id(), rename("managed")).await.is_ok());
    let err = w.crm.deals().get(&w.client, mine.id()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "clients have no access to deals: {err:?}");
    for p in [&other.admin, &other.manager, &other.user] {
        let err = other.crm.deals().get(p, mine.id()).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound { .. }), "{err:?}");
    }
    let listed = other.crm.deals().list(&other.admin, &Default::default(), &PageRequest::default()).await.unwrap();
    assert!(listed.items.is_empty(), "another tenant's deals never list");
    let client_view = w.crm.companies().list(&w.client, &Default::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(client_view.items.iter().map(|c| c.id()).collect::<Vec<_>>(), vec![w.client_company.id()]);
}

/// A tenant's settings are stored (read back by a second CRM over the same storage),
/// versioned, and per tenant: one tenant's zone is not another's.
pub async fn tenant_settings_are_stored_per_tenant(s: Store) {
    use crate::access::settings::SettingsPatch;
    let (a, b) = (World::new(s.clone()).await, World::new(s.clone()).await);
    let belgrade = SettingsPatch { time_zone: Some("Europe/Belgrade".into()), ..SettingsPatch::default() };
    let first = a.crm.settings().update(&a.admin, belgrade).await.unwrap();
    assert_eq!(first.meta.version, 1);
    let tokyo = SettingsPatch { version: Some(1), time_zone: Some("Asia/Tokyo".into()) };
    assert_eq!(a.crm.settings().update(&a.admin, tokyo).await.unwrap().meta.version, 2);
    let reread = crate::Crm::new(s).settings().get(&a.user).await.unwrap();
    assert_eq!((reread.time_zone.name(), reread.meta.version), ("Asia/Tokyo", 2));
    let other = b.crm.settings().get(&b.admin).await.unwrap();
    assert_eq!((other.time_zone.name(), other.meta.version), ("UTC", 0), "another tenant keeps its defaults");
}
