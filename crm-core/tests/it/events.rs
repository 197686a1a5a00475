//! The event catalogue holds every event the services emit: the conformance flows and
//! the service cases run on memory storage, and every event they leave in the outbox
//! must be named in the catalogue and deserialise into its declared payload type.

use std::{collections::BTreeSet, sync::Arc};

use crm_core::{
    conformance::{World, cases},
    customers::deals::{DealStage, NewDeal},
    entity::Entity,
    money::Currency,
    sales::{
        invoices::NewInvoice,
        lines::LineInput,
        quotes::{NewQuote, Quote},
    },
    storage::{OutboxEvent, Storage, memory::MemoryStorage},
    webhooks::catalogue::{catalogue, event_type},
    work::{
        projects::{NewProject, ProjectStatus},
        tasks::{NewTask, TaskStatus},
    },
};
use rust_decimal::Decimal;
use serde_json::json;

/// Runs `case` on a fresh memory storage and returns what it left in the outbox.
async fn outbox_of<F, Fut>(case: F) -> Vec<OutboxEvent>
where
    F: FnOnce(Arc<dyn Storage>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    case(storage.clone()).await;
    storage.outbox_pending(100_000).await.unwrap()
}

async fn emitted_by_the_flows() -> Vec<OutboxEvent> {
    let mut events = Vec::new();
    events.extend(outbox_of(cases::services_crud_every_entity).await);
    events.extend(outbox_of(cases::flow_lead_conversion).await);
    events.extend(outbox_of(cases::flow_quote_to_paid_invoice).await);
    events.extend(outbox_of(cases::flow_invoice_to_delivery).await);
    events.extend(outbox_of(cases::payments_under_concurrency).await);
    events.extend(outbox_of(cases::credit_notes_and_refunds_under_concurrency).await);
    events.extend(outbox_of(cases::quote_and_delivery_numbers_under_concurrency).await);
    events.extend(outbox_of(every_remaining_transition).await);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_emitted_event_is_in_the_catalogue_with_its_payload_type() {
    let events = emitted_by_the_flows().await;
    assert!(!events.is_empty(), "the flows emitted no events");
    for event in &events {
        let declared =
            event_type(&event.name).unwrap_or_else(|| panic!("`{}` is emitted but not in the catalogue", event.name));
        declared.check_payload(&event.payload).unwrap_or_else(|e| {
            panic!("`{}` payload {} is not a {}: {e}", event.name, event.payload, declared.payload_type)
        });
        assert_eq!(event.name.split('.').next(), Some(event.entity_kind.as_str()), "{} names its kind", event.name);
    }
    let emitted: BTreeSet<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let never: Vec<&str> = catalogue().iter().map(|e| e.name).filter(|n| !emitted.contains(n)).collect();
    assert!(never.is_empty(), "catalogued but never emitted by the flows (stale or untested): {never:?}");
}

#[test]
fn catalogue_names_are_unique_and_well_formed() {
    let mut seen = BTreeSet::new();
    for event in catalogue() {
        assert!(seen.insert(event.name), "{} listed twice", event.name);
        let (kind, action) = event.name.split_once('.').unwrap();
        assert!(kind.parse::<crm_core::storage::EntityKind>().is_ok(), "{} names no entity kind", event.name);
        assert!(!action.is_empty() && action.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", event.name);
    }
}

#[test]
fn a_payload_that_is_not_the_declared_type_is_refused_naming_the_problem() {
    let stage_changed = event_type("deal.stage_changed").unwrap();
    assert!(stage_changed.check_payload(&json!({ "from": "prospecting", "to": "qualification" })).is_ok());
    let unknown =
        stage_changed.check_payload(&json!({ "from": "prospecting", "to": "qualification", "extra": 1 })).unwrap_err();
    assert!(unknown.contains("extra"), "{unknown}");
    let missing = stage_changed.check_payload(&json!({ "from": "prospecting" })).unwrap_err();
    assert!(missing.contains("to"), "{missing}");
    assert!(event_type("deal.created_yesterday").is_none());
}

/// The transitions the conformance flows do not make: deals won and lost, quotes
/// rejected and expired, a project and a task changing status.
async fn every_remaining_transition(storage: Arc<dyn Storage>) {
    let w = World::new(storage).await;
    let (crm, p) = (&w.crm, &w.manager);
    for (stage, reason) in [(DealStage::ClosedWon, None), (DealStage::ClosedLost, Some("price".to_owned()))] {
        let deal = crm.deals().create(p, deal_input()).await.unwrap();
        crm.deals().change_stage(p, deal.id(), stage, reason, None).await.unwrap();
    }
    let quotes = crm.quotes();
    let reject = quotes.send(p, quote(&w).await.id(), None).await.unwrap();
    quotes.reject(p, reject.id(), None).await.unwrap();
    let expire = quotes.send(p, quote(&w).await.id(), None).await.unwrap();
    quotes.expire(p, expire.id(), None).await.unwrap();
    let project = crm
        .projects()
        .create(
            p,
            NewProject {
                name: "Rollout".into(),
                company_id: w.client_company.id(),
                deal_id: None,
                budget: None,
                currency: None,
                start_date: None,
                end_date: None,
                manager_id: None,
            },
        )
        .await
        .unwrap();
    let task = NewTask {
        project_id: project.id(),
        milestone_id: None,
        title: "Install".into(),
        description: None,
        assignee_id: None,
        priority: None,
        due_date: None,
    };
    let task = crm.tasks().create(p, task).await.unwrap();
    crm.tasks().set_status(p, task.id(), TaskStatus::InProgress, None).await.unwrap();
    crm.projects().set_status(p, project.id(), ProjectStatus::Active, None).await.unwrap();
    // An issued invoice left unpaid past its due date: the scheduled overdue notice.
    let overdue = NewInvoice {
        company_id: w.client_company.id(),
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Support", Decimal::ONE, Decimal::new(10_000, 2))],
        payment_terms_days: Some(1),
        notes: None,
    };
    let overdue = crm.invoices().create(p, overdue).await.unwrap();
    crm.invoices().issue(p, overdue.id(), None).await.unwrap();
    w.clock.set(crm.now() + chrono::Duration::days(3));
    assert_eq!(crm.invoices().notify_overdue(w.admin.tenant_id()).await.unwrap(), 1);
}

fn deal_input() -> NewDeal {
    NewDeal {
        title: "Licences".into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount: Decimal::new(50_000, 2),
        currency: Currency::EUR,
        stage: None,
        expected_close_date: None,
    }
}

async fn quote(w: &World) -> Quote {
    let input = NewQuote {
        company_id: w.client_company.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Licence", Decimal::ONE, Decimal::new(9_999, 2))],
        valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap() + chrono::Duration::days(30),
        notes: None,
    };
    w.crm.quotes().create(&w.manager, input).await.unwrap()
}
