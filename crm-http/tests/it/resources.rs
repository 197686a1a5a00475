//! Resources through HTTP: CRUD with versions, listings, a whole sale, and malformed input.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Body, Harness, harness, harness_requiring_versions};

async fn contact(h: &Harness, token: &str, first: &str, last: &str) -> String {
    let reply = h.post(token, "/api/v1/contacts", json!({ "first_name": first, "last_name": last })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.id()
}

#[tokio::test]
async fn contacts_crud_with_etags_and_if_match() {
    let h = harness().await;
    let token = h.token(&h.w.user).await;
    let created = h
        .post(
            &token,
            "/api/v1/contacts",
            json!({ "first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.test" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.body["success"], true);
    let id = created.id();
    let path = format!("/api/v1/contacts/{id}");
    let read = h.get(&token, &path).await;
    assert_eq!((read.status, read.header("etag")), (StatusCode::OK, Some("\"1\"")));
    assert_eq!(read.data()["owner_id"], json!(h.w.user.user_id()));
    // PATCH changes only what is sent; null clears.
    let changed = h.patch(&token, &path, Some("\"1\""), json!({ "position": "Admiral", "email": null })).await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!((changed.data()["position"].as_str(), &changed.data()["email"]), (Some("Admiral"), &Value::Null));
    assert_eq!(changed.data()["last_name"], "Hopper");
    // A stale version is refused, by header or by body.
    let stale = h.patch(&token, &path, Some("\"1\""), json!({ "position": "Captain" })).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "version_conflict"));
    let stale = h.patch(&token, &path, None, json!({ "position": "Captain", "version": 1 })).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let bad_tag = h.patch(&token, &path, Some("yesterday"), json!({ "position": "Captain" })).await;
    assert_eq!(bad_tag.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_tag.body["error"]["details"][0]["field"], "If-Match");
    // Fields nobody may set are refused, not ignored.
    for (field, value) in [("tenant_id", json!("x")), ("meta", json!({})), ("lead_id", json!(null))] {
        let refused = h.patch(&token, &path, None, json!({ field: value })).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(refused.body["error"]["details"][0]["field"], field);
    }
    let deleted = h
        .call(
            Method::DELETE,
            &path,
            &[("authorization", &format!("Bearer {token}")), ("if-match", "\"2\"")],
            Body::None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(h.get(&token, &path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.delete(&token, &path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listings_filter_sort_page_and_count() {
    let h = harness().await;
    let token = h.token(&h.w.manager).await;
    for (first, last) in [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Edsger", "Dijkstra")] {
        contact(&h, &token, first, last).await;
    }
    let page = h.get(&token, "/api/v1/contacts?sort=last_name&limit=3&total=true").await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let names: Vec<&str> = page.data().as_array().unwrap().iter().map(|c| c["last_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Dijkstra", "Hopper", "Lovelace"]);
    assert_eq!(page.body["pagination"]["limit"], 3);
    assert_eq!(page.body["pagination"]["total"], 4);
    let cursor = page.body["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    let next = h.get(&token, &format!("/api/v1/contacts?sort=last_name&limit=3&cursor={cursor}")).await;
    assert_eq!(next.data()[0]["last_name"], "Turing");
    assert!(next.body["pagination"].get("next_cursor").is_none(), "last page");
    let desc = h.get(&token, "/api/v1/contacts?sort=-last_name&limit=1").await;
    assert_eq!(desc.data()[0]["last_name"], "Turing");
    let searched = h.get(&token, "/api/v1/contacts?search=hopp").await;
    assert_eq!(searched.data().as_array().unwrap().len(), 1);
    let mine = h.get(&token, &format!("/api/v1/contacts?owner_id={}", h.w.manager.user_id())).await;
    assert_eq!(mine.data().as_array().unwrap().len(), 4);
    let nobody = h.get(&token, &format!("/api/v1/contacts?owner_id={}", h.w.user.user_id())).await;
    assert_eq!(nobody.data().as_array().unwrap().len(), 0);
    // Bad paging and filters are 422 naming the parameter.
    for (query, field) in [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("sort=password", "sort"),
        ("cursor=bogus", "cursor"),
        ("owner_id=not-a-uuid", "owner_id"),
        ("colour=red", "colour"),
    ] {
        let reply = h.get(&token, &format!("/api/v1/contacts?{query}")).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["details"][0]["field"], field, "{query}");
    }
    let leads = h.get(&token, "/api/v1/leads?statuses=new,contacted&min_score=10").await;
    assert_eq!(leads.status, StatusCode::OK, "{:?}", leads.body);
    let bad_status = h.get(&token, "/api/v1/leads?statuses=new,won").await;
    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_status.body["error"]["details"][0]["field"], "statuses");
}

#[tokio::test]
async fn a_sale_from_quote_to_paid_invoice_with_exact_money() {
    let h = harness().await;
    let token = h.token(&h.w.manager).await;
    let company = h.w.client_company.meta.id;
    let line = json!({
        "product_id": null, "description": "Consulting", "quantity": "3", "unit_price": "1234.50",
        "discount_percent": "0", "tax_rate": "20"
    });
    let quote = h
        .post(
            &token,
            "/api/v1/quotes",
            json!({
                "company_id": company, "contact_id": null, "deal_id": null, "owner_id": null, "currency": "EUR",
                "lines": [line.clone()], "valid_until": "2026-04-30", "notes": null
            }),
        )
        .await;
    assert_eq!(quote.status, StatusCode::CREATED, "{:?}", quote.body);
    let quote_id = quote.id();
    // Money as a JSON number is refused, naming the field.
    let mut float_line = line.clone();
    float_line["unit_price"] = json!(1234.5);
    let refused = h
        .post(
            &token,
            "/api/v1/quotes",
            json!({
                "company_id": company, "contact_id": null, "deal_id": null, "owner_id": null, "currency": "EUR",
                "lines": [float_line], "valid_until": "2026-04-30", "notes": null
            }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["error"]["details"][0]["field"], "lines[0].unit_price");
    // Accepting before sending is a refused transition.
    let early = h.post(&token, &format!("/api/v1/quotes/{quote_id}/accept"), json!({})).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "invalid_transition"));
    let sent = h.post(&token, &format!("/api/v1/quotes/{quote_id}/send"), json!({})).await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let accepted = h.post(&token, &format!("/api/v1/quotes/{quote_id}/accept"), json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    let invoice_id = accepted.data()["invoice"]["meta"]["id"].as_str().unwrap().to_owned();
    let issued = h.post(&token, &format!("/api/v1/invoices/{invoice_id}/issue"), json!({})).await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let total = issued.data()["totals"]["total"].as_str().unwrap().to_owned();
    assert_eq!(total, "4444.20", "3 × 1234.50 + 20 % tax, exactly: {}", issued.data());
    let paid = h
        .post(
            &token,
            "/api/v1/payments",
            json!({
                "invoice_id": invoice_id, "amount": total, "method": "bank_transfer", "paid_on": null, "reference": null
            }),
        )
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    let invoice = h.get(&token, &format!("/api/v1/invoices/{invoice_id}")).await;
    assert_eq!(invoice.data()["status"], "paid");
    let over = h
        .post(
            &token,
            "/api/v1/payments",
            json!({
                "invoice_id": invoice_id, "amount": "0.01", "method": "cash", "paid_on": null, "reference": null
            }),
        )
        .await;
    assert!(over.status.is_client_error(), "no payment past the total: {:?}", over.status);
}

#[tokio::test]
async fn lead_conversion_and_deal_stages() {
    let h = harness().await;
    let token = h.token(&h.w.user).await;
    let lead = h
        .post(
            &token,
            "/api/v1/leads",
            json!({
                "first_name": "Linus", "last_name": "T", "email": null, "phone": null, "company_name": "Kernel Co",
                "source": "referral", "score": 70, "owner_id": null, "notes": null
            }),
        )
        .await;
    assert_eq!(lead.status, StatusCode::CREATED, "{:?}", lead.body);
    let id = lead.id();
    let unknown = h.post(&token, &format!("/api/v1/leads/{id}/status"), json!({ "status": "famous" })).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["error"]["details"][0]["field"], "status");
    let contacted = h.post(&token, &format!("/api/v1/leads/{id}/status"), json!({ "status": "contacted" })).await;
    assert_eq!(contacted.status, StatusCode::OK, "{:?}", contacted.body);
    let converted = h
        .post(
            &token,
            &format!("/api/v1/leads/{id}/convert"),
            json!({
                "company": { "mode": "new", "value": null },
                "deal": { "title": "Kernel support", "amount": "5000.00", "currency": "EUR" }
            }),
        )
        .await;
    assert_eq!(converted.status, StatusCode::OK, "{:?}", converted.body);
    assert_eq!(converted.data()["company"]["name"], "Kernel Co");
    let deal_id = converted.data()["deal"]["meta"]["id"].as_str().unwrap().to_owned();
    let won = h.post(&token, &format!("/api/v1/deals/{deal_id}/stage"), json!({ "stage": "closed_won" })).await;
    assert_eq!(won.status, StatusCode::OK, "{:?}", won.body);
    assert_eq!(won.data()["stage"], "closed_won");
}

#[tokio::test]
async fn malformed_bodies_are_4xx_with_a_clear_message() {
    let h = harness().await;
    let token = h.token(&h.w.admin).await;
    let cases = [
        (json!({ "first_name": 5, "last_name": "B" }), "first_name"),
        (json!({ "last_name": "B" }), "first_name"),
        (json!({ "first_name": "A", "last_name": "B", "owner_id": "nope" }), "owner_id"),
        (json!({ "first_name": "A", "last_name": "B", "colour": "red" }), "colour"),
        (json!(["not", "an", "object"]), "body"),
        (json!({ "first_name": "", "last_name": "B" }), "first_name"),
    ];
    for (body, field) in cases {
        let reply = h.post(&token, "/api/v1/contacts", body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["details"][0]["field"], field, "{body}");
    }
    let users = h
        .post(&token, "/api/v1/users", json!({
            "email": "x@acme.test", "password": "long-enough", "first_name": "X", "last_name": "Y", "role": "overlord",
            "company_id": null
        }))
        .await;
    assert_eq!(users.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(users.body["error"]["details"][0]["field"], "role");
    let raw = h
        .call(Method::POST, "/api/v1/contacts", &[("authorization", &format!("Bearer {token}"))], Body::Raw("not json"))
        .await;
    assert_eq!(raw.status, StatusCode::BAD_REQUEST);
    assert!(!raw.body["error"]["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn reports_notifications_and_api_info() {
    let h = harness().await;
    let manager = h.token(&h.w.manager).await;
    let pipeline = h.get(&manager, "/api/v1/reports/pipeline").await;
    assert_eq!(pipeline.status, StatusCode::OK, "{:?}", pipeline.body);
    let missing = h.get(&manager, "/api/v1/reports/revenue-by-month").await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ranged = h.get(&manager, "/api/v1/reports/revenue-by-month?from=2026-01-01&to=2026-04-01").await;
    assert_eq!(ranged.status, StatusCode::OK, "{:?}", ranged.body);
    assert_eq!(h.get(&manager, "/api/v1/reports/horoscope").await.status, StatusCode::NOT_FOUND);
    // Assigning a task notifies the assignee, who reads and marks it.
    let project = h
        .post(
            &manager,
            "/api/v1/projects",
            json!({
                "name": "Rollout", "company_id": h.w.client_company.meta.id, "deal_id": null, "manager_id": null,
                "start_date": null, "end_date": null
            }),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{:?}", project.body);
    let task = h
        .post(
            &manager,
            "/api/v1/tasks",
            json!({
                "project_id": project.id(), "milestone_id": null, "title": "Install", "description": null,
                "assignee_id": h.w.user.user_id(), "due_date": null
            }),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED, "{:?}", task.body);
    let user = h.token(&h.w.user).await;
    let inbox = h.get(&user, "/api/v1/notifications?unread_only=true").await;
    assert_eq!(inbox.data().as_array().unwrap().len(), 1, "{:?}", inbox.body);
    let all_read = h.post(&user, "/api/v1/notifications/read-all", json!({})).await;
    assert_eq!(all_read.data()["marked"], 1);
    let info = h.call(Method::GET, "/api/v1", &[], Body::None).await;
    assert_eq!((info.status, info.data()["name"].as_str()), (StatusCode::OK, Some("crm-rs")));
    let health = h.call(Method::GET, "/health", &[], Body::None).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = h.call(Method::GET, "/health/ready", &[], Body::None).await;
    assert_eq!((ready.status, ready.data()["storage"].as_str()), (StatusCode::OK, Some("memory")));
}

/// `--require-if-match`: every update, delete and state change that names no version
/// is 428 and changes nothing; the same writes with `If-Match` (or a body `version`)
/// go through.
#[tokio::test]
async fn required_versions_refuse_writes_without_if_match() {
    let h = harness_requiring_versions().await;
    let token = h.token(&h.w.manager).await;
    let auth = format!("Bearer {token}");
    let id = contact(&h, &token, "Ada", "Lovelace").await;
    let path = format!("/api/v1/contacts/{id}");
    let blind = h.patch(&token, &path, None, json!({ "position": "Countess" })).await;
    assert_eq!((blind.status, blind.code()), (StatusCode::PRECONDITION_REQUIRED, "precondition_required"));
    assert_eq!(blind.body["error"]["details"][0]["field"], "If-Match");
    let blind = h.delete(&token, &path).await;
    assert_eq!(blind.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(h.get(&token, &path).await.header("etag"), Some("\"1\""), "nothing changed");
    let by_header = h.patch(&token, &path, Some("\"1\""), json!({ "position": "Countess" })).await;
    assert_eq!(by_header.status, StatusCode::OK, "{:?}", by_header.body);
    let by_body = h.patch(&token, &path, None, json!({ "position": "Analyst", "version": 2 })).await;
    assert_eq!(by_body.status, StatusCode::OK, "{:?}", by_body.body);
    // A state change (a shared action and a resource's own) is a write too.
    let lead = h
        .post(&token, "/api/v1/leads", json!({ "first_name": "Alan", "last_name": "Turing", "source": "website" }))
        .await;
    assert_eq!(lead.status, StatusCode::CREATED, "{:?}", lead.body);
    let status_path = format!("/api/v1/leads/{}/status", lead.id());
    let blind = h.post(&token, &status_path, json!({ "status": "contacted" })).await;
    assert_eq!(blind.status, StatusCode::PRECONDITION_REQUIRED);
    let versioned = h.post(&token, &status_path, json!({ "status": "contacted", "version": 1 })).await;
    assert_eq!(versioned.status, StatusCode::OK, "{:?}", versioned.body);
    let deleted = h.call(Method::DELETE, &path, &[("authorization", &auth), ("if-match", "\"3\"")], Body::None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
}

/// Without the flag, versions stay optional.
#[tokio::test]
async fn versions_are_optional_by_default() {
    let h = harness().await;
    let token = h.token(&h.w.manager).await;
    let id = contact(&h, &token, "Ada", "Lovelace").await;
    let path = format!("/api/v1/contacts/{id}");
    assert_eq!(h.patch(&token, &path, None, json!({ "position": "Countess" })).await.status, StatusCode::OK);
    assert_eq!(h.delete(&token, &path).await.status, StatusCode::OK);
}
