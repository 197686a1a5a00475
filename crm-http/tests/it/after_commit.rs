//! What happens after a commit, through the real binary: a webhook reaches a receiver
//! on 127.0.0.1 signed, the assignee of a lead gets an email through a real SMTP
//! server, the password-reset flow works end to end without its token or the new
//! password in any log line, and two servers on one PostgreSQL deliver each event
//! once and stream them live from either, the survivor taking the relay over when its
//! holder is killed.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crm_core::webhooks::signing::{DEFAULT_TOLERANCE, SignedHeaders, WebhookSecret, verify};
use crm_jobs::testing::{Answer, Received, Receiver, SmtpSink};
use serde_json::{Value, json};

use crate::binary::{access_token, banner_tenant, data, http, http_as, sign_in, start_with, stop};

/// A webhook receiver on 127.0.0.1 answering 204, on a runtime of its own (these tests
/// are synchronous): keep the runtime as long as the receiver.
fn receiver() -> (tokio::runtime::Runtime, Receiver) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Answer::status(204)));
    (runtime, receiver)
}

fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request.header(name).unwrap_or_default()
}

/// The lines of `GET /api/v1/events` on `addr`, read on a thread, once the stream is
/// open (HTTP/1.0: no chunked framing between the lines).
fn live_events(addr: &str, token: &str) -> Arc<Mutex<Vec<String>>> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /api/v1/events HTTP/1.0\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n").unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            log.lock().unwrap().push(line);
        }
    });
    wait_until("the live stream's answer", || {
        let lines = lines.lock().unwrap();
        lines.first().map(|status| assert!(status.contains(" 200 "), "{status}"))
    });
    lines
}

fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lead_assignment_reaches_the_webhook_signed_and_the_assignee_by_email() {
    let smtp = SmtpSink::start();
    let (_receiving, receiver) = receiver();
    let (hook_url, hits) = (receiver.url("/hooks"), &receiver.received);
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = smtp.url();
    let flags = ["--webhook-allow-http", "--webhook-allow-private", "--smtp-url", &smtp_url];
    let server = start_with("memory://", dir.path(), &[&flags[..], &["--mail-from", "CRM <crm@acme.test>"]].concat());
    let token = access_token(&server.addr);
    let call = |method: &str, path: &str, body: Value| {
        let (status, reply) = http_as(&server.addr, method, path, &body.to_string(), Some(&token));
        assert!((200..300).contains(&status), "{method} {path}: {status} {reply}");
        data(&reply)
    };

    let hook = call("POST", "/api/v1/webhooks", json!({ "url": hook_url, "event_types": ["lead.assigned"] }));
    let secret = WebhookSecret::parse(hook["secret"].as_str().unwrap()).unwrap();
    let sam = json!({ "email": "sam@example.com", "password": "sam-password-1", "first_name": "Sam",
        "last_name": "Seller", "role": "user" });
    let sam = call("POST", "/api/v1/users", sam);
    let lead = json!({ "first_name": "Lena", "last_name": "Lead", "source": "website", "owner_id": sam["meta"]["id"] });
    let lead = call("POST", "/api/v1/leads", lead);

    let hit = wait_until("the webhook delivery", || hits.blocking_lock().first().cloned());
    let headers = SignedHeaders {
        id: header(&hit, "webhook-id"),
        timestamp: header(&hit, "webhook-timestamp"),
        signature: header(&hit, "webhook-signature"),
    };
    assert_eq!(verify(&secret, headers, &hit.body, chrono::Utc::now(), DEFAULT_TOLERANCE), Ok(()));
    let sent: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!((sent["type"].as_str(), &sent["subject"]["id"]), (Some("lead.assigned"), &lead["meta"]["id"]));
    assert_eq!(sent["data"]["user_id"], sam["meta"]["id"]);

    let mails = wait_until("the assignment email", || {
        let mails = smtp.messages();
        (!mails.is_empty()).then_some(mails)
    });
    assert_eq!(mails[0].rcpt_to, ["sam@example.com"]);
    assert_eq!(mails[0].subject, "A lead was assigned to you");
    assert!(mails[0].text.contains(lead["meta"]["id"].as_str().unwrap()), "{:?}", mails[0]);
    assert_eq!(mails[0].mail_from, "crm@acme.test");

    let log =
        call("GET", &format!("/api/v1/webhooks/{}/deliveries", hook["meta"]["id"].as_str().unwrap()), json!(null));
    let entry = &log[0];
    assert_eq!((entry["status"].as_str(), entry["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{log}");
    assert_eq!(entry["response_status"], 204);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hits.blocking_lock().len(), 1, "delivered once");
    stop(server);
}

#[test]
fn a_password_reset_goes_by_email_works_once_and_leaves_no_secret_in_the_log() {
    let smtp = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = smtp.url();
    let server =
        start_with("memory://", dir.path(), &["--smtp-url", &smtp_url, "--public-url", "https://crm.acme.test/"]);
    let old_token = access_token(&server.addr);

    // Known and unknown emails get the same answer; only the known one gets a message.
    let ask = |email: &str| {
        http(&server.addr, "POST", "/api/v1/auth/forgot-password", &json!({ "email": email }).to_string())
    };
    let (known, unknown) = (ask("boss@example.com"), ask("nobody@example.com"));
    assert_eq!(known, unknown);
    assert_eq!(known.0, 200, "{}", known.1);
    let (status, body) = ask("not an email");
    assert_eq!(status, 200, "the answer tells nothing, even of a malformed email: {body}");
    let mails = wait_until("the reset email", || {
        let mails = smtp.messages();
        (!mails.is_empty()).then_some(mails)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.messages().len(), 1, "only the account's email gets a message");
    assert_eq!(mails[0].rcpt_to, ["boss@example.com"]);
    let link_start = mails[0].text.find("https://crm.acme.test/reset-password?token=").expect("the link");
    let token: String = mails[0].text[link_start..]
        .trim_start_matches("https://crm.acme.test/reset-password?token=")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(mails[0].html.contains(&token), "both bodies carry the link");

    let reset = |token: &str, password: &str| {
        let body = json!({ "token": token, "new_password": password }).to_string();
        http(&server.addr, "POST", "/api/v1/auth/reset-password", &body)
    };
    let (status, body) = reset(&token, "short");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("new_password"), "{body}");
    let new_password = "a-brand-new-password-42";
    let (status, body) = reset(&token, new_password);
    assert_eq!(status, 200, "{body}");
    let (status, body) = reset(&token, "yet-another-password");
    assert_eq!(status, 422, "a token works once: {body}");
    assert!(body.contains("token"), "{body}");
    let (status, _) = http_as(&server.addr, "GET", "/api/v1/auth/me", "", Some(&old_token));
    assert_eq!(status, 401, "the reset revoked the sessions");
    let (status, _) = sign_in(&server.addr);
    assert_eq!(status, 401, "the old password is gone");
    let login = json!({ "email": "boss@example.com", "password": new_password }).to_string();
    assert_eq!(http(&server.addr, "POST", "/api/v1/auth/login", &login).0, 200);

    stop(server);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("password_reset"), "the reset is in the log: {log}");
    let secret_part = token.rsplit('_').next().unwrap();
    for secret in [token.as_str(), secret_part, new_password] {
        assert!(!log.contains(secret), "a secret is in the log: {secret}");
    }
}

#[test]
fn two_servers_on_postgresql_deliver_each_event_once_and_a_survivor_takes_the_relay_over() {
    use crm_core::{
        SystemClock,
        leases::{Leases, StorageLeases},
    };
    use crm_storage_postgres::{
        PostgresStorage,
        testing::{create_database, shared_server},
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let target = tokio::task::spawn_blocking(shared_server).await.unwrap();
        create_database(target).await.unwrap()
    });
    let (_receiving, receiver) = receiver();
    let (hook_url, hits) = (receiver.url("/hooks"), &receiver.received);
    let flags =
        ["--jwt-secret", "one-secret-for-every-instance-0123456789", "--webhook-allow-http", "--webhook-allow-private"];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = start_with(&url, dir_a.path(), &flags);
    let tenant = banner_tenant(&first);
    let second = start_with(&url, dir_b.path(), &[&flags[..], &["--tenant-id", &tenant]].concat());
    let token = access_token(&first.addr);
    let call = |addr: &str, path: &str, body: Value| {
        let (status, reply) = http_as(addr, "POST", path, &body.to_string(), Some(&token));
        assert!((200..300).contains(&status), "POST {path}: {status} {reply}");
        data(&reply)
    };
    call(&first.addr, "/api/v1/webhooks", json!({ "url": hook_url, "event_types": ["lead.assigned"] }));
    let sam = json!({ "email": "sam@example.com", "password": "sam-password-1", "first_name": "Sam",
        "last_name": "Seller", "role": "user" });
    let sam = call(&second.addr, "/api/v1/users", sam)["meta"]["id"].clone();
    let assign_leads = |addrs: &[&str], count: usize| {
        for i in 0..count {
            let lead =
                json!({ "first_name": "Lead", "last_name": format!("No {i}"), "source": "website", "owner_id": sam });
            call(addrs[i % addrs.len()], "/api/v1/leads", lead);
        }
    };
    // A live subscriber of the second server sees the events committed on both.
    let live = live_events(&second.addr, &token);
    let distinct_ids =
        |hits: &[Received]| hits.iter().map(|h| header(h, "webhook-id").to_owned()).collect::<HashSet<_>>().len();

    // Events committed on either server are relayed once and delivered once.
    assign_leads(&[&first.addr, &second.addr], 10);
    wait_until("ten deliveries", || (hits.blocking_lock().len() >= 10).then_some(()));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hits.blocking_lock().len(), 10, "each event once");
    assert_eq!(distinct_ids(&hits.blocking_lock()), 10);
    let streamed = wait_until("ten live events", || {
        let lines = live.lock().unwrap();
        let assigned = lines.iter().filter(|l| l.as_str() == "event: lead.assigned").count();
        (assigned >= 10).then_some(assigned)
    });
    assert_eq!(streamed, 10, "the live stream of one server carries the events committed on the other");

    // The server that relays dies; the other one takes the relay over within 30 s.
    let leases = rt.block_on(async {
        let storage = Arc::new(PostgresStorage::connect(&url).await.unwrap());
        StorageLeases::new(storage, Arc::new(SystemClock))
    });
    let holder = rt.block_on(leases.holder(crm_jobs::relay::RELAY_LEASE)).unwrap().expect("a relay holds the lease");
    let pid: u32 = holder.holder.split(':').nth(1).unwrap().parse().unwrap();
    let (mut relaying, survivor) = if pid == first.child.id() { (first, second) } else { (second, first) };
    assert_eq!(relaying.child.id(), pid, "the lease names a running server: {holder:?}");
    relaying.child.kill().unwrap();
    relaying.child.wait().unwrap();
    let killed = Instant::now();
    assign_leads(&[&survivor.addr], 5);
    let deadline = Duration::from_secs(30);
    while hits.blocking_lock().len() < 15 {
        assert!(killed.elapsed() < deadline, "no takeover within 30 s: {} deliveries", hits.blocking_lock().len());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the survivor relayed the first event {:?} after the holder was killed", killed.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hits.blocking_lock().len(), 15);
    assert_eq!(distinct_ids(&hits.blocking_lock()), 15, "nothing delivered twice");
    let now = rt.block_on(leases.holder(crm_jobs::relay::RELAY_LEASE)).unwrap().unwrap();
    assert!(now.holder.contains(&format!(":{}:", survivor.child.id())), "{now:?}");
    stop(survivor);
}
