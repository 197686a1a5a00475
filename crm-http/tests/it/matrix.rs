//! Role × endpoint: each role gets exactly what the core's permission matrix allows
//! and 403 otherwise; records outside a right's reach are 404.

use crm_core::{
    Access, Action, Resource, Role,
    authz::access,
    customers::companies::NewCompany,
    customers::contacts::NewContact,
    customers::leads::{LeadSource, NewLead},
    money::Currency,
    sales::products::NewProduct,
};
use poem::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{Harness, harness};

/// Listing endpoints and what they list (`true` when the listing can narrow "own"
/// rights to the owner's records).
const LISTINGS: [(&str, Resource, bool); 19] = [
    ("/api/v1/users", Resource::Users, true),
    ("/api/v1/companies", Resource::Companies, true),
    ("/api/v1/contacts", Resource::Contacts, true),
    ("/api/v1/leads", Resource::Leads, true),
    ("/api/v1/deals", Resource::Deals, true),
    ("/api/v1/quotes", Resource::Quotes, true),
    ("/api/v1/invoices", Resource::Invoices, true),
    ("/api/v1/payments", Resource::Payments, true),
    ("/api/v1/delivery-notes", Resource::DeliveryNotes, true),
    ("/api/v1/credit-notes", Resource::CreditNotes, true),
    ("/api/v1/refunds", Resource::Payments, true),
    ("/api/v1/projects", Resource::Projects, true),
    ("/api/v1/tasks", Resource::Tasks, true),
    ("/api/v1/products", Resource::Products, true),
    ("/api/v1/product-categories", Resource::ProductCategories, true),
    ("/api/v1/audit-logs", Resource::AuditLogs, true),
    ("/api/v1/api-keys", Resource::ApiKeys, true),
    ("/api/v1/notifications", Resource::Notifications, true),
    ("/api/v1/webhooks", Resource::Webhooks, true),
];

async fn tokens(h: &Harness) -> Vec<(Role, String)> {
    let mut out = Vec::new();
    for (_, p) in h.w.principals() {
        out.push((p.role(), h.token(p).await));
    }
    out
}

fn expected_read(role: Role, resource: Resource) -> StatusCode {
    match access(role, resource, Action::Read) {
        Access::Denied => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    }
}

#[tokio::test]
async fn every_listing_answers_each_role_as_the_matrix_says() {
    let h = harness().await;
    let tokens = tokens(&h).await;
    let mut checked = 0;
    for (path, resource, _) in LISTINGS {
        for (role, token) in &tokens {
            let reply = h.get(token, path).await;
            let expected = expected_read(*role, resource);
            assert_eq!(reply.status, expected, "{} GET {path}: {:?}", role.as_str(), reply.body);
            if expected == StatusCode::FORBIDDEN {
                assert_eq!(reply.code(), "forbidden");
            }
            checked += 1;
        }
    }
    let report = |role: Role| match access(role, Resource::Reports, Action::Read) {
        Access::Denied => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    };
    for (role, token) in &tokens {
        assert_eq!(h.get(token, "/api/v1/reports/pipeline").await.status, report(*role), "{}", role.as_str());
        checked += 1;
    }
    assert_eq!(checked, LISTINGS.len() * 4 + 4);
}

/// A valid creation body for each resource the test creates.
fn creations(h: &Harness) -> Vec<(&'static str, Resource, Value)> {
    let company = h.w.client_company.meta.id;
    vec![
        ("/api/v1/companies", Resource::Companies, json!({ "name": "Initech" })),
        ("/api/v1/contacts", Resource::Contacts, json!({ "first_name": "Peter", "last_name": "Gibbons" })),
        ("/api/v1/leads", Resource::Leads, json!({ "first_name": "Bill", "last_name": "L", "source": "website" })),
        (
            "/api/v1/deals",
            Resource::Deals,
            json!({ "title": "TPS reports", "amount": "100.00", "currency": "USD", "company_id": company }),
        ),
        (
            "/api/v1/products",
            Resource::Products,
            json!({ "sku": "STAPLER", "name": "Stapler", "unit_price": "9.99", "currency": "USD", "tax_rate": "0" }),
        ),
        ("/api/v1/product-categories", Resource::ProductCategories, json!({ "name": "Office" })),
        ("/api/v1/projects", Resource::Projects, json!({ "name": "Y2K", "company_id": company })),
        (
            "/api/v1/users",
            Resource::Users,
            json!({ "email": "milton@acme.test", "password": "red-stapler", "first_name": "Milton",
                    "last_name": "W", "role": "user" }),
        ),
        ("/api/v1/api-keys", Resource::ApiKeys, json!({ "name": "k", "scopes": ["contacts:read"] })),
        ("/api/v1/webhooks", Resource::Webhooks, json!({ "url": "https://erp.example/hook", "event_types": ["*"] })),
    ]
}

#[tokio::test]
async fn every_creation_answers_each_role_as_the_matrix_says() {
    let mut checked = 0;
    // A fresh world per role, so unique fields (sku, email) never collide.
    for role in Role::ALL {
        let h = harness().await;
        let p = h.w.principals().into_iter().map(|(_, p)| p.clone()).find(|p| p.role() == role).unwrap();
        let token = h.token(&p).await;
        for (path, resource, body) in creations(&h) {
            let reply = h.post(&token, path, body).await;
            let expected = match access(role, resource, Action::Create) {
                Access::Denied => StatusCode::FORBIDDEN,
                _ => StatusCode::CREATED,
            };
            assert_eq!(reply.status, expected, "{} POST {path}: {:?}", role.as_str(), reply.body);
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * 10);
}

#[tokio::test]
async fn records_outside_a_rights_reach_are_404_and_changes_to_them_403_or_404() {
    let h = harness().await;
    let (crm, admin) = (&h.w.crm, &h.w.admin);
    // Records owned by the admin, of no customer company.
    let contact = crm
        .contacts()
        .create(admin, NewContact { first_name: "A".into(), last_name: "B".into(), ..NewContact::default() })
        .await
        .unwrap();
    let company =
        crm.companies().create(admin, NewCompany { name: "Other".into(), ..NewCompany::default() }).await.unwrap();
    let lead = crm
        .leads()
        .create(
            admin,
            NewLead {
                first_name: "L".into(),
                last_name: "M".into(),
                email: None,
                phone: None,
                company_name: None,
                source: LeadSource::Website,
                score: None,
                owner_id: None,
                notes: None,
            },
        )
        .await
        .unwrap();
    let product = crm
        .products()
        .create(
            admin,
            NewProduct {
                sku: "P-1".into(),
                name: "P".into(),
                description: None,
                unit_price: Decimal::ONE,
                currency: Currency::EUR,
                tax_rate: Decimal::ZERO,
                unit: None,
                category_id: None,
            },
        )
        .await
        .unwrap();
    let records = [
        (format!("/api/v1/contacts/{}", contact.meta.id), Resource::Contacts),
        (format!("/api/v1/companies/{}", company.meta.id), Resource::Companies),
        (format!("/api/v1/leads/{}", lead.meta.id), Resource::Leads),
        (format!("/api/v1/products/{}", product.meta.id), Resource::Products),
    ];
    for (_, p) in h.w.principals() {
        let token = h.token(p).await;
        for (path, resource) in &records {
            let expected = match access(p.role(), *resource, Action::Read) {
                Access::Denied => StatusCode::FORBIDDEN,
                Access::Tenant => StatusCode::OK,
                // Owned by the admin, of no client company: out of reach.
                Access::Own | Access::Company => StatusCode::NOT_FOUND,
            };
            let reply = h.get(&token, path).await;
            assert_eq!(reply.status, expected, "{} GET {path}", p.role().as_str());
            // A change: refused unless the right to update reaches the record.
            let change = h.patch(&token, path, None, json!({})).await;
            let expected_change =
                match (access(p.role(), *resource, Action::Read), access(p.role(), *resource, Action::Update)) {
                    (Access::Denied, _) | (_, Access::Denied) => StatusCode::FORBIDDEN,
                    (Access::Tenant, Access::Tenant) => StatusCode::OK,
                    (Access::Tenant, _) => StatusCode::FORBIDDEN,
                    _ => StatusCode::NOT_FOUND,
                };
            assert_eq!(change.status, expected_change, "{} PATCH {path}: {:?}", p.role().as_str(), change.body);
        }
    }
}
