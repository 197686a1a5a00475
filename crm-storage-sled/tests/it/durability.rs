//! Acknowledged commits survive SIGKILL, and no commit is ever half-applied.
//!
//! A child process commits batches in a loop (three inserts, an update of a tally
//! record and a counter advance each) and prints each batch's number once `commit`
//! returned. The parent kills it with SIGKILL at a random moment, reopens the store and
//! checks that every acknowledged batch is there whole, and that nothing of any other
//! batch is. `CRM_SLED_CRASH_ROUNDS` sets the number of rounds (default 3; the stress
//! run is `CRM_SLED_CRASH_ROUNDS=50 cargo nextest run -p crm-storage-sled durability`).

use std::{io::BufRead, thread, time::Duration};

use crm_core::{
    TenantId,
    storage::{CounterUpdate, EntityKind, FieldValue, ListQuery, Record, Storage, WriteBatch, WriteOp},
};
use crm_storage_sled::SledStorage;
use serde_json::json;
use uuid::Uuid;

use crm_core::conformance::child;

use crate::rng::Rng;

const TENANT: TenantId = TenantId(Uuid::from_u128(0x0123_4567_89ab_cdef));
const TALLY: Uuid = Uuid::from_u128(u128::MAX - 1);
const COUNTER: &str = "batches";
const PER_BATCH: u64 = 3;

fn record_id(batch: u64, n: u64) -> Uuid {
    Uuid::from_u128(((batch as u128) << 8) | n as u128)
}

fn record(id: Uuid, version: u64, batch: u64) -> Record {
    Record {
        kind: EntityKind::Company,
        id,
        version,
        data: crm_core::storage::Document::from(json!({ "batch": batch, "padding": "x".repeat(200) })),
        fields: vec![("batch", FieldValue::Int(batch as i64))],
        uniques: Vec::new(),
        references: Vec::new(),
    }
}

/// The batch that takes the store from `done` committed batches to `done + 1`.
fn batch(done: u64) -> WriteBatch {
    let n = done + 1;
    let mut ops: Vec<WriteOp> = (0..PER_BATCH).map(|k| WriteOp::Insert(record(record_id(n, k), 1, n))).collect();
    ops.push(if done == 0 {
        WriteOp::Insert(record(TALLY, 1, n))
    } else {
        WriteOp::Update { record: record(TALLY, n, n), expected_version: done }
    });
    WriteBatch {
        ops,
        counters: vec![CounterUpdate { key: COUNTER.into(), expected: done, new: n }],
        events: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the writer process of `acknowledged_commits_survive_sigkill`"]
async fn crash_writer_child() {
    let storage = SledStorage::open(child::dir()).expect("open the store");
    let mut done = storage.counter(TENANT, COUNTER).await.expect("counter");
    println!("ready");
    let started = std::time::Instant::now();
    while started.elapsed() < child::CHILD_LIFETIME {
        storage.commit(TENANT, batch(done)).await.expect("commit");
        done += 1;
        println!("{done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_sigkill() {
    let rounds: u32 = std::env::var("CRM_SLED_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mut random = Rng::from_clock();
    let mut last_committed = 0;
    for round in 1..=rounds {
        let (mut writer, mut stdout) = child::spawn("durability::crash_writer_child", dir.path());
        assert!(child::wait_for(&mut stdout, "ready"), "round {round}: the writer never opened the store");
        let acked = thread::spawn(move || {
            stdout.lines().map_while(Result::ok).filter_map(|l| l.parse::<u64>().ok()).max().unwrap_or(0)
        });
        thread::sleep(Duration::from_millis(20 + random.below(400)));
        writer.kill().unwrap();
        writer.wait().unwrap();
        let acknowledged = acked.join().unwrap().max(last_committed);

        let storage = SledStorage::open(dir.path()).expect("reopen after SIGKILL");
        let committed = storage.counter(TENANT, COUNTER).await.unwrap();
        assert!(
            committed >= acknowledged,
            "round {round}: {acknowledged} batches were acknowledged but only {committed} survived"
        );
        let all = storage
            .list(TENANT, EntityKind::Company, &ListQuery { limit: 0, with_total: true, ..ListQuery::default() })
            .await
            .unwrap();
        assert_eq!(
            all.total,
            Some(committed * PER_BATCH + u64::from(committed > 0)),
            "round {round}: records of a batch beyond the counter, or missing ones"
        );
        for n in [1, committed / 2, committed].into_iter().filter(|n| *n > 0) {
            let ids: Vec<Uuid> = (0..PER_BATCH).map(|k| record_id(n, k)).collect();
            let found = storage.get_many(TENANT, EntityKind::Company, &ids).await.unwrap();
            assert_eq!(found.len() as u64, PER_BATCH, "round {round}: batch {n} is half-applied");
            assert!(found.iter().all(|r| r.data.to_value()["batch"] == json!(n)));
        }
        let next: Vec<Uuid> = (0..PER_BATCH).map(|k| record_id(committed + 1, k)).collect();
        assert!(storage.get_many(TENANT, EntityKind::Company, &next).await.unwrap().is_empty());
        if committed > 0 {
            let tally = storage.get(TENANT, EntityKind::Company, TALLY).await.unwrap().expect("tally");
            assert_eq!(tally.version, committed, "round {round}: the tally's updates and the counter disagree");
        }
        eprintln!("round {round}: {acknowledged} acknowledged, {committed} committed");
        last_committed = committed;
    }
    assert!(last_committed > 0, "no batch was ever committed: the writer did not run");
}

#[tokio::test]
async fn a_reopened_store_has_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = SledStorage::open(dir.path()).unwrap();
        for done in 0..10 {
            storage.commit(TENANT, batch(done)).await.unwrap();
        }
    }
    let storage = SledStorage::open(dir.path()).unwrap();
    assert_eq!(storage.counter(TENANT, COUNTER).await.unwrap(), 10);
    let tally = storage.get(TENANT, EntityKind::Company, TALLY).await.unwrap().unwrap();
    assert_eq!(tally.version, 10);
}

#[tokio::test]
async fn opening_a_directory_twice_shares_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStorage::open(dir.path()).unwrap();
    let second = SledStorage::open(dir.path()).unwrap();
    first.commit(TENANT, batch(0)).await.unwrap();
    assert_eq!(second.counter(TENANT, COUNTER).await.unwrap(), 1);
}
