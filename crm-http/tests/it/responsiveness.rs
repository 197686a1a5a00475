//! Nothing blocks the executor. The server runs in-process on sled with 200k contacts,
//! production-cost password hashing and crm-server's hashing pool, serving real HTTP on
//! 127.0.0.1 from a runtime of 2 workers. While rounds of 20 sign-ins and 8 scanning
//! listings (a search that matches nothing, with the total) run, `GET /health` and
//! `GET /api/v1/contacts/{id}` each answer within 50 ms at p99.
//!
//! The load lasts at least [`LOAD_FOR`], so each p99 is judged on about a thousand
//! samples. On 150 (a single round) the p99 is the second-worst answer, and a single
//! 150 ms hiccup of a shared machine, which delays the seven probes sent meanwhile,
//! decides it; an executor blocked by the load delays probes in every round. The
//! server runtime's own timer lateness is reported beside the probes, telling a
//! stalled executor apart from slow answers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crm_core::{
    Crm, Meta, Principal, TenantId,
    access::users::{Bootstrap, ImportedUser},
    authz::Role,
    customers::contacts::Contact,
    entity::to_record,
    storage::{EntityKind, Storage, WriteBatch, WriteOp},
};
use crm_http::{
    AppCtx, AppOptions,
    auth::{CookiePolicy, TokenKeys},
    limits::Limits,
    offload::BlockingPool,
};
use crm_storage_sled::{Durability, SledStorage};
use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
    web::cookie::SameSite,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    runtime::Runtime,
};

use crate::support::{ISSUER, SECRET};

const CONTACTS: usize = 200_000;
/// Records per bulk commit.
const BATCH: usize = 5_000;
const SIGN_INS: usize = 20;
const LISTINGS: usize = 8;
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// Rounds of load start until this much time has passed: about 1,000 probes each.
const LOAD_FOR: Duration = Duration::from_secs(20);
const MIN_SAMPLES: usize = 800;
const P99_BUDGET: Duration = Duration::from_millis(50);
/// The set-up (the bulk load, mostly) must be over by then, or the test fails.
const SET_UP_DEADLINE: Duration = Duration::from_secs(400);
/// The load (sign-ins and listings) must be over by then, or the test fails.
const LOAD_DEADLINE: Duration = Duration::from_secs(300);
/// Any one request, so a hung server fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(240);

const EMAIL: &str = "admin@load.test";
const PASSWORD: &str = "a-long-password";
const NO_MATCH: &str = "zq-no-such-contact-qz";

#[test]
fn health_and_a_contact_answer_fast_while_sign_ins_and_scans_run() {
    let started = Instant::now();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let set_up = server.block_on(async { tokio::time::timeout(SET_UP_DEADLINE, serve(&server)).await });
    let (addr, contact_id) = set_up.unwrap_or_else(|_| panic!("set-up took over {SET_UP_DEADLINE:?}"));
    println!("set-up (bulk load of {CONTACTS} contacts included): {:.1} s", started.elapsed().as_secs_f64());

    // The clients run on their own runtime, so their work never delays the server's.
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let lateness = Lateness::start(&server);
    clients.block_on(measure(addr, contact_id, &lateness));
    server.shutdown_timeout(Duration::from_secs(10));
    println!("whole test: {:.1} s", started.elapsed().as_secs_f64());
}

/// Opens a temporary sled store, bootstraps a tenant with a production-cost password,
/// loads the contacts through the bulk path, and serves the app on 127.0.0.1:0 from
/// `server`. Returns the address and a contact's id.
async fn serve(server: &Runtime) -> (String, String) {
    let sled = SledStorage::temporary().unwrap();
    let hashing = BlockingPool::new(server.handle().clone(), BlockingPool::default_limit());
    // The default PasswordPolicy: argon2id, m = 19 MiB, t = 2.
    let crm = Crm::builder(Arc::new(sled.clone())).offload(Arc::new(hashing)).build();
    let (tenant, _, admin) = crm
        .users()
        .bootstrap(Bootstrap {
            tenant_name: "Load".into(),
            admin_email: EMAIL.into(),
            admin_password: PASSWORD.into(),
            admin_first_name: "Ada".into(),
            admin_last_name: "Admin".into(),
        })
        .await
        .unwrap();
    let tenant = TenantId(tenant.meta.id);
    // One account per sign-in (simultaneous sign-ins of one account conflict on its
    // last sign-in time), all with the admin's production-cost hash.
    let stored = sled.get(tenant, EntityKind::User, admin.user_id().uuid()).await.unwrap().unwrap();
    let hash = stored.data.to_value()["password_hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "a production-cost hash: {hash}");
    for i in 0..SIGN_INS {
        let user = ImportedUser {
            email: signer(i),
            first_name: "Load".into(),
            last_name: format!("User{i}"),
            role: Role::User,
            company_id: None,
            active: true,
            password_hash: hash.clone(),
        };
        crm.users().import(&admin, user).await.unwrap();
    }

    let loading = Instant::now();
    let bulk = sled.with_durability(Durability::Background);
    let mut contact_id = None;
    for first in (0..CONTACTS).step_by(BATCH) {
        let ops = (first..(first + BATCH).min(CONTACTS))
            .map(|i| WriteOp::Insert(to_record(&unsaved_contact(&admin, i)).unwrap()))
            .collect::<Vec<_>>();
        if first == CONTACTS / 2 {
            let WriteOp::Insert(record) = &ops[0] else { unreachable!() };
            contact_id = Some(record.id.to_string());
        }
        bulk.commit(tenant, WriteBatch { ops, ..WriteBatch::default() }).await.unwrap();
    }
    sled.flush().await.unwrap();
    println!("bulk load: {CONTACTS} contacts in {:.1} s", loading.elapsed().as_secs_f64());

    let live = crm_http::live::LiveHub::new(crm.storage().clone(), crm_http::live::LiveOptions::default());
    let ctx = Arc::new(AppCtx {
        crm,
        tokens: TokenKeys::new(SECRET, ISSUER).unwrap(),
        // Rates high enough never to refuse the test's own requests.
        limits: Limits::in_memory(1_000_000, 1_000_000, 1_000_000),
        cookies: CookiePolicy { secure: false, same_site: SameSite::Lax },
        default_tenant: Some(tenant),
        versions: Default::default(),
        public_url: "http://localhost".into(),
        live,
    });
    let app = crm_http::build(ctx, &AppOptions::default());
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap().to_string();
    server.spawn(Server::new_with_acceptor(acceptor).run(app));
    (addr, contact_id.unwrap())
}

/// The email of the `i`-th signing-in user.
fn signer(i: usize) -> String {
    format!("user{i}@load.test")
}

/// The `i`-th contact, owned by the admin, as a record not yet stored.
fn unsaved_contact(admin: &Principal, i: usize) -> Contact {
    Contact {
        meta: Meta::new(admin.tenant_id(), chrono::Utc::now()),
        first_name: format!("First{i}"),
        last_name: format!("Last{:04}", i % 5000),
        email: Some(format!("contact{i}@load.test")),
        phone: None,
        position: None,
        company_id: None,
        owner_id: admin.user_id(),
        lead_id: None,
    }
}

/// Checks the preconditions, runs the load while probing, and asserts the latencies.
async fn measure(addr: String, contact_id: String, lateness: &Lateness) {
    let addr = Arc::new(addr);
    let token = sign_in(&addr, EMAIL).await;
    let contact = format!("/api/v1/contacts/{contact_id}");
    let (status, body) = call(&addr, "GET", &contact, Some(&token), None).await;
    assert_eq!(status, 200, "the probed contact is readable: {body}");
    let scanning = Instant::now();
    let (status, body) = call(&addr, "GET", "/api/v1/contacts?limit=1&total=true", Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pagination"]["total"], json!(CONTACTS), "every contact was loaded");
    println!("one counting listing with nothing else running: {:.2} s", scanning.elapsed().as_secs_f64());

    // The same probes with nothing else running, for comparison (not asserted).
    let quiet = Arc::new(AtomicBool::new(false));
    let idle_health = tokio::spawn(probe(Arc::clone(&addr), "/health".into(), None, Arc::clone(&quiet)));
    let idle_by_id = tokio::spawn(probe(Arc::clone(&addr), contact.clone(), Some(token.clone()), Arc::clone(&quiet)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    quiet.store(true, Ordering::SeqCst);
    println!("{}", Summary::of("idle: GET /health", idle_health.await.unwrap()));
    println!("{}", Summary::of("idle: GET /api/v1/contacts/{id}", idle_by_id.await.unwrap()));

    let loaded = Arc::new(AtomicBool::new(false));
    let health = tokio::spawn(probe(Arc::clone(&addr), "/health".into(), None, Arc::clone(&loaded)));
    let by_id = tokio::spawn(probe(Arc::clone(&addr), contact, Some(token.clone()), Arc::clone(&loaded)));
    let machine = std::thread::spawn({
        let loaded = Arc::clone(&loaded);
        move || oversleep(&loaded)
    });

    let load_started = Instant::now();
    lateness.reset();
    let mut rounds = 0;
    let finished = tokio::time::timeout(LOAD_DEADLINE, async {
        while rounds == 0 || load_started.elapsed() < LOAD_FOR {
            load_round(&addr, &token).await;
            rounds += 1;
        }
    })
    .await;
    let load_time = load_started.elapsed();
    loaded.store(true, Ordering::SeqCst);
    let executor = Summary::of("the server runtime's 5 ms timers, late by", lateness.take());
    assert!(finished.is_ok(), "the load did not finish within {LOAD_DEADLINE:?}");
    println!(
        "load: {rounds} rounds of {SIGN_INS} sign-ins and {LISTINGS} scanning listings in {:.1} s",
        load_time.as_secs_f64()
    );

    let health = health.await.unwrap();
    let by_id = by_id.await.unwrap();
    // How late the OS wakes a plain thread of this process: the floor under any latency.
    println!("{}", Summary::of("a thread's wake-up delay (5 ms sleeps)", machine.join().unwrap()));
    let health = Summary::of("GET /health", health);
    let by_id = Summary::of("GET /api/v1/contacts/{id}", by_id);
    println!("{executor}");
    for summary in [&health, &by_id] {
        println!("{summary}");
        assert!(summary.samples >= MIN_SAMPLES, "too few samples to judge a p99: {summary}");
    }
    for summary in [&health, &by_id] {
        assert!(summary.p99 <= P99_BUDGET, "p99 over {P99_BUDGET:?}: {summary} ({executor})");
    }
}

/// One round of load: the sign-ins and the scanning listings, all at once; returns
/// when every one has been answered as expected.
async fn load_round(addr: &Arc<String>, token: &str) {
    let mut load = tokio::task::JoinSet::new();
    for i in 0..SIGN_INS {
        let addr = Arc::clone(addr);
        load.spawn(async move {
            sign_in(&addr, &signer(i)).await;
        });
    }
    for _ in 0..LISTINGS {
        let (addr, token) = (Arc::clone(addr), token.to_owned());
        load.spawn(async move {
            let path = format!("/api/v1/contacts?search={NO_MATCH}&total=true");
            let (status, body) = call(&addr, "GET", &path, Some(&token), None).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["pagination"]["total"], json!(0), "the search matches nothing: {body}");
        });
    }
    while let Some(done) = load.join_next().await {
        done.unwrap();
    }
}

/// How late a task on the server runtime wakes from 5 ms sleeps: a stalled executor
/// shows here whatever the probes' connections do.
struct Lateness {
    samples: Arc<std::sync::Mutex<Vec<Duration>>>,
}

impl Lateness {
    /// Starts sampling on `server` until the runtime shuts down.
    fn start(server: &Runtime) -> Self {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&samples);
        let nap = Duration::from_millis(5);
        server.spawn(async move {
            loop {
                let start = Instant::now();
                tokio::time::sleep(nap).await;
                kept.lock().unwrap().push(start.elapsed().saturating_sub(nap));
            }
        });
        Self { samples }
    }

    /// Forgets what was sampled so far.
    fn reset(&self) {
        self.samples.lock().unwrap().clear();
    }

    /// What was sampled since the last reset.
    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// How much later than asked each 5 ms sleep of this thread ends, until `loaded`.
fn oversleep(loaded: &AtomicBool) -> Vec<Duration> {
    let nap = Duration::from_millis(5);
    let mut late = Vec::new();
    while !loaded.load(Ordering::SeqCst) {
        let start = Instant::now();
        std::thread::sleep(nap);
        late.push(start.elapsed().saturating_sub(nap));
    }
    late
}

/// Signs `email` in and returns the access token.
async fn sign_in(addr: &str, email: &str) -> String {
    let body = json!({ "email": email, "password": PASSWORD }).to_string();
    let (status, reply) = call(addr, "POST", "/api/v1/auth/login", None, Some(&body)).await;
    assert_eq!(status, 200, "sign-in: {reply}");
    reply["data"]["access_token"].as_str().unwrap().to_owned()
}

/// Sends a GET of `path` every [`PROBE_EVERY`] until `loaded`, on schedule whether or
/// not earlier ones have been answered (a stalled server is not probed less), and
/// returns each one's time from its scheduled send to its answer, which must be a 200.
async fn probe(addr: Arc<String>, path: String, token: Option<String>, loaded: Arc<AtomicBool>) -> Vec<Duration> {
    let mut every = tokio::time::interval(PROBE_EVERY);
    let mut sent = tokio::task::JoinSet::new();
    while !loaded.load(Ordering::SeqCst) {
        let due = every.tick().await.into_std();
        let (addr, path, token) = (Arc::clone(&addr), path.clone(), token.clone());
        sent.spawn(async move {
            let (status, body) = call(&addr, "GET", &path, token.as_deref(), None).await;
            assert_eq!(status, 200, "{path}: {body}");
            due.elapsed()
        });
    }
    let mut latencies = Vec::new();
    while let Some(answered) = sent.join_next().await {
        latencies.push(answered.unwrap());
    }
    latencies
}

/// One HTTP/1.1 request on a new connection; the status and the JSON body.
async fn call(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let authorization = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{authorization}content-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        response
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"));
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not HTTP: {response}"));
    assert!(!head.to_lowercase().contains("transfer-encoding: chunked"), "a chunked reply: {head}");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    let body = if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap_or(Value::Null) };
    (status, body)
}

/// p50, p99 and max of a probe's latencies.
struct Summary {
    name: &'static str,
    samples: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// How many took longer than [`P99_BUDGET`].
    over_budget: usize,
}

impl Summary {
    fn of(name: &'static str, mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        let at = |q: f64| {
            let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len().max(1));
            latencies.get(rank - 1).copied().unwrap_or(Duration::MAX)
        };
        Self {
            name,
            samples: latencies.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: latencies.last().copied().unwrap_or(Duration::MAX),
            over_budget: latencies.iter().filter(|&&l| l > P99_BUDGET).count(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{}: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} over {:?}",
            self.name,
            self.samples,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.over_budget,
            P99_BUDGET
        )
    }
}
