//! Load bench of the REST server: `GET /api/v1/contacts/{id}` and a filtered list page,
//! on in-memory and on sled storage, next to a bare poem "hello" endpoint measured in
//! the same run, so the results read as ratios of what poem itself does on this machine.
//!
//! ```sh
//! cargo run --release -p crm-http --example load -- [SECONDS] [CONNECTIONS] [CONTACTS]
//! ```
//!
//! Servers and load generator share the machine (and its cores): compare the ratios,
//! not the absolute numbers, across machines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crm_core::{
    Crm, PageRequest,
    access::users::Bootstrap,
    customers::contacts::NewContact,
    passwords::PasswordPolicy,
    storage::{Storage, memory::MemoryStorage},
};
use crm_http::{
    AppCtx, AppOptions,
    auth::{CookiePolicy, TokenKeys},
    limits::Limits,
};
use poem::{
    EndpointExt, Route, Server, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::cookie::SameSite,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

#[handler]
fn hello() -> &'static str {
    "hello"
}

/// Serves `ep` on a free port of 127.0.0.1 in the background.
async fn serve(ep: impl poem::Endpoint + 'static) -> SocketAddr {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(ep));
    addr
}

/// A CRM server over `storage`, seeded with `contacts` contacts; returns its address,
/// a bearer token, the contact ids and the owner to filter by.
async fn crm_server(storage: Arc<dyn Storage>, contacts: usize) -> (SocketAddr, String, Vec<String>, String) {
    let crm = Crm::builder(storage).passwords(PasswordPolicy::insecure_fast()).build();
    let (_, _, admin) = crm
        .users()
        .bootstrap(Bootstrap {
            tenant_name: "Bench".into(),
            admin_email: "admin@bench.test".into(),
            admin_password: "bench-password".into(),
            admin_first_name: "A".into(),
            admin_last_name: "B".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::with_capacity(contacts);
    for i in 0..contacts {
        let input = NewContact {
            first_name: format!("First{i}"),
            last_name: format!("Last{:06}", i),
            email: Some(format!("c{i}@bench.test")),
            ..NewContact::default()
        };
        ids.push(crm.contacts().create(&admin, input).await.unwrap().meta.id.to_string());
    }
    let _ = crm.contacts().list(&admin, &Default::default(), &PageRequest::first(1)).await.unwrap();
    let issued = crm.sessions().start(&admin, &Default::default()).await.unwrap();
    let tokens = TokenKeys::new(&[42u8; 32], "crm-rs").unwrap();
    let token = tokens.issue(&issued.session).unwrap();
    let live = crm_http::live::LiveHub::new(crm.storage().clone(), crm_http::live::LiveOptions::default());
    let ctx = Arc::new(AppCtx {
        crm,
        tokens,
        limits: Limits::in_memory(u32::MAX, u32::MAX, u32::MAX),
        cookies: CookiePolicy { secure: false, same_site: SameSite::Lax },
        default_tenant: Some(admin.tenant_id()),
        versions: Default::default(),
        public_url: "http://localhost".into(),
        live,
    });
    let addr = serve(crm_http::build(ctx, &AppOptions::default())).await;
    (addr, token, ids, admin.user_id().to_string())
}

/// One keep-alive connection: sends GETs until `deadline`, counting 200s.
async fn connection(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    token: Arc<String>,
    deadline: Instant,
    seed: usize,
) -> (u64, u64, Vec<u32>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    let (mut ok, mut failed, mut latencies_us) = (0u64, 0u64, Vec::new());
    let mut i = seed;
    let mut line = String::new();
    while Instant::now() < deadline {
        let path = &paths[i % paths.len()];
        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) >> 1;
        let request = format!("GET {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\r\n");
        let started = Instant::now();
        reader.get_mut().write_all(request.as_bytes()).await.unwrap();
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let status_ok = line.split_whitespace().nth(1) == Some("200");
        let mut length = 0usize;
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((_, value)) = line.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await.unwrap();
        latencies_us.push(started.elapsed().as_micros() as u32);
        if status_ok { ok += 1 } else { failed += 1 }
    }
    (ok, failed, latencies_us)
}

/// Requests per second (200s only) and p50/p99 latency over `seconds` with `conns` connections.
async fn measure(
    addr: SocketAddr,
    paths: Vec<String>,
    token: &str,
    seconds: u64,
    conns: usize,
) -> (f64, u32, u32, u64) {
    let (paths, token) = (Arc::new(paths), Arc::new(token.to_owned()));
    // Warm-up.
    let warm = Instant::now() + Duration::from_millis(500);
    connection(addr, paths.clone(), token.clone(), warm, 7).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..conns)
        .map(|c| tokio::spawn(connection(addr, paths.clone(), token.clone(), deadline, c * 7919 + 1)))
        .collect();
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await.unwrap();
        ok += o;
        failed += f;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    (ok as f64 / elapsed, pct(0.5), pct(0.99), failed)
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let seconds = args.first().copied().unwrap_or(10);
    let conns = args.get(1).copied().unwrap_or(32) as usize;
    let contacts = args.get(2).copied().unwrap_or(10_000) as usize;
    println!("load: {seconds} s per target, {conns} keep-alive connections, {contacts} contacts per store");

    let hello_addr = serve(Route::new().at("/", poem::get(hello)).map_to_response()).await;
    let (rps, p50, p99, _) = measure(hello_addr, vec!["/".into()], "", seconds, conns).await;
    println!("{:<48} {:>10.0} req/s  p50 {:>6} us  p99 {:>6} us  (1.00)", "bare poem hello", rps, p50, p99);
    let hello_rps = rps;

    let sled_dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn Storage>)> = vec![
        ("memory", MemoryStorage::shared()),
        ("sled", Arc::new(crm_storage_sled::SledStorage::open(sled_dir.path().join("db")).unwrap())),
    ];
    for (name, storage) in stores {
        let (addr, token, ids, owner) = crm_server(storage, contacts).await;
        let by_id: Vec<String> = ids.iter().map(|id| format!("/api/v1/contacts/{id}")).collect();
        let filtered = vec![format!("/api/v1/contacts?owner_id={owner}&limit=50")];
        for (what, paths) in
            [("GET /api/v1/contacts/{id}", by_id), ("GET /api/v1/contacts?owner_id=…&limit=50", filtered)]
        {
            let (rps, p50, p99, failed) = measure(addr, paths, &token, seconds, conns).await;
            assert_eq!(failed, 0, "{name} {what}: non-200 answers");
            let label = format!("{name:<6} {what}");
            println!("{label:<48} {rps:>10.0} req/s  p50 {p50:>6} us  p99 {p99:>6} us  ({:.2})", rps / hello_rps);
        }
    }
}
