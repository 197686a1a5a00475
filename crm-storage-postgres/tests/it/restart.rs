//! Connection loss: PostgreSQL restarts under load; calls in flight fail with
//! `Unavailable` (never a panic or another error), the pool reconnects by itself, and
//! every acknowledged write is still there afterwards.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_core::{
    Id, Meta, TenantId,
    access::users::User,
    conformance::World,
    customers::companies::Company,
    entity::to_record,
    storage::{EntityKind, Storage, StorageError, WriteBatch, WriteOp},
};
use crm_storage_postgres::{
    PostgresOptions, PostgresStorage,
    testing::{TestServer, create_database},
};

/// A company the writers insert, one name each.
fn new_company(tenant: TenantId, owner: Id<User>, name: String) -> Company {
    Company {
        meta: Meta::new(tenant, chrono::Utc::now()),
        name,
        industry: None,
        website: None,
        email: None,
        phone: None,
        address: None,
        owner_id: owner,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_when_postgres_restarts_under_load() {
    // Its own server (never the shared one): this test stops it.
    let server =
        Arc::new(tokio::task::spawn_blocking(TestServer::start).await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    let target = crm_storage_postgres::testing::Target::External(server.url("postgres"));
    let url = create_database(&target).await.unwrap();
    let options =
        PostgresOptions { acquire_timeout: Duration::from_secs(1), max_connections: 8, ..PostgresOptions::default() };
    let storage = Arc::new(PostgresStorage::connect_with(&url, options).await.unwrap());
    let s: Arc<dyn Storage> = storage.clone();
    let w = World::new(s.clone()).await;
    let tenant: TenantId = w.admin.tenant_id();
    let owner = w.admin.user_id();

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let other_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..6 {
        let (s, stop, acknowledged, unavailable, other_errors) =
            (s.clone(), stop.clone(), acknowledged.clone(), unavailable.clone(), other_errors.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let company = new_company(tenant, owner, format!("w{worker}-{n}"));
                let id = company.meta.id;
                let batch =
                    WriteBatch { ops: vec![WriteOp::Insert(to_record(&company).unwrap())], ..WriteBatch::default() };
                let result = match s.commit(tenant, batch).await {
                    Ok(()) => {
                        acknowledged.lock().unwrap().push(id);
                        s.get(tenant, EntityKind::Company, id).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {}
                    Err(StorageError::Unavailable(_)) => {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => other_errors.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }

    // Load runs, then the server goes down and comes back while it keeps running.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = acknowledged.lock().unwrap().len();
    assert!(before > 0, "no write succeeded before the restart");
    let srv = server.clone();
    tokio::task::spawn_blocking(move || srv.stop()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let srv = server.clone();
    tokio::task::spawn_blocking(move || srv.restart()).await.unwrap().unwrap();

    // The pool recovers by itself: writes succeed again within a few seconds.
    let restarted = Instant::now();
    let resumed_at = acknowledged.lock().unwrap().len();
    loop {
        if acknowledged.lock().unwrap().len() > resumed_at + 20 {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(30), "writes did not resume after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker panicked");
    }

    assert!(unavailable.load(Ordering::Relaxed) > 0, "the outage was never reported as Unavailable");
    assert_eq!(other_errors.lock().unwrap().clone(), Vec::<String>::new(), "errors other than Unavailable");
    storage.ping().await.unwrap();
    let ids = acknowledged.lock().unwrap().clone();
    let mut found = 0;
    for chunk in ids.chunks(1_000) {
        found += s.get_many(tenant, EntityKind::Company, chunk).await.unwrap().len();
    }
    assert_eq!(found, ids.len(), "an acknowledged write was lost");

    // A restart while the pool is idle: the first call afterwards already succeeds
    // (stale connections are tested and replaced on acquire, not handed out).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let srv = server.clone();
    tokio::task::spawn_blocking(move || srv.stop().and_then(|()| srv.restart())).await.unwrap().unwrap();
    s.get(tenant, EntityKind::Company, ids[0]).await.expect("first call after an idle restart").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_a_crash_of_postgres() {
    // A server with PostgreSQL's default durability, killed without a checkpoint.
    let server = Arc::new(
        tokio::task::spawn_blocking(TestServer::start_durable).await.unwrap().unwrap_or_else(|e| panic!("{e}")),
    );
    let target = crm_storage_postgres::testing::Target::External(server.url("postgres"));
    let url = create_database(&target).await.unwrap();
    let options = PostgresOptions { acquire_timeout: Duration::from_secs(1), ..PostgresOptions::default() };
    let storage = Arc::new(PostgresStorage::connect_with(&url, options).await.unwrap());
    let s: Arc<dyn Storage> = storage.clone();
    let w = World::new(s.clone()).await;
    let (tenant, owner) = (w.admin.tenant_id(), w.admin.user_id());

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let crashed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|worker| {
            let (s, acknowledged, crashed) = (s.clone(), acknowledged.clone(), crashed.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let company = new_company(tenant, owner, format!("c{worker}-{n}"));
                    let id = company.meta.id;
                    let batch = WriteBatch {
                        ops: vec![WriteOp::Insert(to_record(&company).unwrap())],
                        ..WriteBatch::default()
                    };
                    match s.commit(tenant, batch).await {
                        Ok(()) => acknowledged.lock().unwrap().push(id),
                        Err(StorageError::Unavailable(_)) if crashed.load(Ordering::Relaxed) => return,
                        Err(e) => panic!("unexpected error: {e:?}"),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    crashed.store(true, Ordering::Relaxed);
    let srv = server.clone();
    tokio::task::spawn_blocking(move || srv.crash()).await.unwrap().unwrap();
    for writer in writers {
        writer.await.expect("a writer panicked");
    }
    let srv = server.clone();
    tokio::task::spawn_blocking(move || srv.restart()).await.unwrap().unwrap();

    let ids = acknowledged.lock().unwrap().clone();
    assert!(ids.len() > 10, "too few writes before the crash to mean anything: {}", ids.len());
    let mut found = 0;
    for chunk in ids.chunks(1_000) {
        found += s.get_many(tenant, EntityKind::Company, chunk).await.unwrap().len();
    }
    assert_eq!(found, ids.len(), "acknowledged commits were lost in the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_frozen_server_fail_fast_and_recover_when_it_answers_again() {
    // Its own server: this test freezes it.
    let server =
        Arc::new(tokio::task::spawn_blocking(TestServer::start).await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    let target = crm_storage_postgres::testing::Target::External(server.url("postgres"));
    let url = create_database(&target).await.unwrap();
    let bound = Duration::from_millis(800);
    let options = PostgresOptions {
        acquire_timeout: Duration::from_secs(1),
        call_timeout: bound,
        max_connections: 2,
        ..PostgresOptions::default()
    };
    let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::connect_with(&url, options).await.unwrap());
    let w = World::new(storage.clone()).await;
    let (tenant, owner) = (w.admin.tenant_id(), w.admin.user_id());
    let company = new_company(tenant, owner, "before the freeze".into());
    let id = company.meta.id;
    storage
        .commit(
            tenant,
            WriteBatch { ops: vec![WriteOp::Insert(to_record(&company).unwrap())], ..WriteBatch::default() },
        )
        .await
        .unwrap();

    // Open connections now lead to a server that neither answers nor hangs up.
    server.freeze().unwrap();
    for call in 0..3 {
        let started = Instant::now();
        let read = storage.get(tenant, EntityKind::Company, id).await;
        let waited = started.elapsed();
        assert!(matches!(read, Err(StorageError::Unavailable(_))), "call {call} on a frozen server: {read:?}");
        assert!(waited < bound + Duration::from_millis(700), "call {call} waited {waited:?}, bound {bound:?}");
    }
    let other = new_company(tenant, owner, "during the freeze".into());
    let write = storage
        .commit(tenant, WriteBatch { ops: vec![WriteOp::Insert(to_record(&other).unwrap())], ..WriteBatch::default() })
        .await;
    assert!(matches!(write, Err(StorageError::Unavailable(_))), "a commit on a frozen server: {write:?}");

    server.thaw().unwrap();
    let recovered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Some(found)) = storage.get(tenant, EntityKind::Company, id).await {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the storage answers again once the server does");
    assert_eq!(recovered.id, id);
}
