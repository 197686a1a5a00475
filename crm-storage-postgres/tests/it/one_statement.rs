//! Batches of inserts, updates and checks go out as one statement: the references an
//! update drops are forgotten, the ones it keeps stay recorded.

use std::sync::Arc;

use crm_core::{
    conformance::{World, cases::company},
    customers::contacts::Contact,
    entity::{Entity, to_record},
    storage::{EntityKind, Storage, StorageError, WriteBatch, WriteOp},
};
use crm_storage_postgres::testing::fresh_storage;

use crate::contact_records;

fn batch(ops: Vec<WriteOp>) -> WriteBatch {
    WriteBatch { ops, ..WriteBatch::default() }
}

fn delete(kind: EntityKind, id: uuid::Uuid, expected_version: u64) -> WriteBatch {
    batch(vec![WriteOp::Delete { kind, id, expected_version }])
}

#[tokio::test]
async fn updates_forget_the_references_they_drop_and_keep_the_others() {
    let s: Arc<dyn Storage> = Arc::new(fresh_storage().await);
    let w = World::new(s.clone()).await;
    let t = w.admin.tenant_id();
    let (a, b) = (company(&w, "A"), company(&w, "B"));
    let record = contact_records(&w, 1).remove(0);
    let mut contact: Contact = record.data.decode().unwrap();
    contact.company_id = Some(a.id());
    let ops = vec![
        WriteOp::Insert(to_record(&a).unwrap()),
        WriteOp::Insert(to_record(&b).unwrap()),
        WriteOp::Insert(to_record(&contact).unwrap()),
    ];
    s.commit(t, batch(ops)).await.unwrap();

    // Moved from A to B: A is free, B is pointed at.
    let mut moved = contact.clone();
    moved.company_id = Some(b.id());
    moved.meta.version = 2;
    let update = WriteOp::Update { record: to_record(&moved).unwrap(), expected_version: 1 };
    s.commit(t, batch(vec![update])).await.unwrap();
    let err = s.commit(t, delete(EntityKind::Company, b.id().uuid(), 1)).await.unwrap_err();
    assert!(matches!(err, StorageError::Referenced { by: EntityKind::Contact, .. }), "{err:?}");

    // Changed again, still at B: the reference it keeps stays recorded.
    let mut renamed = moved.clone();
    renamed.last_name = "Renamed".into();
    renamed.meta.version = 3;
    let update = WriteOp::Update { record: to_record(&renamed).unwrap(), expected_version: 2 };
    s.commit(t, batch(vec![update])).await.unwrap();
    let err = s.commit(t, delete(EntityKind::Company, b.id().uuid(), 1)).await.unwrap_err();
    assert!(matches!(err, StorageError::Referenced { by: EntityKind::Contact, .. }), "{err:?}");
    s.commit(t, delete(EntityKind::Company, a.id().uuid(), 1)).await.unwrap();

    // A stale update is a conflict and writes nothing.
    let mut stale = renamed.clone();
    stale.last_name = "Stale".into();
    let update = WriteOp::Update { record: to_record(&stale).unwrap(), expected_version: 2 };
    let err = s.commit(t, batch(vec![update])).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { kind: EntityKind::Contact, .. }), "{err:?}");
    let stored = s.get(t, EntityKind::Contact, contact.id().uuid()).await.unwrap().unwrap();
    assert_eq!(stored.version, 3);
    assert_eq!(stored.data.to_value()["last_name"], "Renamed");
}
