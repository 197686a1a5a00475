//! A value in the store that cannot be what this crate wrote is an error naming it,
//! never a default in its place.

use std::{path::Path, thread, time::Duration};

use crm_core::{
    TenantId,
    storage::{CounterUpdate, EntityKind, Record, Storage, StorageError, UniqueKey, WriteBatch, WriteOp},
};
use crm_storage_sled::SledStorage;
use serde_json::json;
use uuid::Uuid;

const TENANT: TenantId = TenantId(Uuid::from_u128(0xC0FFEE));

fn company(n: u128, name: &str) -> Record {
    Record {
        kind: EntityKind::Company,
        id: Uuid::from_u128(n),
        version: 1,
        data: crm_core::storage::Document::from(json!({ "name": name })),
        fields: Vec::new(),
        uniques: vec![UniqueKey { field: "name", value: name.into() }],
        references: Vec::new(),
    }
}

/// The number the store's dictionary gives `name` (two bytes, as keys hold it).
fn name_number(dir: &Path, name: &str) -> Vec<u8> {
    let db = raw(dir);
    let number = db.open_tree("names").unwrap().get(name).unwrap().expect("the name is in the dictionary");
    number.to_vec()
}

/// Overwrites one key with raw sled once the store's handles are gone (sled releases
/// its directory lock shortly after the last `Db` drops).
fn tamper(dir: &Path, tree: &str, key: &[u8], value: &[u8]) {
    let db = raw(dir);
    db.open_tree(tree).unwrap().insert(key, value).unwrap();
    db.flush().unwrap();
}

fn raw(dir: &Path) -> sled::Db {
    let mut attempts = 0;
    loop {
        match raw_config(dir).open() {
            Ok(db) => return db,
            Err(e) if attempts < 200 => {
                attempts += 1;
                assert!(e.to_string().contains("lock"), "{e}");
                thread::sleep(Duration::from_millis(25));
            }
            Err(e) => panic!("the store stayed locked: {e}"),
        }
    }
}

fn assert_corrupt(result: Result<impl std::fmt::Debug, StorageError>, names: &str) {
    match result {
        Err(StorageError::Backend { source }) => {
            assert!(source.to_string().contains(names), "the error names {names:?}: {source}");
        }
        other => panic!("expected a backend error naming {names:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_counter_that_is_not_8_bytes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SledStorage::open(dir.path()).unwrap();
    let advance = CounterUpdate { key: "invoices".into(), expected: 0, new: 1 };
    storage.commit(TENANT, WriteBatch { counters: vec![advance], ..WriteBatch::default() }).await.unwrap();
    drop(storage);

    let key = [TENANT.0.as_bytes().as_slice(), b"invoices"].concat();
    tamper(dir.path(), "counters", &key, &[0, 1, 2]);
    let storage = SledStorage::open(dir.path()).unwrap();
    assert_corrupt(storage.counter(TENANT, "invoices").await, "not an 8-byte number");
    let advance = CounterUpdate { key: "invoices".into(), expected: 1, new: 2 };
    let commit = storage.commit(TENANT, WriteBatch { counters: vec![advance], ..WriteBatch::default() }).await;
    assert_corrupt(commit, "not an 8-byte number");
}

#[tokio::test]
async fn a_unique_key_held_by_no_id_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SledStorage::open(dir.path()).unwrap();
    let insert = WriteBatch { ops: vec![WriteOp::Insert(company(1, "globex"))], ..WriteBatch::default() };
    storage.commit(TENANT, insert).await.unwrap();
    drop(storage);

    // `tenant ‖ field number ‖ value` (keys.rs), the number from the store's dictionary.
    let field = name_number(dir.path(), "name");
    let key = [TENANT.0.as_bytes().as_slice(), &field, b"globex"].concat();
    tamper(dir.path(), "u/company", &key, b"not an id");
    let storage = SledStorage::open(dir.path()).unwrap();
    // Read as "nobody holds it", the key would be taken a second time.
    let duplicate = WriteBatch { ops: vec![WriteOp::Insert(company(2, "globex"))], ..WriteBatch::default() };
    assert_corrupt(storage.commit(TENANT, duplicate).await, "is not an id");
    assert!(storage.get(TENANT, EntityKind::Company, Uuid::from_u128(2)).await.unwrap().is_none());
}

/// sled's settings for a store in `dir`: compressed if it was created so (its `conf`).
fn raw_config(dir: &Path) -> sled::Config {
    let compressed =
        std::fs::read(dir.join("conf")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("use_compression: true"));
    sled::Config::new().path(dir).use_compression(compressed)
}
