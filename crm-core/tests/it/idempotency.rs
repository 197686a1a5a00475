//! Idempotency keys: claimed once, replayed once finished, refused for another request
//! or while running, per principal, reclaimable after the running lease or expiry, and
//! pruned once expired.

use crm_core::idempotency::{Claim, IDEMPOTENCY_TTL, RUNNING_LEASE, StoredResponse, fingerprint};

use crate::support::world;

fn response(body: &str) -> StoredResponse {
    StoredResponse { status: 201, headers: vec![("etag".into(), "\"1\"".into())], body: body.into() }
}

#[tokio::test]
async fn a_key_is_claimed_once_then_running_then_replayed_and_never_for_another_request() {
    let w = world().await;
    let keys = w.crm.idempotency();
    let (request, other) = (fingerprint(&[b"POST /payments", b"{}"]), fingerprint(&[b"POST /payments", b"{ }"]));
    let Claim::Started(ticket) = keys.claim(&w.manager, "k", &request).await.unwrap() else { panic!("not claimed") };
    assert_eq!(keys.claim(&w.manager, "k", &request).await.unwrap(), Claim::Running);
    keys.finish(&ticket, response("first")).await.unwrap();
    assert_eq!(keys.claim(&w.manager, "k", &request).await.unwrap(), Claim::Replay(response("first")));
    assert_eq!(keys.claim(&w.manager, "k", &other).await.unwrap(), Claim::Mismatch);
    // Another principal's same key is theirs, never this one's response.
    assert!(matches!(keys.claim(&w.admin, "k", &request).await.unwrap(), Claim::Started(_)));
}

#[tokio::test]
async fn an_abandoned_stale_or_expired_key_runs_again_and_expired_ones_are_pruned() {
    let w = world().await;
    let keys = w.crm.idempotency();
    let request = fingerprint(&[b"POST /contacts", b"{}"]);
    let Claim::Started(ticket) = keys.claim(&w.manager, "a", &request).await.unwrap() else { panic!("not claimed") };
    keys.abandon(&ticket).await.unwrap();
    assert!(matches!(keys.claim(&w.manager, "a", &request).await.unwrap(), Claim::Started(_)));
    // Still running past its lease: its server is presumed gone.
    let start = w.crm.now();
    w.clock.set(start + RUNNING_LEASE + chrono::Duration::seconds(1));
    assert!(matches!(keys.claim(&w.manager, "a", &request).await.unwrap(), Claim::Started(_)));
    let Claim::Started(done) = keys.claim(&w.manager, "b", &request).await.unwrap() else { panic!("not claimed") };
    keys.finish(&done, response("b")).await.unwrap();
    assert_eq!(keys.purge_expired(w.admin.tenant_id(), 100).await.unwrap(), 0, "nothing expired yet");
    w.clock.set(start + IDEMPOTENCY_TTL + RUNNING_LEASE + chrono::Duration::seconds(2));
    assert_eq!(keys.purge_expired(w.admin.tenant_id(), 100).await.unwrap(), 2);
    assert!(matches!(keys.claim(&w.manager, "b", &request).await.unwrap(), Claim::Started(_)));
}
