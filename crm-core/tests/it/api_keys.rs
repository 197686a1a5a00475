//! API keys: tokens, scopes, revocation and expiry.

use chrono::{DateTime, Duration, Utc};
use crm_core::{
    CrmError, PageRequest, Principal, Role,
    access::api_keys::NewApiKey,
    access::users::{ImportedUser, NewUser, UserPatch},
    authz::ApiScope,
    customers::contacts::{ContactFilter, NewContact},
    customers::deals::DealFilter,
    entity::Entity,
    money::Currency,
    sales::products::NewProduct,
};
use rust_decimal_macros::dec;

use crate::support::world;

fn scopes(list: &[&str]) -> Vec<ApiScope> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn a_scoped_key_reads_what_it_may_and_nothing_more() {
    let w = world().await;
    let input = NewApiKey {
        name: "Sync".into(),
        owner_id: Some(w.manager.user_id()),
        scopes: scopes(&["contacts:read"]),
        expires_at: None,
    };
    let (key, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    assert!(!format!("{key:?}").contains(&token[40..]), "the secret is not kept in the key");
    let p = w.crm.api_keys().authenticate(&token).await.unwrap();
    assert_eq!((p.user_id(), p.api_key_id()), (w.manager.user_id(), Some(key.id())));
    assert!(w.crm.contacts().list(&p, &ContactFilter::default(), &PageRequest::default()).await.is_ok());
    let new = NewContact { first_name: "A".into(), last_name: "B".into(), ..NewContact::default() };
    assert!(matches!(w.crm.contacts().create(&p, new).await, Err(CrmError::Forbidden(_))));
    assert!(matches!(
        w.crm.deals().list(&p, &DealFilter::default(), &PageRequest::default()).await,
        Err(CrmError::Forbidden(_))
    ));
    // Audit entries of a key's actions name the key.
    let write_key =
        NewApiKey { name: "Writer".into(), owner_id: None, scopes: scopes(&["contacts:write"]), expires_at: None };
    let (_, write_token) = w.crm.api_keys().create(&w.admin, write_key).await.unwrap();
    let writer = w.crm.api_keys().authenticate(&write_token).await.unwrap();
    let c = w
        .crm
        .contacts()
        .create(&writer, NewContact { first_name: "K".into(), last_name: "Ey".into(), ..NewContact::default() })
        .await
        .unwrap();
    let filter = crm_core::access::audit::AuditFilter { entity_id: Some(c.meta.id), ..Default::default() };
    let entries = w.crm.audit().list(&w.admin, &filter, &PageRequest::default()).await.unwrap();
    assert_eq!(entries.items[0].api_key_id, writer.api_key_id());
}

#[tokio::test]
async fn a_key_never_does_more_than_its_owner() {
    let w = world().await;
    let input = NewApiKey {
        name: "All".into(),
        owner_id: Some(w.user.user_id()),
        scopes: scopes(&["*:write"]),
        expires_at: None,
    };
    let (_, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    let p = w.crm.api_keys().authenticate(&token).await.unwrap();
    let product = NewProduct {
        sku: "K-1".into(),
        name: "Key product".into(),
        description: None,
        unit_price: dec!(1),
        currency: Currency::EUR,
        tax_rate: dec!(0),
        unit: None,
        category_id: None,
    };
    assert!(
        matches!(w.crm.products().create(&p, product).await, Err(CrmError::Forbidden(_))),
        "users cannot write products"
    );
    assert!(matches!(w.crm.api_keys().list(&p, None, &PageRequest::default()).await, Err(CrmError::Forbidden(_))));
}

#[tokio::test]
async fn wrong_revoked_expired_and_malformed_tokens_are_refused_alike() {
    let w = world().await;
    let expires = Some(w.crm.now() + Duration::days(1));
    let input = NewApiKey { name: "Temp".into(), owner_id: None, scopes: scopes(&["*:read"]), expires_at: expires };
    let (key, token) = w.crm.api_keys().create(&w.admin, input.clone()).await.unwrap();
    assert!(w.crm.api_keys().authenticate(&token).await.is_ok());
    let mut wrong = token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    for bad in [wrong.as_str(), "", "crm_", "crm_x_y_z", &token[..token.len() - 1], "Bearer nonsense"] {
        assert!(matches!(w.crm.api_keys().authenticate(bad).await, Err(CrmError::Unauthenticated)), "{bad}");
    }
    w.clock.set(w.crm.now() + Duration::days(2));
    assert!(matches!(w.crm.api_keys().authenticate(&token).await, Err(CrmError::Unauthenticated)), "expired");
    let (other, other_token) =
        w.crm.api_keys().create(&w.admin, NewApiKey { expires_at: None, ..input }).await.unwrap();
    w.crm.api_keys().revoke(&w.admin, other.id(), Some(1)).await.unwrap();
    assert!(matches!(w.crm.api_keys().authenticate(&other_token).await, Err(CrmError::Unauthenticated)), "revoked");
    assert!(
        matches!(w.crm.api_keys().get(&w.manager, key.id()).await, Err(CrmError::Forbidden(_))),
        "only admins manage keys"
    );
    let err = w
        .crm
        .api_keys()
        .create(&w.admin, NewApiKey { name: "".into(), owner_id: None, scopes: vec![], expires_at: None })
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields.len() == 2));
}

/// The principal of a fresh key of the admin's with `scopes`, expiring at `expires_at`.
async fn admin_key(w: &crate::support::World, list: &[&str], expires_at: Option<DateTime<Utc>>) -> Principal {
    let input = NewApiKey { name: "Integration".into(), owner_id: None, scopes: scopes(list), expires_at };
    let (_, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    w.crm.api_keys().authenticate(&token).await.unwrap()
}

fn key_input(list: &[&str], expires_at: Option<DateTime<Utc>>) -> NewApiKey {
    NewApiKey { name: "Minted".into(), owner_id: None, scopes: scopes(list), expires_at }
}

#[tokio::test]
async fn a_key_creates_only_keys_within_its_own_scopes_and_expiry() {
    let w = world().await;
    let expires = w.crm.now() + Duration::days(7);
    let key = admin_key(&w, &["api_keys:write", "users:read"], Some(expires)).await;
    let keys = w.crm.api_keys();
    let wider = [
        key_input(&["*:write"], Some(expires)),
        key_input(&["users:write"], Some(expires)),
        key_input(&["contacts:read"], Some(expires)),
        key_input(&["users:read"], None),
        key_input(&["users:read"], Some(expires + Duration::seconds(1))),
    ];
    for input in wider {
        let shown = format!("{:?} until {:?}", input.scopes, input.expires_at);
        let err = keys.create(&key, input).await.unwrap_err();
        assert!(matches!(err, CrmError::Forbidden(_)), "{shown}: {err:?}");
    }
    let (narrower, _) = keys
        .create(&key, key_input(&["users:read", "api_keys:read"], Some(expires - Duration::days(1))))
        .await
        .unwrap();
    assert_eq!(narrower.scopes.0, scopes(&["users:read", "api_keys:read"]));
    keys.create(&key, key_input(&["api_keys:write"], Some(expires))).await.unwrap();
    // A key without expiry and with every scope may mint any key, as its admin owner may.
    let master = admin_key(&w, &["*:write"], None).await;
    keys.create(&master, key_input(&["*:write"], None)).await.unwrap();
}

#[tokio::test]
async fn a_key_creates_no_user_who_could_do_more_than_the_key_and_changes_no_role() {
    let w = world().await;
    let key = admin_key(&w, &["users:write"], None).await;
    let users = w.crm.users();
    for role in Role::ALL {
        let input = NewUser {
            email: format!("{}@minted.test", role.as_str()),
            password: "a known password".into(),
            first_name: "Minted".into(),
            last_name: "User".into(),
            role,
            company_id: (role == Role::Client).then_some(w.client_company.meta.id),
        };
        let err = users.create(&key, input).await.unwrap_err();
        assert!(matches!(err, CrmError::Forbidden(_)), "{role:?}: {err:?}");
    }
    let imported = ImportedUser {
        email: "imported@minted.test".into(),
        first_name: "Imported".into(),
        last_name: "Admin".into(),
        role: Role::Admin,
        company_id: None,
        active: true,
        password_hash: bcrypt::hash("a known password", 4).unwrap(),
    };
    assert!(matches!(users.import(&key, imported).await, Err(CrmError::Forbidden(_))));
    let promote = UserPatch { role: Some(Role::Admin), ..UserPatch::default() };
    let err = users.update(&key, w.manager.user_id(), promote).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let demote = UserPatch { role: Some(Role::User), ..UserPatch::default() };
    let err = users.update(&key, w.manager.user_id(), demote).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let rename = UserPatch { first_name: Some("Renamed".into()), ..UserPatch::default() };
    assert_eq!(users.update(&key, w.manager.user_id(), rename).await.unwrap().first_name, "Renamed");
    // A key holding every right of the role it grants may grant it.
    let master = admin_key(&w, &["*:write"], None).await;
    let input = NewUser {
        email: "second-admin@minted.test".into(),
        password: "a known password".into(),
        first_name: "Second".into(),
        last_name: "Admin".into(),
        role: Role::Admin,
        company_id: None,
    };
    assert_eq!(users.create(&master, input).await.unwrap().role, Role::Admin);
}

#[tokio::test]
async fn a_key_cannot_change_its_owners_password() {
    let w = world().await;
    let key = admin_key(&w, &["*:write"], None).await;
    let err = w.crm.users().change_password(&key, "admin-password", "a new password").await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let t = w.admin.tenant_id();
    assert!(w.crm.users().authenticate(t, "admin@acme.test", "admin-password").await.is_ok(), "unchanged");
}
