//! The principal cache: a credential authenticated a moment ago is not read again, a
//! revocation through the same CRM applies at once, and one made by another server
//! sharing the storage applies within the cache's TTL.

use chrono::Duration;
use crm_core::{
    Crm, CrmError, Role,
    access::{api_keys::NewApiKey, sessions::ClientInfo, users::UserPatch},
    passwords::PasswordPolicy,
    principal_cache::DEFAULT_PRINCIPAL_TTL,
};

use crate::support::{World, world};

/// Another server's CRM on the same storage and clock, with its own cache.
fn second_server(w: &World) -> Crm {
    Crm::builder(w.crm.storage().clone()).clock(w.clock.clone()).passwords(PasswordPolicy::insecure_fast()).build()
}

fn ttl() -> Duration {
    Duration::from_std(DEFAULT_PRINCIPAL_TTL).unwrap()
}

#[tokio::test]
async fn a_session_revoked_elsewhere_stops_within_the_ttl_and_here_at_once() {
    let w = world().await;
    let (tenant, user) = (w.user.tenant_id(), w.user.user_uuid());
    let first = w.crm.sessions().start(&w.user, &ClientInfo::default()).await.unwrap();
    let second = w.crm.sessions().start(&w.user, &ClientInfo::default()).await.unwrap();
    let (first, second) = (first.session.meta.id.into(), second.session.meta.id.into());
    let here = w.crm.sessions();
    here.authenticate(tenant, first, user).await.unwrap();
    here.authenticate(tenant, second, user).await.unwrap();

    let elsewhere = second_server(&w);
    elsewhere.sessions().sign_out(&w.user, first).await.unwrap();
    assert!(matches!(elsewhere.sessions().authenticate(tenant, first, user).await, Err(CrmError::Unauthenticated)));
    // This server read the session less than the TTL ago: it has not seen the change.
    w.clock.set(w.crm.now() + ttl() - Duration::milliseconds(1));
    let cached = here.authenticate(tenant, first, user).await.unwrap();
    assert_eq!(cached.session_uuid(), Some(first.uuid()));
    w.clock.set(w.crm.now() + Duration::milliseconds(1));
    assert!(matches!(here.authenticate(tenant, first, user).await, Err(CrmError::Unauthenticated)));

    // A revocation through this CRM applies at once.
    here.authenticate(tenant, second, user).await.unwrap();
    here.sign_out(&w.user, second).await.unwrap();
    assert!(matches!(here.authenticate(tenant, second, user).await, Err(CrmError::Unauthenticated)));
}

#[tokio::test]
async fn a_cached_session_names_its_own_user_only() {
    let w = world().await;
    let issued = w.crm.sessions().start(&w.user, &ClientInfo::default()).await.unwrap();
    let (tenant, id) = (w.user.tenant_id(), issued.session.meta.id.into());
    w.crm.sessions().authenticate(tenant, id, w.user.user_uuid()).await.unwrap();
    let other = w.crm.sessions().authenticate(tenant, id, w.admin.user_uuid()).await;
    assert!(matches!(other, Err(CrmError::Unauthenticated)), "{other:?}");
}

#[tokio::test]
async fn user_changes_apply_here_at_once_and_elsewhere_within_the_ttl() {
    let w = world().await;
    let (tenant, user) = (w.user.tenant_id(), w.user.user_uuid());
    let issued = w.crm.sessions().start(&w.user, &ClientInfo::default()).await.unwrap();
    let id = issued.session.meta.id.into();
    let elsewhere = second_server(&w);
    assert_eq!(w.crm.sessions().authenticate(tenant, id, user).await.unwrap().role(), Role::User);
    assert_eq!(elsewhere.sessions().authenticate(tenant, id, user).await.unwrap().role(), Role::User);

    let promote = UserPatch { role: Some(Role::Manager), ..UserPatch::default() };
    w.crm.users().update(&w.admin, w.user.user_id(), promote).await.unwrap();
    assert_eq!(w.crm.sessions().authenticate(tenant, id, user).await.unwrap().role(), Role::Manager);
    assert_eq!(elsewhere.sessions().authenticate(tenant, id, user).await.unwrap().role(), Role::User, "cached");
    w.clock.set(w.crm.now() + ttl());
    assert_eq!(elsewhere.sessions().authenticate(tenant, id, user).await.unwrap().role(), Role::Manager);

    let deactivate = UserPatch { active: Some(false), ..UserPatch::default() };
    elsewhere.users().update(&w.admin, w.user.user_id(), deactivate).await.unwrap();
    assert!(matches!(elsewhere.sessions().authenticate(tenant, id, user).await, Err(CrmError::Unauthenticated)));
    w.clock.set(w.crm.now() + ttl());
    assert!(matches!(w.crm.sessions().authenticate(tenant, id, user).await, Err(CrmError::Unauthenticated)));
}

#[tokio::test]
async fn api_keys_revoked_elsewhere_stop_within_the_ttl_and_wrong_secrets_never_hit() {
    let w = world().await;
    let input =
        NewApiKey { name: "k".into(), owner_id: None, scopes: vec!["*:read".parse().unwrap()], expires_at: None };
    let (key, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    let principal = w.crm.api_keys().authenticate(&token).await.unwrap();
    assert_eq!(principal.api_key_uuid(), Some(key.meta.id));
    // The same prefix with another secret is a different credential.
    let mut forged = token.clone();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    assert!(matches!(w.crm.api_keys().authenticate(&forged).await, Err(CrmError::Unauthenticated)));

    second_server(&w).api_keys().revoke(&w.admin, key.meta.id.into(), None).await.unwrap();
    w.crm.api_keys().authenticate(&token).await.unwrap();
    w.clock.set(w.crm.now() + ttl());
    assert!(matches!(w.crm.api_keys().authenticate(&token).await, Err(CrmError::Unauthenticated)));

    // Through this CRM, at once.
    let input =
        NewApiKey { name: "k2".into(), owner_id: None, scopes: vec!["*:read".parse().unwrap()], expires_at: None };
    let (key, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    w.crm.api_keys().authenticate(&token).await.unwrap();
    w.crm.api_keys().revoke(&w.admin, key.meta.id.into(), None).await.unwrap();
    assert!(matches!(w.crm.api_keys().authenticate(&token).await, Err(CrmError::Unauthenticated)));
}

#[tokio::test]
async fn a_cached_principal_never_outlives_its_session() {
    let w = world().await;
    let (tenant, user) = (w.user.tenant_id(), w.user.user_uuid());
    let issued = w.crm.sessions().start(&w.user, &ClientInfo::default()).await.unwrap();
    let id = issued.session.meta.id.into();
    // Read one millisecond before the session expires.
    w.clock.set(issued.session.expires_at - Duration::milliseconds(1));
    w.crm.sessions().authenticate(tenant, id, user).await.unwrap();
    w.clock.set(issued.session.expires_at);
    assert!(matches!(w.crm.sessions().authenticate(tenant, id, user).await, Err(CrmError::Unauthenticated)));
}

#[tokio::test]
async fn without_a_cache_every_authentication_reads() {
    let w = World::with(crm_core::storage::memory::MemoryStorage::shared(), |b| {
        b.principal_cache(std::time::Duration::ZERO, 0)
    })
    .await;
    let (tenant, user) = (w.user.tenant_id(), w.user.user_uuid());
    let issued = w.crm.sessions().start(&w.user, &ClientInfo::default()).await.unwrap();
    let id = issued.session.meta.id.into();
    w.crm.sessions().authenticate(tenant, id, user).await.unwrap();
    second_server(&w).sessions().sign_out(&w.user, id).await.unwrap();
    assert!(matches!(w.crm.sessions().authenticate(tenant, id, user).await, Err(CrmError::Unauthenticated)));
}
