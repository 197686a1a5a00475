//! `/api/v1/webhooks`: the secret is shown at creation and rotation only, never in a
//! GET or a listing; bad input is 422 naming the field; the delivery log pages and a
//! redelivery is recorded.

use crm_core::{
    TenantId,
    storage::{EntityKind, OutboxEvent},
};
use poem::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::support::harness;

/// An outbox event of `tenant` that every `*` endpoint wants.
pub fn event(tenant: TenantId) -> OutboxEvent {
    OutboxEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name: "invoice.paid".into(),
        entity_kind: EntityKind::Invoice,
        entity_id: Uuid::now_v7(),
        payload: json!({}),
        occurred_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn the_secret_is_shown_at_creation_and_rotation_only() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    let created = h
        .post(&admin, "/api/v1/webhooks", json!({ "url": "https://erp.example/hook", "event_types": ["invoice.paid"] }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.data()["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created.id();
    let got = h.get(&admin, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.data()["url"], "https://erp.example/hook");
    let listed = h.get(&admin, "/api/v1/webhooks").await;
    for reply in [&got, &listed] {
        let text = reply.body.to_string();
        assert!(!text.contains(&secret[6..]) && !text.contains("\"secret\""), "a secret leaked: {text}");
    }
    let rotated = h.post(&admin, &format!("/api/v1/webhooks/{id}/rotate-secret"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new_secret = rotated.data()["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let got = h.get(&admin, &format!("/api/v1/webhooks/{id}")).await;
    assert!(!got.body.to_string().contains(&new_secret[6..]));
}

#[tokio::test]
async fn bad_urls_and_unknown_events_are_422_naming_the_field() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    for (body, field) in [
        (json!({ "url": "http://erp.example/hook", "event_types": ["*"] }), "url"),
        (json!({ "url": "https://u:p@erp.example/", "event_types": ["*"] }), "url"),
        (json!({ "url": "https://erp.example/", "event_types": ["deal.eaten"] }), "event_types[0]"),
    ] {
        let reply = h.post(&admin, "/api/v1/webhooks", body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {:?}", reply.body);
        assert!(reply.body.to_string().contains(field), "{body}: {:?}", reply.body);
    }
}

#[tokio::test]
async fn the_delivery_log_pages_and_a_redelivery_is_recorded() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    let id =
        h.post(&admin, "/api/v1/webhooks", json!({ "url": "https://erp.example/", "event_types": ["*"] })).await.id();
    for _ in 0..3 {
        h.w.crm.webhooks().plan(&event(h.w.admin.tenant_id())).await.unwrap();
    }
    let first = h.get(&admin, &format!("/api/v1/webhooks/{id}/deliveries?limit=2")).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.data().as_array().unwrap().len(), 2);
    let cursor = first.body["pagination"]["next_cursor"].as_str().expect("a next page").to_owned();
    let second = h.get(&admin, &format!("/api/v1/webhooks/{id}/deliveries?limit=2&cursor={cursor}")).await;
    assert_eq!(second.data().as_array().unwrap().len(), 1);
    let delivery = second.data()[0]["meta"]["id"].as_str().unwrap().to_owned();
    assert_eq!(second.data()[0]["status"], "pending");

    let path = format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver");
    let manager = h.token(&h.w.manager).await;
    assert_eq!(h.post(&manager, &path, json!({})).await.status, StatusCode::FORBIDDEN);
    let redelivered = h.post(&admin, &path, json!({})).await;
    assert_eq!(redelivered.status, StatusCode::OK, "{:?}", redelivered.body);
    assert_eq!(
        (redelivered.data()["status"].as_str(), redelivered.data()["redelivery"].as_bool()),
        (Some("pending"), Some(true))
    );
}

#[test]
fn the_spec_types_every_event_payload_of_the_catalogue() {
    use crm_core::webhooks::catalogue::{CATALOGUE_VERSION, catalogue};
    let spec: serde_json::Value = serde_json::from_str(crm_http::api::document()).unwrap();
    let events = &spec["x-webhook-events"];
    assert_eq!(events["catalogue_version"], CATALOGUE_VERSION);
    assert_eq!(events["events"].as_object().unwrap().len(), catalogue().len());
    for event in catalogue() {
        let reference =
            events["events"][event.name]["payload"]["$ref"].as_str().unwrap_or_else(|| panic!("{}", event.name));
        let name = reference.trim_start_matches("#/components/schemas/");
        let schema = &spec["components"]["schemas"][name];
        assert_eq!(schema["type"], "object", "{}: {reference} is not in the spec", event.name);
        assert_eq!(schema["additionalProperties"], false, "{}", event.name);
    }
}
