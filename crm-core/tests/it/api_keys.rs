//! API keys: tokens, scopes, revocation and expiry.

use chrono::Duration;
use crm_core::{
    CrmError, PageRequest,
    access::api_keys::NewApiKey,
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
