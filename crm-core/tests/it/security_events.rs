//! Security events are audit entries an admin can read: failed sign-ins, failed API-key
//! authentications, refresh-token reuse, sign-outs and every other session revocation,
//! password changes and resets. None of them carries a secret.

use chrono::Duration;
use crm_core::{
    CrmError, PageRequest, TenantId,
    access::{
        api_keys::NewApiKey,
        audit::{AuditFilter, AuditLog},
        sessions::{ClientInfo, REFRESH_GRACE},
    },
    storage::EntityKind,
};
use serde_json::Value;
use uuid::Uuid;

use crate::support::{World, world};

/// The entries about record `id`, oldest first.
async fn entries_about(w: &World, id: Uuid) -> Vec<AuditLog> {
    let filter = AuditFilter { entity_id: Some(id), ..AuditFilter::default() };
    let page = PageRequest { limit: Some(500), ..PageRequest::default() };
    w.crm.audit().list(&w.admin, &filter, &page).await.unwrap().items
}

/// The entries with `action` about record `id`.
async fn events(w: &World, id: Uuid, action: &str) -> Vec<AuditLog> {
    entries_about(w, id).await.into_iter().filter(|e| e.action == action).collect()
}

fn reason(e: &AuditLog) -> &str {
    e.changes["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn failed_sign_ins_are_audited_without_revealing_which_failed() {
    let w = world().await;
    let (users, tenant) = (w.crm.users(), w.admin.tenant_id());
    let wrong = users.authenticate(tenant, "user@acme.test", "not-the-password").await;
    let unknown = users.authenticate(tenant, " Nobody@Acme.test\u{7}", "not-the-password").await;
    assert!(matches!(wrong, Err(CrmError::Unauthenticated)) && matches!(unknown, Err(CrmError::Unauthenticated)));

    let on_user = events(&w, w.user.user_uuid(), "user.sign_in_failed").await;
    assert_eq!(on_user.len(), 1, "a wrong password is recorded on the user");
    assert_eq!((reason(&on_user[0]), on_user[0].actor_id), ("wrong_password", None));
    assert_eq!(on_user[0].entity_kind, EntityKind::User);
    assert!(!on_user[0].changes.to_string().contains("not-the-password"), "never the password");

    let on_tenant = events(&w, tenant.0, "user.sign_in_failed").await;
    assert_eq!(on_tenant.len(), 1, "an unknown email is recorded on the tenant");
    assert_eq!(reason(&on_tenant[0]), "unknown_email");
    assert_eq!(on_tenant[0].entity_kind, EntityKind::Tenant);
    assert_eq!(on_tenant[0].changes["email"], "Nobody@Acme.test", "the email as typed, printable");
}

#[tokio::test]
async fn a_sign_in_to_an_unknown_tenant_writes_nothing() {
    let w = world().await;
    let nowhere = TenantId(Uuid::now_v7());
    let signed_in = w.crm.users().authenticate(nowhere, "user@acme.test", "user-password").await;
    assert!(matches!(signed_in, Err(CrmError::Unauthenticated)));
    let query = crm_core::storage::ListQuery::default();
    let written = w.crm.storage().list(nowhere, EntityKind::AuditLog, &query).await.unwrap();
    assert!(written.items.is_empty(), "no data in a made-up tenant");
}

#[tokio::test]
async fn failed_api_key_authentications_are_audited() {
    let w = world().await;
    let keys = w.crm.api_keys();
    let input =
        NewApiKey { name: "k".into(), owner_id: None, scopes: vec!["*:read".parse().unwrap()], expires_at: None };
    let (key, token) = keys.create(&w.admin, input).await.unwrap();
    let wrong_secret = format!("{}{}", &token[..token.len() - 64], "0".repeat(64));
    assert!(matches!(keys.authenticate(&wrong_secret).await, Err(CrmError::Unauthenticated)));
    keys.revoke(&w.admin, key.meta.id.into(), None).await.unwrap();
    assert!(matches!(keys.authenticate(&token).await, Err(CrmError::Unauthenticated)));
    let failed = events(&w, key.meta.id, "api_key.authentication_failed").await;
    let reasons: Vec<&str> = failed.iter().map(reason).collect();
    assert_eq!(reasons, ["wrong_secret", "revoked"]);
    assert!(failed.iter().all(|e| !e.changes.to_string().contains(&token[token.len() - 64..])), "never the secret");

    let tenant = w.admin.tenant_id();
    let unknown = format!("crm_{}_{}_{}", tenant.0.simple(), "0".repeat(16), "0".repeat(64));
    assert!(matches!(keys.authenticate(&unknown).await, Err(CrmError::Unauthenticated)));
    let on_tenant = events(&w, tenant.0, "api_key.authentication_failed").await;
    assert_eq!(on_tenant.iter().map(reason).collect::<Vec<_>>(), ["unknown_key"]);
}

#[tokio::test]
async fn refresh_token_reuse_is_audited() {
    let w = world().await;
    let sessions = w.crm.sessions();
    let first = sessions.start(&w.user, &ClientInfo::default()).await.unwrap();
    sessions.refresh(&first.refresh_token, &ClientInfo::default()).await.unwrap();
    w.clock.set(w.crm.now() + REFRESH_GRACE + Duration::seconds(1));
    assert!(sessions.refresh(&first.refresh_token, &ClientInfo::default()).await.is_err());
    let reused = events(&w, first.session.meta.id, "session.refresh_token_reused").await;
    assert_eq!(reused.len(), 1);
    assert_eq!(reused[0].changes["user_id"], Value::String(w.user.user_uuid().to_string()));
    assert!(!reused[0].changes.to_string().contains(&first.refresh_token[70..]), "never the token");
}

#[tokio::test]
async fn sign_outs_and_revocations_are_audited_with_their_reason() {
    let w = world().await;
    let sessions = w.crm.sessions();
    let start = async || sessions.start(&w.user, &ClientInfo::default()).await.unwrap();
    let (a, b, c) = (start().await, start().await, start().await);
    sessions.sign_out(&w.user, a.session.meta.id.into()).await.unwrap();
    sessions.revoke_own(&w.user, b.session.meta.id.into()).await.unwrap();
    sessions.sign_out_everywhere(&w.user).await.unwrap();
    let (d, e) = (start().await, start().await);
    w.crm.users().change_password(&w.user, "user-password", "second-password").await.unwrap();
    let f = start().await;
    w.crm.users().reset_password(&w.admin, w.user.user_id(), "third-password").await.unwrap();
    for (issued, expected) in [
        (&a, "sign_out"),
        (&b, "revoked_by_owner"),
        (&c, "sign_out_everywhere"),
        (&d, "password_changed"),
        (&e, "password_changed"),
        (&f, "password_reset"),
    ] {
        let revoked = events(&w, issued.session.meta.id, "session.revoked").await;
        assert_eq!(revoked.iter().map(reason).collect::<Vec<_>>(), [expected], "one entry, with its reason");
        assert_eq!(revoked[0].entity_kind, EntityKind::Session);
    }
    let on_user: Vec<String> = entries_about(&w, w.user.user_uuid()).await.into_iter().map(|e| e.action).collect();
    assert!(on_user.contains(&"user.password_changed".to_owned()), "{on_user:?}");
    assert!(on_user.contains(&"user.password_reset".to_owned()), "{on_user:?}");
}
