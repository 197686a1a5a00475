//! Webhook endpoints (admins only) and their delivery log: validation against the
//! catalogue and the URL rules, the secret shown only when made, the role × action
//! walls, planning deliveries for an event, and recording attempts on the schedule.

use chrono::Duration;
use crm_core::{
    Crm, CrmError, PageRequest, TenantId,
    conformance::World,
    entity::Entity,
    storage::{EntityKind, OutboxEvent, memory::MemoryStorage},
    webhooks::{
        deliveries::{AttemptReport, DeliveryState},
        endpoints::{NewWebhookEndpoint, WebhookEndpoint, WebhookEndpointPatch},
        schedule::RetrySchedule,
        signing::WebhookSecret,
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::support::world;

fn endpoint(url: &str, events: &[&str]) -> NewWebhookEndpoint {
    NewWebhookEndpoint {
        url: url.into(),
        event_types: events.iter().map(|e| (*e).to_owned()).collect(),
        description: Some("ERP".into()),
        active: None,
    }
}

fn invalid_fields(err: &CrmError) -> Vec<String> {
    match err {
        CrmError::Validation(v) => v.fields.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn event(tenant: TenantId, name: &str) -> OutboxEvent {
    OutboxEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name: name.into(),
        entity_kind: EntityKind::Invoice,
        entity_id: Uuid::now_v7(),
        payload: json!({}),
        occurred_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn the_secret_is_shown_at_creation_and_rotation_and_never_serialised_out() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    let (created, secret) = hooks.create(&w.admin, endpoint("https://erp.example/hook", &["*"])).await.unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created.signing_secret().unwrap(), WebhookSecret::parse(&secret).unwrap());
    assert_eq!(WebhookEndpoint::SECRET_FIELDS, ["secret"], "outputs and audit entries drop it");
    let (rotated, new_secret) = hooks.rotate_secret(&w.admin, created.id(), Some(1)).await.unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated.signing_secret().unwrap(), WebhookSecret::parse(&new_secret).unwrap());
    assert_eq!(
        hooks.get(&w.admin, created.id()).await.unwrap().signing_secret().unwrap(),
        rotated.signing_secret().unwrap()
    );
    let audit = w.crm.audit().list(&w.admin, &Default::default(), &PageRequest::default()).await.unwrap();
    let text = serde_json::to_string(&audit.items).unwrap();
    assert!(!text.contains(&secret[6..]) && !text.contains(&new_secret[6..]), "a secret reached the audit log");
}

#[tokio::test]
async fn urls_and_event_types_are_validated_naming_the_field() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    for url in [
        "http://erp.example/hook",
        "ftp://erp.example",
        "erp.example/hook",
        "https://user:pw@erp.example/",
        "https:///path",
        "https://erp .example/",
    ] {
        let err = hooks.create(&w.admin, endpoint(url, &["*"])).await.unwrap_err();
        assert_eq!(invalid_fields(&err), ["url"], "{url}");
    }
    let err = hooks.create(&w.admin, endpoint("https://erp.example/", &[])).await.unwrap_err();
    assert_eq!(invalid_fields(&err), ["event_types"]);
    let err = hooks
        .create(&w.admin, endpoint("https://erp.example/", &["invoice.paid", "invoice.eaten", "invoice.paid"]))
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["event_types[1]", "event_types[2]"]);
    let (ok, _) = hooks
        .create(&w.admin, endpoint("https://erp.example:8443/h?x=1", &["invoice.paid", "deal.won"]))
        .await
        .unwrap();
    let patch = WebhookEndpointPatch { url: Some("http://erp.example".into()), ..Default::default() };
    assert_eq!(invalid_fields(&hooks.update(&w.admin, ok.id(), patch).await.unwrap_err()), ["url"]);
}

#[tokio::test]
async fn http_targets_are_valid_only_when_the_server_allows_them() {
    let storage = MemoryStorage::shared();
    let w = World::new(storage.clone()).await;
    let lenient = Crm::builder(storage).clock(w.clock.clone()).webhook_allow_http(true).build();
    lenient.webhooks().create(&w.admin, endpoint("http://intranet.local/hook", &["*"])).await.unwrap();
    assert!(w.crm.webhooks().create(&w.admin, endpoint("http://intranet.local/hook", &["*"])).await.is_err());
}

#[tokio::test]
async fn only_admins_reach_webhooks_and_tenants_are_walls() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    let (mine, _) = hooks.create(&w.admin, endpoint("https://erp.example/", &["*"])).await.unwrap();
    for (role, p) in [("manager", &w.manager), ("user", &w.user), ("client", &w.client)] {
        let create = hooks.create(p, endpoint("https://erp.example/", &["*"])).await;
        assert!(matches!(create, Err(CrmError::Forbidden(_))), "{role} created: {create:?}");
        assert!(matches!(hooks.get(p, mine.id()).await, Err(CrmError::Forbidden(_))), "{role} read");
        assert!(
            matches!(hooks.list(p, None, &PageRequest::default()).await, Err(CrmError::Forbidden(_))),
            "{role} listed"
        );
        assert!(matches!(hooks.rotate_secret(p, mine.id(), None).await, Err(CrmError::Forbidden(_))), "{role} rotated");
        assert!(
            matches!(hooks.deliveries(p, mine.id(), &PageRequest::default()).await, Err(CrmError::Forbidden(_))),
            "{role} read the log"
        );
    }
    let other = World::new(w.crm.storage().clone()).await;
    assert!(matches!(other.crm.webhooks().get(&other.admin, mine.id()).await, Err(CrmError::NotFound { .. })));
    assert!(matches!(
        other.crm.webhooks().rotate_secret(&other.admin, mine.id(), None).await,
        Err(CrmError::NotFound { .. })
    ));
    assert!(other.crm.webhooks().list(&other.admin, None, &PageRequest::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn planning_makes_one_delivery_per_wanting_active_endpoint_once() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    let (all, _) = hooks.create(&w.admin, endpoint("https://a.example/", &["*"])).await.unwrap();
    let (paid, _) = hooks.create(&w.admin, endpoint("https://b.example/", &["invoice.paid"])).await.unwrap();
    hooks.create(&w.admin, endpoint("https://c.example/", &["deal.won"])).await.unwrap();
    let mut off = endpoint("https://d.example/", &["*"]);
    off.active = Some(false);
    hooks.create(&w.admin, off).await.unwrap();

    let e = event(w.admin.tenant_id(), "invoice.paid");
    let planned = hooks.plan(&e).await.unwrap();
    let mut targets: Vec<_> = planned.iter().map(|d| d.endpoint_id).collect();
    targets.sort();
    let mut expected = vec![all.id(), paid.id()];
    expected.sort();
    assert_eq!(targets, expected);
    assert!(planned.iter().all(|d| d.status == DeliveryState::Pending && d.attempts == 0 && d.event_id == e.id));
    let replayed = hooks.plan(&e).await.unwrap();
    let ids = |ds: &[crm_core::webhooks::deliveries::WebhookDelivery]| {
        let mut ids: Vec<Uuid> = ds.iter().map(|d| d.meta.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&replayed), ids(&planned), "a replayed event writes nothing twice and returns what is pending");
    let log = hooks.deliveries(&w.admin, all.id(), &PageRequest::default()).await.unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(hooks.due(w.admin.tenant_id(), w.crm.now(), 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn attempts_follow_the_schedule_and_the_last_failure_disables_the_endpoint() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    let tenant = w.admin.tenant_id();
    let (target, _) = hooks.create(&w.admin, endpoint("https://a.example/", &["*"])).await.unwrap();
    let delivery = hooks.plan(&event(tenant, "deal.won")).await.unwrap().remove(0);
    let failed = |status| AttemptReport {
        succeeded: false,
        response_status: Some(status),
        latency_ms: 12,
        error: Some(format!("the receiver answered {status}")),
    };
    let mut at = w.crm.now();
    for attempt in 1..RetrySchedule.max_attempts() {
        let after = hooks.record_attempt(tenant, delivery.id(), failed(500), at).await.unwrap();
        let due = RetrySchedule.next_attempt(delivery.meta.id, attempt, at);
        assert_eq!((after.status, after.attempts, after.next_attempt_at), (DeliveryState::Pending, attempt, due));
        assert_eq!((after.response_status, after.latency_ms), (Some(500), Some(12)));
        assert!(hooks.get(&w.admin, target.id()).await.unwrap().active, "still active after attempt {attempt}");
        assert!(hooks.due(tenant, at, 10).await.unwrap().is_empty(), "not due before its time");
        at = due.unwrap();
        assert_eq!(hooks.due(tenant, at, 10).await.unwrap().len(), 1, "due again at its time");
    }
    let last = hooks.record_attempt(tenant, delivery.id(), failed(503), at).await.unwrap();
    assert_eq!((last.status, last.attempts, last.next_attempt_at), (DeliveryState::Failed, 10, None));
    let disabled = hooks.get(&w.admin, target.id()).await.unwrap();
    assert!(!disabled.active);
    assert!(disabled.disabled_reason.as_deref().unwrap().contains("503"), "{disabled:?}");
    let again = hooks.record_attempt(tenant, delivery.id(), failed(500), at).await.unwrap_err();
    assert_eq!(invalid_fields(&again), ["status"], "a finished delivery takes no more attempts");
}

#[tokio::test]
async fn a_redelivery_is_one_more_attempt_that_does_not_disable_the_endpoint() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    let tenant = w.admin.tenant_id();
    let (target, _) = hooks.create(&w.admin, endpoint("https://a.example/", &["*"])).await.unwrap();
    let delivery = hooks.plan(&event(tenant, "deal.won")).await.unwrap().remove(0);
    let ok = AttemptReport { succeeded: true, response_status: Some(204), latency_ms: 3, error: None };
    let done = hooks.record_attempt(tenant, delivery.id(), ok, w.crm.now()).await.unwrap();
    assert_eq!((done.status, done.next_attempt_at), (DeliveryState::Succeeded, None));

    assert!(matches!(hooks.redeliver(&w.manager, target.id(), delivery.id()).await, Err(CrmError::Forbidden(_))));
    w.clock.set(w.crm.now() + Duration::minutes(1));
    let requested = hooks.redeliver(&w.admin, target.id(), delivery.id()).await.unwrap();
    assert_eq!(
        (requested.status, requested.next_attempt_at, requested.redelivery),
        (DeliveryState::Pending, Some(w.crm.now()), true)
    );
    let failed =
        AttemptReport { succeeded: false, response_status: None, latency_ms: 10_000, error: Some("timeout".into()) };
    let after = hooks.record_attempt(tenant, delivery.id(), failed, w.crm.now()).await.unwrap();
    assert_eq!((after.status, after.attempts, after.redelivery), (DeliveryState::Failed, 2, false));
    assert!(hooks.get(&w.admin, target.id()).await.unwrap().active, "a failed redelivery leaves the endpoint on");

    let (other, _) = hooks.create(&w.admin, endpoint("https://b.example/", &["*"])).await.unwrap();
    assert!(
        matches!(hooks.redeliver(&w.admin, other.id(), delivery.id()).await, Err(CrmError::NotFound { .. })),
        "only through its own endpoint"
    );
    hooks
        .update(&w.admin, target.id(), WebhookEndpointPatch { active: Some(false), ..Default::default() })
        .await
        .unwrap();
    let err = hooks.redeliver(&w.admin, target.id(), delivery.id()).await.unwrap_err();
    assert_eq!(invalid_fields(&err), ["endpoint"]);
}

#[tokio::test]
async fn deleting_an_endpoint_deletes_its_delivery_log_in_one_write() {
    let w = world().await;
    let hooks = w.crm.webhooks();
    let (target, _) = hooks.create(&w.admin, endpoint("https://a.example/", &["*"])).await.unwrap();
    for _ in 0..3 {
        hooks.plan(&event(w.admin.tenant_id(), "deal.won")).await.unwrap();
    }
    hooks.delete(&w.admin, target.id(), None).await.unwrap();
    let storage = w.crm.storage();
    let left = storage.list(w.admin.tenant_id(), EntityKind::WebhookDelivery, &Default::default()).await.unwrap();
    assert!(left.items.is_empty());
}
