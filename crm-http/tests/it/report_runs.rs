//! `/reports/{name}/runs`: a report requested as a run is computed by the report
//! worker as its requester, fetched as JSON or CSV, visible to the requester only, and
//! refused as the report itself would be.

use crm_core::{
    customers::deals::{DealStage, NewDeal},
    money::Currency,
};
use crm_jobs::ReportWorker;
use poem::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

use crate::support::{Harness, harness};

async fn raw(h: &Harness, token: &str, path: &str) -> (StatusCode, String, String) {
    let response = h.cli.get(path).header("authorization", format!("Bearer {token}")).send().await.0;
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, content_type, response.into_body().into_string().await.unwrap())
}

#[tokio::test]
async fn a_run_is_computed_by_the_worker_and_fetched_as_csv_or_json_by_its_requester_only() {
    let h = harness().await;
    let deal = NewDeal {
        title: "Big".into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount: Decimal::new(100_000, 2),
        currency: Currency::EUR,
        stage: Some(DealStage::Proposal),
        expected_close_date: None,
    };
    h.w.crm.deals().create(&h.w.manager, deal).await.unwrap();
    let manager = h.token(&h.w.manager).await;
    let csv = h.post(&manager, "/api/v1/reports/pipeline/runs", json!({ "format": "csv" })).await;
    assert_eq!(csv.status, StatusCode::CREATED, "{:?}", csv.body);
    assert_eq!(csv.data()["status"], "queued");
    let json_run = h.post(&manager, "/api/v1/reports/pipeline/runs", json!({})).await;
    assert_eq!(json_run.status, StatusCode::CREATED, "{:?}", json_run.body);
    let (csv_id, json_id) = (csv.id(), json_run.id());
    let early = raw(&h, &manager, &format!("/api/v1/reports/runs/{csv_id}/result")).await;
    assert_eq!(early.0, StatusCode::UNPROCESSABLE_ENTITY, "no result before the worker ran: {}", early.2);

    assert_eq!(ReportWorker::new(h.w.crm.clone()).pass().await.unwrap(), 2);
    let run = h.get(&manager, &format!("/api/v1/reports/runs/{csv_id}")).await;
    assert_eq!((run.status, run.data()["status"].as_str()), (StatusCode::OK, Some("done")), "{:?}", run.body);
    let (status, content_type, body) = raw(&h, &manager, &format!("/api/v1/reports/runs/{csv_id}/result")).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "text/csv; charset=utf-8"));
    let mut lines = body.lines();
    assert!(lines.next().unwrap().contains("stage"), "a header line: {body}");
    assert!(lines.any(|l| l.starts_with("proposal,EUR,1,")), "{body}");
    let (status, content_type, body) = raw(&h, &manager, &format!("/api/v1/reports/runs/{json_id}/result")).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
    let direct = h.get(&manager, "/api/v1/reports/pipeline").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), direct.data().clone());

    // Another manager, an admin, another tenant: the run is the requester's alone.
    let admin = h.token(&h.w.admin).await;
    assert_eq!(h.get(&admin, &format!("/api/v1/reports/runs/{csv_id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(raw(&h, &admin, &format!("/api/v1/reports/runs/{csv_id}/result")).await.0, StatusCode::NOT_FOUND);
    let elsewhere = crm_core::conformance::World::new(h.w.crm.storage().clone()).await;
    let outsider = h.token(&elsewhere.admin).await;
    assert_eq!(h.get(&outsider, &format!("/api/v1/reports/runs/{csv_id}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_run_is_refused_as_its_report_would_be() {
    let h = harness().await;
    let manager = h.token(&h.w.manager).await;
    let user = h.token(&h.w.user).await;
    let denied = h.post(&user, "/api/v1/reports/pipeline/runs", json!({})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{:?}", denied.body);
    let unknown = h.post(&manager, "/api/v1/reports/nope/runs", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let missing =
        h.post(&manager, "/api/v1/reports/revenue-by-month/runs", json!({ "params": { "to": "2026-02-01" } })).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.body["error"]["details"][0]["field"], "from", "{:?}", missing.body);
    let bad_format = h.post(&manager, "/api/v1/reports/pipeline/runs", json!({ "format": "xlsx" })).await;
    assert_eq!(bad_format.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_format.body.to_string().contains("format"), "{:?}", bad_format.body);
    let unknown_field = h.post(&manager, "/api/v1/reports/pipeline/runs", json!({ "sql": "drop" })).await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(ReportWorker::new(h.w.crm.clone()).pass().await.unwrap(), 0, "nothing was queued");
}
