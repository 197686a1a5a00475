//! The bulk import path: one batch of many inserts goes through binary `COPY` into
//! staging tables, is checked there and moved, all or nothing.

use std::sync::Arc;

use crm_core::{
    Id, Meta,
    conformance::{World, cases::company},
    customers::{companies::Company, contacts::Contact},
    entity::{Entity, to_record},
    money::Currency,
    sales::products::Product,
    storage::{EntityKind, Filter, ListQuery, Record, Storage, StorageError, WriteBatch, WriteOp},
};
use crm_storage_postgres::testing::fresh_storage;
use rust_decimal::Decimal;

use crate::contact_records;

#[tokio::test]
async fn a_batch_of_twenty_thousand_inserts_commits_whole() {
    let s: Arc<dyn Storage> = Arc::new(fresh_storage().await);
    let w = World::new(s.clone()).await;
    let t = w.admin.tenant_id();
    let records = contact_records(&w, 20_000);
    let ids: Vec<uuid::Uuid> = records.iter().map(|r| r.id).collect();
    let batch = WriteBatch { ops: records.into_iter().map(WriteOp::Insert).collect(), ..WriteBatch::default() };
    s.commit(t, batch).await.unwrap();

    let q = ListQuery { with_total: true, limit: 10, ..ListQuery::default() };
    assert_eq!(s.list(t, EntityKind::Contact, &q).await.unwrap().total, Some(20_000));
    let filtered = ListQuery {
        with_total: true,
        ..ListQuery::filtered(vec![Filter::eq("last_name", "Person00042"), Filter::eq("owner_id", w.admin.user_id())])
    };
    assert_eq!(s.list(t, EntityKind::Contact, &filtered).await.unwrap().total, Some(20));
    let sample = s.get_many(t, EntityKind::Contact, &[ids[0], ids[9_999], ids[19_999]]).await.unwrap();
    assert_eq!(sample.len(), 3);

    // A bulk batch with one duplicate id writes nothing at all.
    let mut again = contact_records(&w, 5_000);
    again[4_999].id = ids[123];
    let batch = WriteBatch { ops: again.into_iter().map(WriteOp::Insert).collect(), ..WriteBatch::default() };
    let err = s.commit(t, batch).await.unwrap_err();
    assert!(
        matches!(err, crm_core::storage::StorageError::AlreadyExists { ref field, .. } if field == "id"),
        "{err:?}"
    );
    assert_eq!(s.list(t, EntityKind::Contact, &q).await.unwrap().total, Some(20_000));
}

async fn world() -> (Arc<dyn Storage>, World) {
    let s: Arc<dyn Storage> = Arc::new(fresh_storage().await);
    let w = World::new(s.clone()).await;
    (s, w)
}

fn inserts(records: Vec<Record>) -> WriteBatch {
    WriteBatch { ops: records.into_iter().map(WriteOp::Insert).collect(), ..WriteBatch::default() }
}

async fn count(s: &Arc<dyn Storage>, w: &World, kind: EntityKind) -> Option<u64> {
    let q = ListQuery { with_total: true, limit: 1, ..ListQuery::default() };
    s.list(w.admin.tenant_id(), kind, &q).await.unwrap().total
}

/// Products with the SKUs `<prefix>-0` … (SKUs are unique keys).
fn products(w: &World, skus: impl IntoIterator<Item = String>) -> Vec<Record> {
    skus.into_iter()
        .map(|sku| {
            let p = Product {
                meta: Meta::new(w.admin.tenant_id(), w.crm.now()),
                name: format!("Product {sku}"),
                sku,
                description: None,
                unit_price: Decimal::ONE,
                currency: Currency::EUR,
                tax_rate: Decimal::ZERO,
                unit: "pcs".into(),
                active: true,
                category_id: None,
            };
            to_record(&p).unwrap()
        })
        .collect()
}

fn skus(prefix: &str, n: usize) -> impl Iterator<Item = String> + '_ {
    (0..n).map(move |i| format!("{prefix}-{i}"))
}

#[tokio::test]
async fn a_bulk_batch_with_one_taken_unique_key_fails_whole_and_writes_nothing() {
    let (s, w) = world().await;
    let t = w.admin.tenant_id();
    s.commit(t, inserts(products(&w, skus("A", 1_500)))).await.unwrap();
    assert_eq!(count(&s, &w, EntityKind::Product).await, Some(1_500));

    // One SKU of the batch is held by a stored product.
    let taken = products(&w, skus("B", 1_499).chain(["A-700".to_owned()]));
    let err = s.commit(t, inserts(taken)).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::AlreadyExists { kind: EntityKind::Product, field } if field == "sku"),
        "{err:?}"
    );
    assert_eq!(count(&s, &w, EntityKind::Product).await, Some(1_500));

    // Two products of the batch share a SKU.
    let twice = products(&w, skus("C", 1_500).chain(["C-3".to_owned()]));
    let err = s.commit(t, inserts(twice)).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::AlreadyExists { kind: EntityKind::Product, field } if field == "sku"),
        "{err:?}"
    );
    assert_eq!(count(&s, &w, EntityKind::Product).await, Some(1_500));

    // The same batch without the duplicate goes in whole.
    s.commit(t, inserts(products(&w, skus("C", 1_500)))).await.unwrap();
    assert_eq!(count(&s, &w, EntityKind::Product).await, Some(3_000));
}

#[tokio::test]
async fn a_bulk_batch_pointing_at_a_missing_record_fails_whole_and_writes_nothing() {
    let (s, w) = world().await;
    let t = w.admin.tenant_id();
    let acme = company(&w, "Acme");
    s.commit(t, inserts(vec![to_record(&acme).unwrap()])).await.unwrap();
    let at = |company: Id<Company>| {
        let mut records = contact_records(&w, 2_000);
        let mut pointing = Vec::with_capacity(records.len());
        for record in records.drain(..) {
            let mut contact: Contact = record.data.decode().unwrap();
            contact.company_id = Some(company);
            pointing.push(to_record(&contact).unwrap());
        }
        pointing
    };

    let missing = Id::<Company>::generate();
    let mut batch = at(acme.id());
    batch[1_234] = at(missing).swap_remove(0);
    let err = s.commit(t, inserts(batch)).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::MissingReference { field, kind: EntityKind::Company, id }
            if field == "company_id" && *id == missing.uuid()),
        "{err:?}"
    );
    assert_eq!(count(&s, &w, EntityKind::Contact).await, Some(0));

    // Pointing at a stored company, the batch goes in, with its references recorded:
    // the company cannot be deleted while its contacts point at it.
    s.commit(t, inserts(at(acme.id()))).await.unwrap();
    assert_eq!(count(&s, &w, EntityKind::Contact).await, Some(2_000));
    let delete = WriteBatch {
        ops: vec![WriteOp::Delete { kind: EntityKind::Company, id: acme.id().uuid(), expected_version: 1 }],
        ..WriteBatch::default()
    };
    let err = s.commit(t, delete).await.unwrap_err();
    assert!(matches!(err, StorageError::Referenced { by: EntityKind::Contact, .. }), "{err:?}");
}

#[tokio::test]
async fn a_bulk_batch_keeps_every_value_it_copies() {
    let (s, w) = world().await;
    let t = w.admin.tenant_id();
    let records = products(&w, skus("V", 1_200));
    let expected: Vec<(uuid::Uuid, serde_json::Value)> = records.iter().map(|r| (r.id, r.data.to_value())).collect();
    s.commit(t, inserts(records)).await.unwrap();
    let ids: Vec<uuid::Uuid> = expected.iter().map(|(id, _)| *id).collect();
    let stored = s.get_many(t, EntityKind::Product, &ids).await.unwrap();
    assert_eq!(stored.len(), expected.len());
    let by_id: std::collections::HashMap<_, _> = stored.into_iter().map(|r| (r.id, r)).collect();
    for (id, data) in &expected {
        let r = &by_id[id];
        assert_eq!(r.version, 1);
        assert_eq!(r.data.to_value(), *data);
    }
    // The typed columns hold the values (filters and the unique key read them).
    let q = ListQuery { with_total: true, ..ListQuery::filtered(vec![Filter::eq("sku", "v-1199")]) };
    let page = s.list(t, EntityKind::Product, &q).await.unwrap();
    assert_eq!(page.total, Some(1), "{page:?}");
}
