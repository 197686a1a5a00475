//! The happy path of every endpoint the other modules do not walk, in one sweep per area.

use poem::http::StatusCode;
use serde_json::json;

use crate::support::{Reply, harness};

fn ok(reply: &Reply, what: &str) {
    assert!(reply.status.is_success(), "{what}: {} {:?}", reply.status, reply.body);
    assert_eq!(reply.body["success"], true, "{what}");
}

#[tokio::test]
async fn users_products_categories_and_audit() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    let created = h
        .post(
            &admin,
            "/api/v1/users",
            json!({
                "email": "new@acme.test", "password": "long-enough", "first_name": "N", "last_name": "U", "role": "user"
            }),
        )
        .await;
    ok(&created, "create user");
    assert!(created.data().get("password_hash").is_none());
    let user_path = format!("/api/v1/users/{}", created.id());
    ok(&h.get(&admin, &user_path).await, "get user");
    ok(&h.get(&admin, "/api/v1/users?role=user&active=true").await, "list users");
    let renamed = h.patch(&admin, &user_path, Some("\"1\""), json!({ "first_name": "Nina" })).await;
    ok(&renamed, "patch user");
    // A user may edit its own name but not its role.
    let me = h.token(&h.w.user).await;
    let own = format!("/api/v1/users/{}", h.w.user.user_id());
    ok(&h.patch(&me, &own, None, json!({ "first_name": "Uma" })).await, "own name");
    let promote = h.patch(&me, &own, None, json!({ "role": "admin" })).await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN, "{:?}", promote.body);
    ok(&h.delete(&admin, &user_path).await, "delete user");

    let category = h.post(&admin, "/api/v1/product-categories", json!({ "name": "Hardware" })).await;
    ok(&category, "create category");
    let child =
        h.post(&admin, "/api/v1/product-categories", json!({ "name": "Cables", "parent_id": category.id() })).await;
    ok(&child, "create child category");
    let cat_path = format!("/api/v1/product-categories/{}", category.id());
    ok(&h.get(&admin, &cat_path).await, "get category");
    ok(&h.get(&admin, &format!("/api/v1/product-categories?parent_id={}", category.id())).await, "list children");
    ok(&h.post(&admin, &format!("{cat_path}/rename"), json!({ "name": "Devices" })).await, "rename category");
    let cycle = h.post(&admin, &format!("{cat_path}/move"), json!({ "parent_id": child.id() })).await;
    assert!(cycle.status.is_client_error(), "a cycle is refused: {:?}", cycle.body);
    let child_path = format!("/api/v1/product-categories/{}", child.id());
    ok(&h.post(&admin, &format!("{child_path}/move"), json!({ "parent_id": null })).await, "move to top");
    let product = h
        .post(
            &admin,
            "/api/v1/products",
            json!({
                "sku": "CBL-1", "name": "Cable", "unit_price": "4.99", "currency": "EUR", "tax_rate": "20",
                "category_id": child.id()
            }),
        )
        .await;
    ok(&product, "create product");
    let product_path = format!("/api/v1/products/{}", product.id());
    ok(&h.patch(&admin, &product_path, None, json!({ "unit_price": "5.49" })).await, "patch product");
    assert_eq!(h.get(&admin, &product_path).await.data()["unit_price"], "5.49");
    ok(&h.get(&admin, &format!("/api/v1/products?category_id={}&active=true", child.id())).await, "list products");
    let in_use = h.delete(&admin, &child_path).await;
    assert_eq!((in_use.status, in_use.code()), (StatusCode::CONFLICT, "still_referenced"));
    ok(&h.delete(&admin, &product_path).await, "delete product");
    ok(&h.delete(&admin, &child_path).await, "delete category");

    let audit = h.get(&admin, "/api/v1/audit-logs?entity_kind=product").await;
    ok(&audit, "list audit");
    let entries = audit.data().as_array().unwrap();
    assert!(entries.len() >= 3, "created, updated, deleted: {entries:?}");
    let entry = entries[0]["meta"]["id"].as_str().unwrap();
    ok(&h.get(&admin, &format!("/api/v1/audit-logs/{entry}")).await, "get audit entry");
    // Read only: no write method exists.
    assert_eq!(h.delete(&admin, &format!("/api/v1/audit-logs/{entry}")).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn deals_invoices_payments_and_delivery_notes() {
    let h = harness().await;
    let token = h.token(&h.w.manager).await;
    let company = h.w.client_company.meta.id;
    let deal = h.post(&token, "/api/v1/deals", json!({ "title": "D", "amount": "10.00", "currency": "EUR" })).await;
    ok(&deal, "create deal");
    let deal_path = format!("/api/v1/deals/{}", deal.id());
    ok(&h.get(&token, &deal_path).await, "get deal");
    ok(&h.patch(&token, &deal_path, None, json!({ "title": "Deal" })).await, "patch deal");
    ok(&h.get(&token, "/api/v1/deals?stages=prospecting,qualification").await, "list deals");
    let lost =
        h.post(&token, &format!("{deal_path}/stage"), json!({ "stage": "closed_lost", "lost_reason": "price" })).await;
    ok(&lost, "lose deal");
    ok(&h.delete(&token, &deal_path).await, "delete deal");

    let line = json!({ "description": "Box", "quantity": "4", "unit_price": "2.50", "discount_percent": "0", "tax_rate": "0" });
    let invoice =
        h.post(&token, "/api/v1/invoices", json!({ "company_id": company, "currency": "EUR", "lines": [line] })).await;
    ok(&invoice, "create invoice");
    let invoice_path = format!("/api/v1/invoices/{}", invoice.id());
    ok(&h.patch(&token, &invoice_path, Some("\"1\""), json!({ "notes": "thanks" })).await, "patch draft");
    ok(&h.post(&token, &format!("{invoice_path}/issue"), json!({})).await, "issue");
    ok(&h.get(&token, &format!("/api/v1/invoices?statuses=issued&company_id={company}")).await, "list invoices");
    let note = h
        .post(
            &token,
            "/api/v1/delivery-notes",
            json!({
                "invoice_id": invoice.id(), "lines": [{ "line_index": 0, "quantity": "4" }], "notes": null
            }),
        )
        .await;
    ok(&note, "create delivery note");
    let note_path = format!("/api/v1/delivery-notes/{}", note.id());
    ok(&h.get(&token, &note_path).await, "get note");
    ok(&h.get(&token, &format!("/api/v1/delivery-notes?invoice_id={}", invoice.id())).await, "list notes");
    ok(&h.post(&token, &format!("{note_path}/ship"), json!({})).await, "ship");
    ok(&h.post(&token, &format!("{note_path}/deliver"), json!({})).await, "deliver");
    let too_many = h
        .post(
            &token,
            "/api/v1/delivery-notes",
            json!({
                "invoice_id": invoice.id(), "lines": [{ "line_index": 0, "quantity": "1" }], "notes": null
            }),
        )
        .await;
    assert!(too_many.status.is_client_error(), "never past the invoiced quantity: {:?}", too_many.body);

    let payment = h
        .post(&token, "/api/v1/payments", json!({ "invoice_id": invoice.id(), "amount": "4.00", "method": "card" }))
        .await;
    ok(&payment, "record payment");
    let payment_path = format!("/api/v1/payments/{}", payment.id());
    ok(&h.get(&token, &payment_path).await, "get payment");
    ok(&h.get(&token, &format!("/api/v1/payments?invoice_id={}", invoice.id())).await, "list payments");
    assert_eq!(h.get(&token, &invoice_path).await.data()["status"], "partially_paid");
    ok(&h.post(&token, &format!("{payment_path}/void"), json!({})).await, "void");
    assert_eq!(h.get(&token, &invoice_path).await.data()["status"], "issued");
    ok(&h.post(&token, &format!("{invoice_path}/cancel"), json!({})).await, "cancel invoice");

    let draft = h.post(&token, "/api/v1/quotes", json!({
        "company_id": company, "currency": "EUR", "lines": [{ "description": "x", "quantity": "1", "unit_price": "1",
        "discount_percent": "0", "tax_rate": "0" }], "valid_until": "2026-12-31"
    })).await;
    ok(&draft, "create quote");
    let quote_path = format!("/api/v1/quotes/{}", draft.id());
    ok(&h.patch(&token, &quote_path, None, json!({ "notes": "n" })).await, "patch quote");
    ok(&h.post(&token, &format!("{quote_path}/send"), json!({})).await, "send");
    ok(&h.post(&token, &format!("{quote_path}/reject"), json!({})).await, "reject");
    ok(&h.get(&token, "/api/v1/quotes?statuses=rejected").await, "list quotes");
}

#[tokio::test]
async fn projects_milestones_tasks_and_notifications() {
    let h = harness().await;
    let manager = h.token(&h.w.manager).await;
    let project = h
        .post(&manager, "/api/v1/projects", json!({ "name": "Launch", "company_id": h.w.client_company.meta.id }))
        .await;
    ok(&project, "create project");
    let project_path = format!("/api/v1/projects/{}", project.id());
    ok(&h.patch(&manager, &project_path, None, json!({ "name": "Launch 2" })).await, "patch project");
    ok(&h.post(&manager, &format!("{project_path}/status"), json!({ "status": "active" })).await, "activate");
    ok(&h.get(&manager, "/api/v1/projects?status=active").await, "list projects");
    let milestone = h
        .post(
            &manager,
            "/api/v1/milestones",
            json!({ "project_id": project.id(), "name": "Beta", "due_date": "2026-06-30" }),
        )
        .await;
    ok(&milestone, "create milestone");
    let milestone_path = format!("/api/v1/milestones/{}", milestone.id());
    ok(&h.get(&manager, &milestone_path).await, "get milestone");
    ok(&h.get(&manager, &format!("/api/v1/milestones?project_id={}", project.id())).await, "list milestones");
    let missing = h.get(&manager, "/api/v1/milestones").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "project_id is required");
    ok(
        &h.post(&manager, &format!("{milestone_path}/status"), json!({ "status": "in_progress" })).await,
        "milestone status",
    );
    let task = h
        .post(
            &manager,
            "/api/v1/tasks",
            json!({ "project_id": project.id(), "milestone_id": milestone.id(), "title": "Ship" }),
        )
        .await;
    ok(&task, "create task");
    let task_path = format!("/api/v1/tasks/{}", task.id());
    ok(&h.patch(&manager, &task_path, None, json!({ "title": "Ship it" })).await, "patch task");
    ok(&h.post(&manager, &format!("{task_path}/assign"), json!({ "assignee_id": h.w.user.user_id() })).await, "assign");
    let user = h.token(&h.w.user).await;
    ok(&h.post(&user, &format!("{task_path}/status"), json!({ "status": "in_progress" })).await, "assignee works");
    ok(
        &h.get(&user, &format!("/api/v1/tasks?assignee_id={}&statuses=in_progress", h.w.user.user_id())).await,
        "list tasks",
    );
    let progress = h.get(&manager, &format!("{project_path}/progress")).await;
    ok(&progress, "progress");
    let inbox = h.get(&user, "/api/v1/notifications").await;
    let note_id = inbox.data()[0]["meta"]["id"].as_str().unwrap().to_owned();
    ok(&h.post(&user, &format!("/api/v1/notifications/{note_id}/read"), json!({})).await, "mark read");
    let other = h.token(&h.w.other_user).await;
    let foreign = h.post(&other, &format!("/api/v1/notifications/{note_id}/read"), json!({})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "another user's notification");
    ok(&h.delete(&user, &format!("/api/v1/notifications/{note_id}")).await, "delete notification");
    ok(&h.delete(&manager, &task_path).await, "delete task");
    ok(&h.delete(&manager, &milestone_path).await, "delete milestone");
    ok(&h.delete(&manager, &project_path).await, "delete project");
}
