//! Relay throughput, from commit to webhook delivered: 10,000 events committed (in
//! commits of 100), relayed by the outbox relay (planning one delivery each and
//! enqueuing its attempt), sent by the webhook worker to a receiver on 127.0.0.1 that
//! answers 204, and recorded as delivered. Measured once per storage: sled (a temporary
//! directory, every commit flushed) and PostgreSQL (a throwaway server, as the tests
//! start one, or `CRM_TEST_DATABASE_URL`), each with its storage job queue.
//!
//! `cargo bench -p crm-benches --bench relay`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crm_core::{
    Crm, SystemClock, TenantId,
    access::users::Bootstrap,
    jobs::Reaction,
    leases::MemoryLeases,
    passwords::PasswordPolicy,
    storage::Storage,
    webhooks::{attempts::WebhookReaction, endpoints::NewWebhookEndpoint},
};
use crm_jobs::{
    AttemptWorker, DeliveryOptions, Relay, WebhookClient,
    testing::{Answer, Receiver},
};
use crm_storage_postgres::{
    PostgresStorage,
    testing::{create_database, shared_server},
};
use crm_storage_sled::SledStorage;

const EVENTS: usize = 10_000;
const PER_COMMIT: usize = 100;
/// The longest a run may take before it is reported as stuck.
const DEADLINE: Duration = Duration::from_secs(600);

async fn measure(name: &str, storage: Arc<dyn Storage>) {
    let crm = Crm::builder(storage.clone()).passwords(PasswordPolicy::insecure_fast()).webhook_allow_http(true).build();
    let bootstrap = Bootstrap {
        tenant_name: "Bench".into(),
        admin_email: "admin@bench.test".into(),
        admin_password: "admin-password".into(),
        admin_first_name: "Ada".into(),
        admin_last_name: "Admin".into(),
    };
    let (_, _, admin) = crm.users().bootstrap(bootstrap).await.expect("bootstrap");
    let receiver = Receiver::start(Answer::status(204)).await;
    let url = receiver.url("/hook");
    let endpoint = NewWebhookEndpoint { url, event_types: vec!["*".into()], description: None, active: None };
    crm.webhooks().create(&admin, endpoint).await.expect("endpoint");

    let reactions: Vec<Arc<dyn Reaction>> = vec![Arc::new(WebhookReaction::new(crm.clone()))];
    let leases = Arc::new(MemoryLeases::new(Arc::new(SystemClock)));
    let relay = Relay::new(storage.clone(), leases, "bench", reactions);
    let options = DeliveryOptions { allow_http: true, allow_private: true, ..DeliveryOptions::default() };
    let worker = AttemptWorker::new(crm.clone(), WebhookClient::new(options).expect("client")).concurrency(64);
    let tasks = [tokio::spawn(async move { relay.run().await }), tokio::spawn(worker.run())];

    let started = Instant::now();
    commit_events(&storage, admin.tenant_id()).await;
    let committed = started.elapsed();
    while receiver.count().await < EVENTS {
        assert!(started.elapsed() < DEADLINE, "{name}: {} of {EVENTS} delivered", receiver.count().await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    println!(
        "relay {name}: {EVENTS} events committed in {:.2} s, all delivered after {:.2} s: {:.0} events/s",
        committed.as_secs_f64(),
        elapsed.as_secs_f64(),
        EVENTS as f64 / elapsed.as_secs_f64()
    );
}

async fn commit_events(storage: &Arc<dyn Storage>, tenant: TenantId) {
    for _ in 0..EVENTS / PER_COMMIT {
        crm_core::conformance::outbox::commit_events(storage, tenant, PER_COMMIT).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sled: Arc<dyn Storage> = Arc::new(SledStorage::open(dir.path()).expect("sled"));
        measure("sled", sled).await;

        let server = tokio::task::spawn_blocking(shared_server).await.expect("PostgreSQL server");
        let url = create_database(server).await.expect("a database");
        let postgres: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(&url).await.expect("PostgreSQL"));
        measure("postgres", postgres).await;
    });
}
