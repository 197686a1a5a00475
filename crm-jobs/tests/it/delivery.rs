//! Webhook deliveries against a real receiver on 127.0.0.1.

use std::time::Duration;

use chrono::Utc;
use crm_core::{
    TenantId,
    storage::{EntityKind, OutboxEvent},
    webhooks::{
        message::WebhookMessage,
        signing::{DEFAULT_TOLERANCE, SignedHeaders, WebhookSecret, verify},
    },
};
use crm_jobs::{DeliveryFailure, DeliveryOptions, WebhookClient};
use serde_json::json;
use uuid::Uuid;

use crm_jobs::testing::{Answer, Receiver};

/// Loopback over http: what the tests' receivers need.
fn local() -> DeliveryOptions {
    DeliveryOptions { allow_http: true, allow_private: true, ..DeliveryOptions::default() }
}

fn message() -> WebhookMessage {
    let event = OutboxEvent {
        id: Uuid::now_v7(),
        tenant_id: TenantId(Uuid::now_v7()),
        name: "deal.stage_changed".into(),
        entity_kind: EntityKind::Deal,
        entity_id: Uuid::now_v7(),
        payload: json!({ "from": "prospecting", "to": "qualification" }),
        occurred_at: Utc::now(),
    };
    WebhookMessage::of(&event).unwrap()
}

#[tokio::test]
async fn a_delivery_carries_the_standard_headers_and_its_signature_verifies() {
    let receiver = Receiver::start(Answer::status(204)).await;
    let secret = WebhookSecret::generate().unwrap();
    let message = message();
    let client = WebhookClient::new(local()).unwrap();
    let outcome = client.deliver(&receiver.url("/hook"), &secret, &message, Utc::now()).await;
    assert_eq!(outcome.result, Ok(204), "{outcome:?}");

    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 1);
    let got = &requests[0];
    assert_eq!((got.path.as_str(), got.body.as_slice()), ("/hook", message.body.as_slice()));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let headers = SignedHeaders {
        id: got.header("webhook-id").unwrap(),
        timestamp: got.header("webhook-timestamp").unwrap(),
        signature: got.header("webhook-signature").unwrap(),
    };
    assert_eq!(headers.id, message.id);
    assert_eq!(verify(&secret, headers, &got.body, Utc::now(), DEFAULT_TOLERANCE), Ok(()));
    let other = WebhookSecret::generate().unwrap();
    assert!(verify(&other, headers, &got.body, Utc::now(), DEFAULT_TOLERANCE).is_err());
    let envelope: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(envelope["type"], "deal.stage_changed");
    assert_eq!(envelope["data"], json!({ "from": "prospecting", "to": "qualification" }));
}

#[tokio::test]
async fn a_500_is_a_failure_with_its_status_and_body() {
    let receiver = Receiver::start(Answer { body: b"boom".to_vec(), ..Answer::status(500) }).await;
    let client = WebhookClient::new(local()).unwrap();
    let outcome = client.deliver(&receiver.url("/"), &WebhookSecret::generate().unwrap(), &message(), Utc::now()).await;
    assert_eq!(outcome.result, Err(DeliveryFailure::Status(500)));
    assert_eq!((outcome.status(), outcome.response_body.as_slice()), (Some(500), b"boom".as_slice()));
}

#[tokio::test]
async fn a_receiver_that_hangs_is_a_timeout() {
    let receiver = Receiver::start(Answer { delay: Duration::from_secs(30), ..Answer::status(200) }).await;
    let timeout = Duration::from_millis(300);
    let client = WebhookClient::new(DeliveryOptions { timeout, ..local() }).unwrap();
    let outcome = client.deliver(&receiver.url("/"), &WebhookSecret::generate().unwrap(), &message(), Utc::now()).await;
    assert_eq!(outcome.result, Err(DeliveryFailure::Timeout(timeout)));
    assert!(outcome.latency < Duration::from_secs(5), "gave up after {:?}", outcome.latency);
}

#[tokio::test]
async fn private_targets_are_refused_by_default_before_anything_is_sent() {
    let receiver = Receiver::start(Answer::status(200)).await;
    let port = receiver.addr.port();
    let client = WebhookClient::new(DeliveryOptions { allow_http: true, ..DeliveryOptions::default() }).unwrap();
    let secret = WebhookSecret::generate().unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
        "http://10.1.2.3/".to_owned(),
    ] {
        let outcome = client.deliver(&url, &secret, &message(), Utc::now()).await;
        let Err(DeliveryFailure::Refused(why)) = &outcome.result else {
            panic!("{url} was not refused: {outcome:?}");
        };
        assert!(why.contains("--webhook-allow-private"), "{url}: the error says how to allow it: {why}");
    }
    assert!(receiver.requests().await.is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn only_https_unless_http_is_allowed_and_never_credentials() {
    let receiver = Receiver::start(Answer::status(200)).await;
    let secret = WebhookSecret::generate().unwrap();
    let strict = WebhookClient::new(DeliveryOptions { allow_private: true, ..DeliveryOptions::default() }).unwrap();
    let outcome = strict.deliver(&receiver.url("/"), &secret, &message(), Utc::now()).await;
    assert!(matches!(&outcome.result, Err(DeliveryFailure::Refused(why)) if why.contains("https")), "{outcome:?}");
    let local = WebhookClient::new(local()).unwrap();
    let with_user = format!("http://user:pw@{}/", receiver.addr);
    let outcome = local.deliver(&with_user, &secret, &message(), Utc::now()).await;
    assert!(matches!(&outcome.result, Err(DeliveryFailure::Refused(why)) if why.contains("credentials")));
    for bad in ["ftp://example.com/", "not a url", "/relative"] {
        let outcome = local.deliver(bad, &secret, &message(), Utc::now()).await;
        assert!(matches!(outcome.result, Err(DeliveryFailure::Refused(_))), "{bad}: {outcome:?}");
    }
    assert!(receiver.requests().await.is_empty());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let target = Receiver::start(Answer::status(200)).await;
    let redirect = Answer { location: Some(target.url("/elsewhere")), ..Answer::status(307) };
    let receiver = Receiver::start(redirect).await;
    let client = WebhookClient::new(local()).unwrap();
    let outcome = client.deliver(&receiver.url("/"), &WebhookSecret::generate().unwrap(), &message(), Utc::now()).await;
    assert_eq!(outcome.result, Err(DeliveryFailure::Status(307)));
    assert_eq!(receiver.requests().await.len(), 1);
    assert!(target.requests().await.is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn a_large_response_is_cut_at_64_kb() {
    let receiver = Receiver::start(Answer { body: vec![b'x'; 1024 * 1024], ..Answer::status(200) }).await;
    let client = WebhookClient::new(local()).unwrap();
    let outcome = client.deliver(&receiver.url("/"), &WebhookSecret::generate().unwrap(), &message(), Utc::now()).await;
    assert_eq!(outcome.result, Ok(200));
    assert_eq!(outcome.response_body.len(), 64 * 1024);
}
