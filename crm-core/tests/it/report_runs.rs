//! Report runs: requested with the same decision as a report, computed by the worker's
//! call as the requester, visible to the requester only, expired and purged.

use chrono::Duration;
use crm_core::{
    CrmError, Role,
    access::users::UserPatch,
    customers::deals::{DealStage, NewDeal},
    jobs::{JobQueue, StorageJobQueue},
    money::Currency,
    reports::{
        ReportName, ReportParams,
        runs::{REPORTS_QUEUE, ReportFormat, RunStatus},
    },
    schedule::Job,
};
use rust_decimal_macros::dec;

use crate::support::world;

/// Runs every queued report job once, as a worker would; says how many ran.
async fn work(crm: &crm_core::Crm, queue: &dyn JobQueue) -> usize {
    let jobs = queue.reserve_many(REPORTS_QUEUE, std::time::Duration::from_secs(60), 100).await.unwrap();
    for reservation in &jobs {
        crm.report_runs().run_job(&reservation.job).await.unwrap();
        queue.ack(reservation).await.unwrap();
    }
    jobs.len()
}

fn queue(w: &crate::support::World) -> StorageJobQueue {
    StorageJobQueue::new(w.crm.storage().clone(), w.clock.clone())
}

#[tokio::test]
async fn a_run_is_computed_as_json_and_csv_for_its_requester_only() {
    let w = world().await;
    let (crm, q) = (&w.crm, queue(&w));
    let deal = NewDeal {
        title: "Big".into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount: dec!(1000.00),
        currency: Currency::EUR,
        stage: Some(DealStage::Proposal),
        expected_close_date: None,
    };
    crm.deals().create(&w.manager, deal).await.unwrap();
    let runs = crm.report_runs();
    let params = ReportParams::default();
    let json = runs.request(&w.manager, ReportName::Pipeline, params, ReportFormat::Json).await.unwrap();
    let csv = runs.request(&w.manager, ReportName::Pipeline, params, ReportFormat::Csv).await.unwrap();
    assert_eq!(json.status, RunStatus::Queued);
    assert!(runs.result(&w.manager, json.meta.id.into()).await.is_err(), "no result before the worker ran");

    assert_eq!(work(crm, &q).await, 2);
    let (format, body) = runs.result(&w.manager, json.meta.id.into()).await.unwrap();
    let direct = crm.reports().compute(&w.manager, ReportName::Pipeline, &params).await.unwrap();
    assert_eq!((format, body), (ReportFormat::Json, serde_json::to_string(&direct).unwrap()));
    let (format, body) = runs.result(&w.manager, csv.meta.id.into()).await.unwrap();
    assert_eq!(format, ReportFormat::Csv);
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("stage,currency,deals,value,weighted_value"));
    assert!(lines.next().unwrap().starts_with("proposal,EUR,1,1000.00,"), "{body}");
    assert_eq!(runs.get(&w.manager, json.meta.id.into()).await.unwrap().status, RunStatus::Done);

    // The admin may run reports too, but sees only its own runs; users may not at all.
    for other in [&w.admin, &w.user] {
        let err = runs.get(other, json.meta.id.into()).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound { .. } | CrmError::Forbidden(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_run_is_refused_as_the_report_would_be() {
    let w = world().await;
    let (runs, q) = (w.crm.report_runs(), queue(&w));
    let none = ReportParams::default();
    let err = runs.request(&w.user, ReportName::Pipeline, none, ReportFormat::Json).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let err = runs.request(&w.manager, ReportName::TopProducts, none, ReportFormat::Csv).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.to_string().contains("from")), "{err:?}");
    assert_eq!(q.reserve_many(REPORTS_QUEUE, std::time::Duration::from_secs(60), 10).await.unwrap().len(), 0);
}

#[tokio::test]
async fn a_requester_who_lost_the_right_gets_a_failed_run() {
    let w = world().await;
    let (crm, q) = (&w.crm, queue(&w));
    let runs = crm.report_runs();
    let params = ReportParams::default();
    let run = runs.request(&w.manager, ReportName::WinRate, params, ReportFormat::Json).await.unwrap();
    let demote = UserPatch { role: Some(Role::User), ..Default::default() };
    crm.users().update(&w.admin, w.manager.user_uuid().into(), demote).await.unwrap();
    assert_eq!(work(crm, &q).await, 1);
    let stored = runs.get(&w.admin, run.meta.id.into()).await;
    assert!(stored.is_err(), "another user never sees the run");
    // The demoted manager may not read runs any more either: the run failed, unseen.
    let failed: crm_core::reports::runs::ReportRun = {
        let raw = crm.storage().get(run.meta.tenant_id, crm_core::storage::EntityKind::ReportRun, run.meta.id);
        raw.await.unwrap().unwrap().data.decode().unwrap()
    };
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.error.unwrap().contains("may not"), "the error says why");
    assert_eq!(failed.result, None);
}

#[tokio::test]
async fn runs_expire_after_the_retention_and_the_purge_deletes_them() {
    let w = world().await;
    let (crm, q) = (&w.crm, queue(&w));
    let runs = crm.report_runs();
    let params = ReportParams::default();
    let run = runs.request(&w.manager, ReportName::LeadConversion, params, ReportFormat::Json).await.unwrap();
    assert_eq!(run.expires_at, run.meta.created_at + crm_core::DEFAULT_REPORT_RETENTION);
    work(crm, &q).await;
    w.clock.set(run.expires_at - Duration::seconds(1));
    assert_eq!(runs.get(&w.manager, run.meta.id.into()).await.unwrap().status, RunStatus::Done);
    w.clock.set(run.expires_at);
    assert!(matches!(runs.get(&w.manager, run.meta.id.into()).await, Err(CrmError::NotFound { .. })));
    let tenant = w.manager.tenant_id();
    assert!(Job::Purge.run(crm, tenant).await.unwrap() >= 1);
    let gone = crm.storage().get(tenant, crm_core::storage::EntityKind::ReportRun, run.meta.id).await.unwrap();
    assert!(gone.is_none(), "purged");
}
