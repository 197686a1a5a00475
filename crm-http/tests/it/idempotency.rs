//! `Idempotency-Key` (issue 10, item 29): a payment whose client is cut off before the
//! answer, retried with the same key and body, is recorded once and the retry hears the
//! first answer; another body under the same key is 422; another user's same key is
//! never replayed; a key still running is 409.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    conformance::World,
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        StreamedEvent, WriteBatch, WriteOp, memory::MemoryStorage,
    },
};
use crm_http::{AppOptions, auth::CookiePolicy, input::Versions, limits::Limits};
use poem::{
    Server,
    http::{Method, StatusCode},
    listener::{Acceptor, Listener, TcpListener},
    web::cookie::SameSite,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use uuid::Uuid;

use crate::support::{Body, Harness, Reply, harness_over};

/// Memory storage whose commits that record a payment take a while: long enough for a
/// client to give up before the answer.
struct SlowPayments(Arc<dyn Storage>);

const PAYMENT_COMMIT: Duration = Duration::from_millis(400);

#[async_trait]
impl Storage for SlowPayments {
    fn name(&self) -> &str {
        "slow-payments"
    }
    async fn get(&self, t: TenantId, k: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        self.0.get(t, k, id).await
    }
    async fn get_many(&self, t: TenantId, k: EntityKind, ids: &[Uuid]) -> Result<Vec<StoredRecord>, StorageError> {
        self.0.get_many(t, k, ids).await
    }
    async fn list(&self, t: TenantId, k: EntityKind, q: &ListQuery) -> Result<Page<StoredRecord>, StorageError> {
        self.0.list(t, k, q).await
    }
    async fn aggregate(
        &self,
        t: TenantId,
        k: EntityKind,
        q: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.0.aggregate(t, k, q).await
    }
    async fn counter(&self, t: TenantId, key: &str) -> Result<u64, StorageError> {
        self.0.counter(t, key).await
    }
    async fn commit(&self, t: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        if batch.ops.iter().any(|op| matches!(op, WriteOp::Insert(r) if r.kind == EntityKind::Payment)) {
            tokio::time::sleep(PAYMENT_COMMIT).await;
        }
        self.0.commit(t, batch).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        self.0.outbox_pending(limit).await
    }
    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        self.0.outbox_ack(ids).await
    }
    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        self.0.outbox_stream(tenant, after, limit).await
    }
    async fn outbox_position(&self) -> Result<u64, StorageError> {
        self.0.outbox_position().await
    }
    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        self.0.outbox_prune(acked_before, limit).await
    }
    async fn ping(&self) -> Result<(), StorageError> {
        self.0.ping().await
    }
}

async fn slow_harness() -> Harness {
    let w = World::new(Arc::new(SlowPayments(MemoryStorage::shared()))).await;
    let cookies = CookiePolicy { secure: false, same_site: SameSite::Lax };
    harness_over(w, Limits::in_memory(1_000_000, 1_000_000, 1_000), AppOptions::default(), cookies, Versions::Optional)
}

/// An issued invoice of 10.00 EUR; its id.
async fn issued_invoice(h: &Harness, token: &str) -> String {
    let line = json!({ "description": "Box", "quantity": "4", "unit_price": "2.50", "discount_percent": "0", "tax_rate": "0" });
    let company = h.w.client_company.meta.id;
    let invoice =
        h.post(token, "/api/v1/invoices", json!({ "company_id": company, "currency": "EUR", "lines": [line] })).await;
    assert_eq!(invoice.status, StatusCode::CREATED, "{:?}", invoice.body);
    let issued = h.post(token, &format!("/api/v1/invoices/{}/issue", invoice.id()), json!({})).await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    invoice.id()
}

async fn post_keyed(h: &Harness, token: &str, key: &str, path: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {token}");
    h.call(Method::POST, path, &[("authorization", &auth), ("idempotency-key", key)], Body::Json(body.clone())).await
}

async fn payments_of(h: &Harness, token: &str, invoice: &str) -> usize {
    let listed = h.get(token, &format!("/api/v1/payments?invoice_id={invoice}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    listed.data().as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_cut_off_before_its_answer_is_recorded_once_and_replayed_to_the_retry() {
    let h = slow_harness().await;
    let token = h.token(&h.w.manager).await;
    let invoice = issued_invoice(&h, &token).await;
    let payment = json!({ "invoice_id": invoice, "amount": "4.00", "method": "card" });
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let server =
        tokio::spawn(Server::new_with_acceptor(acceptor).run(crm_http::build(h.ctx.clone(), &AppOptions::default())));

    // The client sends the payment and hangs up while it is being committed.
    let body = payment.to_string();
    let request = format!(
        "POST /api/v1/payments HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         idempotency-key: pay-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(PAYMENT_COMMIT / 4).await;
    // A reset, as a client that crashed or timed out: the server sees the connection gone.
    stream.set_zero_linger().unwrap();
    drop(stream);
    tokio::time::sleep(PAYMENT_COMMIT * 2).await;

    let retry = post_keyed(&h, &token, "pay-1", "/api/v1/payments", &payment).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{:?}", retry.body);
    assert_eq!(retry.header("idempotency-replayed"), Some("true"), "the first answer, replayed");
    assert_eq!(payments_of(&h, &token, &invoice).await, 1, "one payment recorded");
    let again = post_keyed(&h, &token, "pay-1", "/api/v1/payments", &payment).await;
    assert_eq!((again.status, again.id()), (StatusCode::CREATED, retry.id()));
    assert_eq!(again.header("etag"), retry.header("etag"));
    server.abort();
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_another_users_key_is_not_replayed() {
    let h = slow_harness().await;
    let token = h.token(&h.w.manager).await;
    let invoice = issued_invoice(&h, &token).await;
    let payment = json!({ "invoice_id": invoice, "amount": "4.00", "method": "card" });
    let first = post_keyed(&h, &token, "k", "/api/v1/payments", &payment).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.header("idempotency-replayed"), None);
    let other_body = json!({ "invoice_id": invoice, "amount": "5.00", "method": "card" });
    let refused = post_keyed(&h, &token, "k", "/api/v1/payments", &other_body).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["details"][0]["field"], "Idempotency-Key");
    // Another user of the tenant with the same key and body: their own request runs.
    let admin = h.token(&h.w.admin).await;
    let theirs = post_keyed(&h, &admin, "k", "/api/v1/payments", &payment).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?}", theirs.body);
    assert_eq!(theirs.header("idempotency-replayed"), None);
    assert_ne!(theirs.id(), first.id());
    assert_eq!(payments_of(&h, &token, &invoice).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_still_runs_is_409() {
    let h = Arc::new(slow_harness().await);
    let token = h.token(&h.w.manager).await;
    let invoice = issued_invoice(&h, &token).await;
    let payment = json!({ "invoice_id": invoice, "amount": "4.00", "method": "card" });
    let first = tokio::spawn({
        let (h, token, payment) = (h.clone(), token.clone(), payment.clone());
        async move { post_keyed(&h, &token, "slow", "/api/v1/payments", &payment).await }
    });
    tokio::time::sleep(PAYMENT_COMMIT / 4).await;
    let early = post_keyed(&h, &token, "slow", "/api/v1/payments", &payment).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "idempotency_key_in_use"), "{:?}", early.body);
    assert_eq!(first.await.unwrap().status, StatusCode::CREATED);
    assert_eq!(payments_of(&h, &token, &invoice).await, 1);
}
