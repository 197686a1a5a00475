//! Sessions (rotation, reuse detection, revocation, expiry) and legacy password hashes.

use std::sync::Arc;

use chrono::Duration;
use crm_core::{
    CrmError,
    access::{
        sessions::{ClientInfo, REFRESH_GRACE},
        users::ImportedUser,
    },
};

use crate::support::{World, world, world_on_each_session_store};

/// What an edge that knows nothing of its client passes.
fn client() -> ClientInfo {
    ClientInfo::default()
}

async fn each_store() -> Vec<World> {
    world_on_each_session_store().await
}

#[tokio::test]
async fn a_refresh_token_rotates_and_works_once() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let first = sessions.start(&w.user, &client()).await.unwrap();
        assert!(!format!("{first:?}").contains(&first.refresh_token), "the token is redacted from Debug");
        let second = sessions.refresh(&first.refresh_token, &client()).await.unwrap();
        assert_eq!(second.session.meta.id, first.session.meta.id, "rotation keeps the session");
        assert_ne!(second.refresh_token, first.refresh_token);
        let third = sessions.refresh(&second.refresh_token, &client()).await.unwrap();
        assert_eq!(third.session.user_id, w.user.user_uuid());
        sessions.active(w.user.tenant_id(), third.session.meta.id.into()).await.unwrap();
    }
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_session() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let first = sessions.start(&w.user, &client()).await.unwrap();
        let second = sessions.refresh(&first.refresh_token, &client()).await.unwrap();
        // Past the grace window, the first token coming back is reuse.
        w.clock.set(w.crm.now() + REFRESH_GRACE + Duration::seconds(1));
        assert!(matches!(sessions.refresh(&first.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
        // The legitimate holder's newer token is dead too.
        assert!(matches!(sessions.refresh(&second.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
        let id = first.session.meta.id.into();
        assert!(matches!(sessions.active(w.user.tenant_id(), id).await, Err(CrmError::Unauthenticated)));
    }
}

#[tokio::test]
async fn sign_out_revokes_and_only_the_owner_may_sign_out() {
    let w = world().await;
    let sessions = w.crm.sessions();
    let issued = sessions.start(&w.user, &client()).await.unwrap();
    let id = issued.session.meta.id.into();
    assert!(matches!(sessions.sign_out(&w.other_user, id).await, Err(CrmError::NotFound { .. })));
    sessions.active(w.user.tenant_id(), id).await.unwrap();
    sessions.sign_out(&w.user, id).await.unwrap();
    assert!(matches!(sessions.refresh(&issued.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
    assert!(matches!(sessions.active(w.user.tenant_id(), id).await, Err(CrmError::Unauthenticated)));
}

#[tokio::test]
async fn expired_forged_and_foreign_tokens_are_refused() {
    let w = world().await;
    let sessions = w.crm.sessions();
    let issued = sessions.start(&w.user, &client()).await.unwrap();
    for bad in ["", "crs_", "not a token", &issued.refresh_token[..issued.refresh_token.len() - 1]] {
        assert!(matches!(sessions.refresh(bad, &client()).await, Err(CrmError::Unauthenticated)), "{bad:?}");
    }
    // Another tenant's id in the token finds nothing.
    let other = World::new(w.crm.storage().clone()).await;
    let foreign = issued
        .refresh_token
        .replace(&w.user.tenant_id().0.simple().to_string(), &other.admin.tenant_id().0.simple().to_string());
    assert!(matches!(sessions.refresh(&foreign, &client()).await, Err(CrmError::Unauthenticated)));
    w.clock.set(w.crm.now() + Duration::days(8));
    assert!(matches!(sessions.refresh(&issued.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
}

#[tokio::test]
async fn api_keys_cannot_start_sessions() {
    let w = world().await;
    let input = crm_core::access::api_keys::NewApiKey {
        name: "k".into(),
        owner_id: None,
        scopes: vec!["*:read".parse().unwrap()],
        expires_at: None,
    };
    let (_, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    let key = w.crm.api_keys().authenticate(&token).await.unwrap();
    assert!(matches!(w.crm.sessions().start(&key, &client()).await, Err(CrmError::Forbidden(_))));
}

fn imported(email: &str, password_hash: String) -> ImportedUser {
    ImportedUser {
        email: email.into(),
        first_name: "Legacy".into(),
        last_name: "User".into(),
        role: crm_core::Role::User,
        company_id: None,
        active: true,
        password_hash,
    }
}

#[tokio::test]
async fn bcrypt_users_sign_in_and_are_rehashed_to_argon2id() {
    let w = world().await;
    let users = w.crm.users();
    let tenant = w.admin.tenant_id();
    // Cost 12, as the seed's database stores them.
    let hash = bcrypt::hash("legacy-password", 12).unwrap();
    users.import(&w.admin, imported("legacy@acme.test", hash)).await.unwrap();
    assert!(matches!(
        users.authenticate(tenant, "legacy@acme.test", "wrong-password").await,
        Err(CrmError::Unauthenticated)
    ));
    let (user, _) = users.authenticate(tenant, "legacy@acme.test", "legacy-password").await.unwrap();
    let stored = w.crm.storage().get(tenant, crm_core::storage::EntityKind::User, user.meta.id).await.unwrap().unwrap();
    let stored_hash = stored.data.to_value()["password_hash"].as_str().unwrap().to_owned();
    assert!(stored_hash.starts_with("$argon2id$"), "rehashed on sign-in, got {}", &stored_hash[..10]);
    // The new hash works, and the audit entry of the sign-in does not carry it.
    users.authenticate(tenant, "legacy@acme.test", "legacy-password").await.unwrap();
    let filter = crm_core::access::audit::AuditFilter { entity_id: Some(user.meta.id), ..Default::default() };
    let entries = w.crm.audit().list(&w.admin, &filter, &crm_core::PageRequest::default()).await.unwrap();
    assert!(!entries.items.is_empty());
    assert!(entries.items.iter().all(|e| !e.changes.to_string().contains("argon2id")));
}

#[tokio::test]
async fn imports_refuse_malformed_hashes_and_non_admins() {
    let w = world().await;
    let users = w.crm.users();
    for bad in ["", "plaintext", "$2b$12$short", "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"] {
        match users.import(&w.admin, imported("x@acme.test", bad.into())).await {
            Err(CrmError::Validation(e)) => assert_eq!(e.fields[0].field, "password_hash", "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let hash = bcrypt::hash("legacy-password", 4).unwrap();
    assert!(matches!(users.import(&w.manager, imported("y@acme.test", hash)).await, Err(CrmError::Forbidden(_))));
}

#[tokio::test]
async fn expired_sessions_are_purged_and_live_ones_stay() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let tenant = w.user.tenant_id();
        let none = client();
        let old: Vec<_> = futures::future::join_all((0..3).map(|_| sessions.start(&w.user, &none))).await;
        w.clock.set(w.crm.now() + Duration::days(8));
        let fresh = sessions.start(&w.manager, &client()).await.unwrap();
        assert_eq!(sessions.purge_expired(tenant).await.unwrap(), 3);
        assert_eq!(sessions.purge_expired(tenant).await.unwrap(), 0, "nothing left to purge");
        for issued in old {
            let refresh = sessions.refresh(&issued.unwrap().refresh_token, &client()).await;
            assert!(matches!(refresh, Err(CrmError::Unauthenticated)));
        }
        sessions.active(tenant, fresh.session.meta.id.into()).await.unwrap();
        sessions.refresh(&fresh.refresh_token, &client()).await.unwrap();
    }
}

/// Eight sign-ins of one user at once, twenty times over, on threads: each one succeeds
/// (the sign-in time is bookkeeping, not a decision the caller made on a version).
/// Also for a bcrypt user, whose first sign-ins race to replace its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_sign_ins_of_one_user_all_succeed() {
    let w = Arc::new(world().await);
    let tenant = w.admin.tenant_id();
    let hash = bcrypt::hash("legacy-password", 4).unwrap();
    w.crm.users().import(&w.admin, imported("racer@acme.test", hash)).await.unwrap();
    for round in 0..20 {
        let (email, password) =
            if round % 2 == 0 { ("user@acme.test", "user-password") } else { ("racer@acme.test", "legacy-password") };
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let w = w.clone();
                tokio::spawn(async move { w.crm.users().authenticate(tenant, email, password).await })
            })
            .collect();
        for task in tasks {
            let signed_in = task.await.unwrap();
            assert!(signed_in.is_ok(), "round {round}, {email}: {:?}", signed_in.err());
        }
    }
    let stored = w.crm.storage().get(tenant, crm_core::storage::EntityKind::User, w.user.user_id().uuid()).await;
    assert!(stored.unwrap().unwrap().data.to_value()["last_login_at"].is_string());
}
