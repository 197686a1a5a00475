//! Products and the category tree.

use crm_core::{
    CrmError, PageRequest,
    entity::Entity,
    money::Currency,
    sales::products::{NewProduct, ProductFilter, ProductPatch},
    storage::EntityKind,
};
use rust_decimal_macros::dec;

use crate::support::world;

fn product(sku: &str) -> NewProduct {
    NewProduct {
        sku: sku.into(),
        name: format!("Product {sku}"),
        description: None,
        unit_price: dec!(9.99),
        currency: Currency::EUR,
        tax_rate: dec!(20),
        unit: None,
        category_id: None,
    }
}

#[tokio::test]
async fn skus_are_unique_per_tenant_ignoring_case() {
    let w = world().await;
    w.crm.products().create(&w.manager, product("ABC-1")).await.unwrap();
    let err = w.crm.products().create(&w.manager, product("abc-1")).await.unwrap_err();
    assert!(matches!(&err, CrmError::AlreadyExists { kind: EntityKind::Product, field } if field == "sku"), "{err:?}");
    let other = crate::support::World::new(w.crm.storage().clone()).await;
    other.crm.products().create(&other.manager, product("ABC-1")).await.unwrap();
}

#[tokio::test]
async fn only_managers_and_admins_write_the_catalog() {
    let w = world().await;
    let err = w.crm.products().create(&w.user, product("U-1")).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)));
    let p = w.crm.products().create(&w.admin, product("A-1")).await.unwrap();
    assert_eq!(w.crm.products().get(&w.user, p.id()).await.unwrap().sku, "A-1");
    assert!(matches!(w.crm.products().get(&w.client, p.id()).await, Err(CrmError::Forbidden(_))));
    let bad = ProductPatch { unit_price: Some(dec!(-1)), tax_rate: Some(dec!(101)), ..ProductPatch::default() };
    let err = w.crm.products().update(&w.manager, p.id(), bad).await.unwrap_err();
    assert!(
        matches!(&err, CrmError::Validation(v) if v.fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>() == ["unit_price", "tax_rate"])
    );
    let retired = w
        .crm
        .products()
        .update(&w.manager, p.id(), ProductPatch { active: Some(false), ..ProductPatch::default() })
        .await
        .unwrap();
    let active = ProductFilter { active: Some(true), ..ProductFilter::default() };
    assert!(
        !w.crm
            .products()
            .list(&w.user, &active, &PageRequest::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|x| x.id() == retired.id())
    );
}

#[tokio::test]
async fn category_moves_never_make_a_cycle() {
    let w = world().await;
    let cats = w.crm.product_categories();
    let a = cats.create(&w.manager, "A".into(), None).await.unwrap();
    let b = cats.create(&w.manager, "B".into(), Some(a.id())).await.unwrap();
    let c = cats.create(&w.manager, "C".into(), Some(b.id())).await.unwrap();
    for (target, parent) in [(a.id(), c.id()), (a.id(), a.id()), (b.id(), c.id())] {
        let err = cats.move_to(&w.manager, target, Some(parent), None).await.unwrap_err();
        assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "parent_id"), "{err:?}");
    }
    let moved = cats.move_to(&w.manager, c.id(), Some(a.id()), None).await.unwrap();
    assert_eq!(moved.parent_id, Some(a.id()));
    let children = cats.list(&w.user, Some(a.id()), &PageRequest::default()).await.unwrap();
    assert_eq!(children.items.len(), 2);
    let roots = cats.list(&w.user, None, &PageRequest::default()).await.unwrap();
    assert_eq!(roots.items.iter().map(|x| x.id()).collect::<Vec<_>>(), vec![a.id()]);
}

#[tokio::test]
async fn categories_and_products_in_use_cannot_be_deleted() {
    let w = world().await;
    let cats = w.crm.product_categories();
    let root = cats.create(&w.manager, "Root".into(), None).await.unwrap();
    let leaf = cats.create(&w.manager, "Leaf".into(), Some(root.id())).await.unwrap();
    let p = w
        .crm
        .products()
        .create(&w.manager, NewProduct { category_id: Some(leaf.id()), ..product("P-1") })
        .await
        .unwrap();
    let err = cats.delete(&w.manager, root.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Referenced { by: EntityKind::ProductCategory, .. }), "{err:?}");
    let err = cats.delete(&w.manager, leaf.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Referenced { by: EntityKind::Product, .. }), "{err:?}");
    w.crm.products().delete(&w.manager, p.id(), None).await.unwrap();
    cats.delete(&w.manager, leaf.id(), None).await.unwrap();
    cats.delete(&w.manager, root.id(), None).await.unwrap();
}
