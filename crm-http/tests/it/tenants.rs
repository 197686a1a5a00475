//! Tenant walls: another tenant's ids are 404 on every endpoint that takes an id.

use crm_core::conformance::World;
use poem::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Body, harness};

#[tokio::test]
async fn another_tenants_ids_are_404_everywhere() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    let company = h.w.client_company.meta.id;
    let mut ids: Vec<(&str, String)> = Vec::new();
    let create = async |path: &'static str, body: serde_json::Value| {
        let reply = h.post(&admin, &format!("/api/v1/{path}"), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{path}: {:?}", reply.body);
        reply.id()
    };
    let contact = create("contacts", json!({ "first_name": "A", "last_name": "B" })).await;
    let lead = create("leads", json!({ "first_name": "L", "last_name": "M", "source": "website" })).await;
    let deal = create("deals", json!({ "title": "D", "amount": "1.00", "currency": "EUR" })).await;
    let product =
        create("products", json!({ "sku": "S", "name": "N", "unit_price": "1", "currency": "EUR", "tax_rate": "0" }))
            .await;
    let category = create("product-categories", json!({ "name": "C" })).await;
    let project = create("projects", json!({ "name": "P", "company_id": company })).await;
    let milestone = create("milestones", json!({ "project_id": project, "name": "M" })).await;
    let task = create("tasks", json!({ "project_id": project, "title": "T" })).await;
    let key = create("api-keys", json!({ "name": "K", "scopes": ["*:read"] })).await;
    let line =
        json!({ "description": "x", "quantity": "1", "unit_price": "10", "discount_percent": "0", "tax_rate": "0" });
    let quote = create(
        "quotes",
        json!({ "company_id": company, "currency": "EUR", "lines": [line.clone()], "valid_until": "2026-12-31" }),
    )
    .await;
    let invoice = create("invoices", json!({ "company_id": company, "currency": "EUR", "lines": [line] })).await;
    let issued = h.post(&admin, &format!("/api/v1/invoices/{invoice}/issue"), json!({})).await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let payment = create("payments", json!({ "invoice_id": invoice, "amount": "1.00", "method": "cash" })).await;
    let credit_note =
        create("credit-notes", json!({ "invoice_id": invoice, "lines": [{ "line_index": 0, "amount": "1.00" }] }))
            .await;
    let refund = create("refunds", json!({ "payment_id": payment, "amount": "0.50" })).await;
    let audit = h.get(&admin, "/api/v1/audit-logs?limit=1").await.data()[0]["meta"]["id"].as_str().unwrap().to_owned();
    let user = h.w.user.user_id().to_string();
    let webhook = create("webhooks", json!({ "url": "https://erp.example/hook", "event_types": ["*"] })).await;
    let delivery = h.w.crm.webhooks().plan(&crate::webhooks::event(h.w.admin.tenant_id())).await.unwrap()[0].meta.id;
    ids.extend([
        ("contacts", contact),
        ("companies", company.to_string()),
        ("leads", lead),
        ("deals", deal),
        ("products", product),
        ("product-categories", category),
        ("projects", project),
        ("milestones", milestone),
        ("tasks", task),
        ("api-keys", key),
        ("quotes", quote),
        ("invoices", invoice),
        ("payments", payment),
        ("audit-logs", audit),
        ("users", user),
        ("credit-notes", credit_note),
        ("refunds", refund),
        ("webhooks", webhook.clone()),
    ]);

    // A second tenant on the same storage, with its own admin.
    let other = World::new(h.w.crm.storage().clone()).await;
    let intruder = h.token(&other.admin).await;
    let auth = format!("Bearer {intruder}");
    let mut checked = 0;
    for (resource, id) in &ids {
        let path = format!("/api/v1/{resource}/{id}");
        let reply = h.get(&intruder, &path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "GET {path}: {:?}", reply.body);
        // Changes and deletes where the resource has them (405 where it has none).
        let patched = h.patch(&intruder, &path, None, json!({})).await;
        assert!(
            matches!(patched.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED),
            "PATCH {path}: {:?}",
            patched.status
        );
        let deleted = h.call(Method::DELETE, &path, &[("authorization", &auth)], Body::None).await;
        assert!(
            matches!(deleted.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED),
            "DELETE {path}: {:?}",
            deleted.status
        );
        checked += 1;
    }
    let actions = [
        format!("leads/{}/status", ids[2].1),
        format!("deals/{}/stage", ids[3].1),
        format!("quotes/{}/send", ids[10].1),
        format!("quotes/{}/accept", ids[10].1),
        format!("invoices/{}/cancel", ids[11].1),
        format!("payments/{}/void", ids[12].1),
        format!("tasks/{}/assign", ids[8].1),
        format!("projects/{}/status", ids[6].1),
        format!("api-keys/{}/revoke", ids[9].1),
        format!("leads/{}/convert", ids[2].1),
        format!("webhooks/{webhook}/rotate-secret"),
        format!("webhooks/{webhook}/deliveries/{delivery}/redeliver"),
    ];
    for action in &actions {
        let body = if action.starts_with("leads") && action.ends_with("status") {
            json!({ "status": "contacted" })
        } else if action.ends_with("status") {
            json!({ "status": "active" })
        } else if action.ends_with("stage") {
            json!({ "stage": "qualification" })
        } else if action.ends_with("assign") {
            json!({ "assignee_id": null })
        } else if action.ends_with("convert") {
            json!({ "company": { "mode": "none" } })
        } else {
            json!({})
        };
        let reply = h.post(&intruder, &format!("/api/v1/{action}"), body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "POST {action}: {:?}", reply.body);
        checked += 1;
    }
    let log = h.get(&intruder, &format!("/api/v1/webhooks/{webhook}/deliveries")).await;
    assert_eq!(log.status, StatusCode::NOT_FOUND, "another tenant's delivery log: {:?}", log.body);
    // The other tenant's listings do not show them either.
    for (resource, id) in &ids {
        let page = h.get(&intruder, &format!("/api/v1/{resource}?limit=500")).await;
        if page.status == StatusCode::OK {
            assert!(!page.body.to_string().contains(id.as_str()), "{resource} lists a foreign id");
        }
    }
    assert_eq!(checked, ids.len() + actions.len());
}
