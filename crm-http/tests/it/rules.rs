//! Tenant settings, quote expiry and project closing over HTTP (issue 10, items 16, 19).

use crm_core::{
    customers::companies::NewCompany,
    entity::Entity,
    money::Currency,
    sales::lines::LineInput,
    sales::quotes::NewQuote,
    work::projects::{NewProject, ProjectStatus},
};
use poem::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

use crate::support::harness;

#[tokio::test]
async fn settings_are_read_by_every_role_and_changed_by_admins_only() {
    let h = harness().await;
    for (role, p) in h.w.principals() {
        let token = h.token(p).await;
        let read = h.get(&token, "/api/v1/settings").await;
        assert_eq!(read.status, StatusCode::OK, "{role}: {:?}", read.body);
        assert_eq!((read.data()["time_zone"].as_str(), read.header("etag")), (Some("UTC"), Some("\"0\"")), "{role}");
        if role != "admin" {
            let refused = h.patch(&token, "/api/v1/settings", None, json!({ "time_zone": "Europe/Belgrade" })).await;
            assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "forbidden"), "{role}");
        }
    }
    let admin = h.token(&h.w.admin).await;
    let bad = h.patch(&admin, "/api/v1/settings", None, json!({ "time_zone": "Europe/Atlantis" })).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", bad.body);
    assert_eq!(bad.body["error"]["details"][0]["field"], "time_zone");
    let changed = h.patch(&admin, "/api/v1/settings", Some("\"0\""), json!({ "time_zone": "Europe/Belgrade" })).await;
    assert_eq!((changed.status, changed.header("etag")), (StatusCode::OK, Some("\"1\"")), "{:?}", changed.body);
    let stale = h.patch(&admin, "/api/v1/settings", Some("\"0\""), json!({ "time_zone": "UTC" })).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let user = h.token(&h.w.user).await;
    assert_eq!(h.get(&user, "/api/v1/settings").await.data()["time_zone"], "Europe/Belgrade");
}

#[tokio::test]
async fn quotes_expire_over_http_for_those_who_may_update_them() {
    let h = harness().await;
    let valid_until = h.w.crm.today(h.w.admin.tenant_id()).await.unwrap() + chrono::Duration::days(7);
    let new = NewQuote {
        company_id: h.w.client_company.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", Decimal::ONE, Decimal::TEN)],
        valid_until,
        notes: None,
    };
    let quote = h.w.crm.quotes().create(&h.w.manager, new).await.unwrap();
    let quote = h.w.crm.quotes().send(&h.w.manager, quote.id(), None).await.unwrap();
    let path = format!("/api/v1/quotes/{}/expire", quote.id().uuid());
    let client = h.post(&h.token(&h.w.client).await, &path, json!({})).await;
    assert_eq!(client.status, StatusCode::FORBIDDEN, "a client reads its quotes but may not expire them");
    let expired = h.post(&h.token(&h.w.manager).await, &path, json!({})).await;
    assert_eq!(expired.status, StatusCode::OK, "{:?}", expired.body);
    assert_eq!(expired.data()["status"], "expired");
    let again = h.post(&h.token(&h.w.manager).await, &path, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
}

#[tokio::test]
async fn a_project_with_open_work_closes_over_http_only_with_close_open_work() {
    let h = harness().await;
    let (w, manager) = (&h.w, h.token(&h.w.manager).await);
    let company = NewCompany { name: "Co".into(), ..NewCompany::default() };
    let company = w.crm.companies().create(&w.admin, company).await.unwrap();
    let new = NewProject {
        name: "Rollout".into(),
        company_id: company.id(),
        deal_id: None,
        budget: None,
        currency: None,
        start_date: None,
        end_date: None,
        manager_id: None,
    };
    let project = w.crm.projects().create(&w.manager, new).await.unwrap();
    w.crm.projects().set_status(&w.manager, project.id(), ProjectStatus::Active, None).await.unwrap();
    w.crm.milestones().create(&w.manager, project.id(), "Go-live".into(), None).await.unwrap();
    let path = format!("/api/v1/projects/{}/status", project.id().uuid());
    let refused = h.post(&manager, &path, json!({ "status": "completed" })).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["details"][0]["field"], "close_open_work");
    let closed = h.post(&manager, &path, json!({ "status": "completed", "close_open_work": true })).await;
    assert_eq!((closed.status, closed.data()["status"].as_str()), (StatusCode::OK, Some("completed")));
}
