//! The bulk import path: one batch of many inserts goes out as multi-row statements.

use std::sync::Arc;

use crm_core::{
    conformance::World,
    storage::{EntityKind, Filter, ListQuery, Storage, WriteBatch, WriteOp},
};
use crm_storage_postgres::testing::fresh_storage;

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
