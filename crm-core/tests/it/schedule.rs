//! Scheduled jobs: each job's rule on the manual clock, and runners sharing one
//! storage running each job once per period.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use crm_core::{
    PageRequest, TenantId,
    customers::companies::{Company, NewCompany},
    entity::Entity,
    leases::{Leases, StorageLeases},
    sales::invoices::NewInvoice,
    sales::lines::LineInput,
    sales::quotes::{NewQuote, QuoteStatus},
    schedule::{Job, Schedule, Scheduler},
};
use futures::future::join;
use rust_decimal_macros::dec;

use crate::support::{World, world};

async fn company(w: &World) -> Company {
    let input = NewCompany { name: "Globex".into(), ..NewCompany::default() };
    w.crm.companies().create(&w.admin, input).await.unwrap()
}

async fn today(w: &World) -> NaiveDate {
    w.crm.today(w.admin.tenant_id()).await.unwrap()
}

fn quote(company: &Company, valid_until: NaiveDate) -> NewQuote {
    NewQuote {
        company_id: company.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: crm_core::money::Currency::EUR,
        lines: vec![LineInput::new("Widget", dec!(1), dec!(10))],
        valid_until,
        notes: None,
    }
}

fn invoice(company: &Company, terms: u32) -> NewInvoice {
    NewInvoice {
        company_id: company.id(),
        contact_id: None,
        owner_id: None,
        currency: crm_core::money::Currency::EUR,
        lines: vec![LineInput::new("Work", dec!(1), dec!(100))],
        payment_terms_days: Some(terms),
        notes: None,
    }
}

fn later(w: &World, by: Duration) {
    w.clock.set(w.crm.now() + by);
}

async fn event_names(w: &World, entity: uuid::Uuid) -> Vec<String> {
    let events = w.crm.storage().outbox_pending(10_000).await.unwrap();
    events.into_iter().filter(|e| e.entity_id == entity).map(|e| e.name).collect()
}

#[tokio::test]
async fn a_sent_quote_past_its_date_expires_and_one_still_valid_stays_sent() {
    let w = world().await;
    let company = company(&w).await;
    let day = today(&w).await;
    let quotes = w.crm.quotes();
    let lapsing = quotes.create(&w.user, quote(&company, day + Duration::days(1))).await.unwrap();
    let lapsing = quotes.send(&w.user, lapsing.id(), None).await.unwrap();
    let valid = quotes.create(&w.user, quote(&company, day + Duration::days(3))).await.unwrap();
    let valid = quotes.send(&w.user, valid.id(), None).await.unwrap();
    let draft = quotes.create(&w.user, quote(&company, day + Duration::days(1))).await.unwrap();
    let tenant = w.admin.tenant_id();

    later(&w, Duration::days(1));
    assert_eq!(quotes.expire_lapsed(tenant).await.unwrap(), 0, "valid through its last day");
    later(&w, Duration::days(1));
    assert_eq!(quotes.expire_lapsed(tenant).await.unwrap(), 1);
    assert_eq!(quotes.get(&w.user, lapsing.id()).await.unwrap().status, QuoteStatus::Expired);
    assert_eq!(quotes.get(&w.user, valid.id()).await.unwrap().status, QuoteStatus::Sent);
    assert_eq!(quotes.get(&w.user, draft.id()).await.unwrap().status, QuoteStatus::Draft, "drafts were never sent");
    assert!(event_names(&w, lapsing.meta.id).await.contains(&"quote.expired".to_owned()));
    assert!(!event_names(&w, valid.meta.id).await.contains(&"quote.expired".to_owned()));
    assert_eq!(quotes.expire_lapsed(tenant).await.unwrap(), 0, "an expired quote is not expired again");
}

#[tokio::test]
async fn an_overdue_invoice_notifies_its_owner_once() {
    let w = world().await;
    let company = company(&w).await;
    let invoices = w.crm.invoices();
    let overdue = invoices.create(&w.manager, invoice(&company, 10)).await.unwrap();
    let overdue = invoices.issue(&w.manager, overdue.id(), None).await.unwrap();
    let not_yet = invoices.create(&w.manager, invoice(&company, 30)).await.unwrap();
    let not_yet = invoices.issue(&w.manager, not_yet.id(), None).await.unwrap();
    let tenant = w.admin.tenant_id();
    let told = |invoice: uuid::Uuid| {
        let w = &w;
        async move {
            let page = w.crm.notifications().list(&w.manager, false, &PageRequest::first(100)).await.unwrap();
            page.items.iter().filter(|n| n.entity_id == invoice && n.title.ends_with("is overdue")).count()
        }
    };

    later(&w, Duration::days(10));
    assert_eq!(invoices.notify_overdue(tenant).await.unwrap(), 0, "due today is not overdue");
    later(&w, Duration::days(1));
    assert_eq!(invoices.notify_overdue(tenant).await.unwrap(), 1);
    assert_eq!(told(overdue.meta.id).await, 1);
    assert_eq!(told(not_yet.meta.id).await, 0);
    assert!(event_names(&w, overdue.meta.id).await.contains(&"invoice.overdue".to_owned()));
    for _ in 0..3 {
        later(&w, Duration::hours(1));
        assert_eq!(invoices.notify_overdue(tenant).await.unwrap(), 0, "told again");
    }
    assert_eq!(told(overdue.meta.id).await, 1, "one notification per invoice");
    let stored = invoices.get(&w.manager, overdue.id()).await.unwrap();
    assert!(stored.overdue_notified_at.is_some());
}

#[test]
fn schedules_parse_and_name_what_is_wrong() {
    let schedule: Schedule = "quote-expiry=2h, purge=off".parse().unwrap();
    assert_eq!(
        schedule.periods(),
        &[
            (Job::QuoteExpiry, Duration::hours(2)),
            (Job::OverdueInvoices, Duration::hours(1)),
            (Job::Prune, Duration::hours(1))
        ]
    );
    assert_eq!("".parse::<Schedule>().unwrap(), Schedule::default());
    assert_eq!(Schedule::default().to_string(), "quote-expiry=1h,overdue-invoices=1h,purge=15m,prune=1h");
    assert_eq!(
        "purge=90s".parse::<Schedule>().unwrap().to_string(),
        "quote-expiry=1h,overdue-invoices=1h,purge=90s,prune=1h"
    );
    assert_eq!(Schedule::default().shortest(), Some(Duration::minutes(15)));
    for (bad, named) in [("quotes=1h", "quotes"), ("purge=15", "15"), ("purge=0s", "0s"), ("purge", "purge")] {
        let err = bad.parse::<Schedule>().unwrap_err();
        assert!(err.contains(named), "{bad}: {err}");
    }
}

/// Two runners on one storage tick every 5 minutes for 3 hours, racing: each job ran
/// exactly once in each of its periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_on_one_storage_run_each_job_once_per_period() {
    let w = world().await;
    let leases: Arc<dyn Leases> = Arc::new(StorageLeases::new(w.crm.storage().clone(), w.clock.clone()));
    let schedule: Schedule = "quote-expiry=1h,overdue-invoices=1h,purge=15m".parse().unwrap();
    let tenants = vec![w.admin.tenant_id()];
    let runner =
        |holder: &str| Scheduler::new(w.crm.clone(), leases.clone(), holder.into(), schedule.clone(), tenants.clone());
    let (a, b) = (runner("a"), runner("b"));
    let start = w.crm.now();
    let mut runs: Vec<(Job, i64, TenantId)> = Vec::new();
    for step in 0..36 {
        let (ran_a, ran_b) = join(a.tick(), b.tick()).await;
        for run in ran_a.into_iter().chain(ran_b) {
            assert!(run.outcome.is_ok(), "{:?} failed: {:?}", run.job, run.outcome);
            runs.push((run.job, (w.crm.now() - start).num_minutes(), run.tenant));
        }
        assert_eq!(w.crm.now() - start, Duration::minutes(5 * step));
        later(&w, Duration::minutes(5));
    }
    for (job, period) in schedule.periods() {
        let at: Vec<i64> = runs.iter().filter(|(j, _, _)| j == job).map(|(_, m, _)| *m).collect();
        let expected: Vec<i64> = (0..180).step_by(usize::try_from(period.num_minutes()).unwrap()).collect();
        assert_eq!(at, expected, "{job} ran at these minutes");
    }
}

#[tokio::test]
async fn prune_deletes_relayed_events_and_settled_deliveries_past_the_retention_only() {
    use crm_core::{
        storage::{EntityKind, OutboxEvent, WriteBatch},
        webhooks::{
            deliveries::{AttemptReport, DeliveryState},
            endpoints::NewWebhookEndpoint,
        },
    };
    let w = world().await;
    let tenant = w.admin.tenant_id();
    let hooks = w.crm.webhooks();
    let endpoint = NewWebhookEndpoint {
        url: "https://erp.example/hook".into(),
        event_types: vec!["*".into()],
        description: None,
        active: None,
    };
    let (endpoint, _) = hooks.create(&w.admin, endpoint).await.unwrap();
    let event = |n: u32| OutboxEvent {
        id: uuid::Uuid::now_v7(),
        tenant_id: tenant,
        name: "deal.won".into(),
        entity_kind: EntityKind::Deal,
        entity_id: uuid::Uuid::now_v7(),
        payload: serde_json::json!({ "n": n }),
        occurred_at: w.crm.now(),
    };
    let (done, waiting, unrelayed) = (event(1), event(2), event(3));
    let events = vec![done.clone(), waiting.clone(), unrelayed.clone()];
    w.crm.storage().commit(tenant, WriteBatch { events, ..WriteBatch::default() }).await.unwrap();
    let settled = hooks.plan(&done).await.unwrap().remove(0);
    let ok = AttemptReport { succeeded: true, response_status: Some(200), latency_ms: 5, error: None };
    hooks.record_attempt(tenant, settled.id(), ok, w.crm.now()).await.unwrap();
    let pending = hooks.plan(&waiting).await.unwrap().remove(0);
    w.crm.storage().outbox_ack(&[done.id, waiting.id]).await.unwrap();

    // Within the retention (a week by default) nothing goes.
    assert_eq!(Job::Prune.run(&w.crm, tenant).await.unwrap(), 0);
    assert_eq!(w.crm.storage().outbox_stream(tenant, 0, 10).await.unwrap().len(), 2);
    // Past it (acknowledgements are stamped by the storage's clock, the real one).
    w.clock.set(chrono::Utc::now() + Duration::days(8));
    assert_eq!(Job::Prune.run(&w.crm, tenant).await.unwrap(), 3, "two relayed events and one settled delivery");
    assert!(w.crm.storage().outbox_stream(tenant, 0, 10).await.unwrap().is_empty());
    let pending_ids: Vec<uuid::Uuid> =
        w.crm.storage().outbox_pending(100).await.unwrap().iter().map(|e| e.id).collect();
    assert!(pending_ids.contains(&unrelayed.id), "an event not relayed yet is never pruned");
    let log = hooks.deliveries(&w.admin, endpoint.id(), &crm_core::PageRequest::default()).await.unwrap().items;
    assert_eq!(
        log.iter().map(|d| (d.meta.id, d.status)).collect::<Vec<_>>(),
        vec![(pending.meta.id, DeliveryState::Pending)]
    );
    assert_eq!(Job::Prune.run(&w.crm, tenant).await.unwrap(), 0, "idempotent");
}
