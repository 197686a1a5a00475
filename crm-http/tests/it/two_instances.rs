//! Two real `crm-server` processes on one PostgreSQL and one Redis (`--redis`), both
//! started by the test: one per-user limit between them, sessions and the cache shared;
//! and the Redis URL's password kept out of the banner, the logs and the errors.

use std::{path::Path, process::Command};

use crm_cache_redis::testing::{TestRedis, shared_server};
use serde_json::Value;

use crate::binary::{Running, access_token, banner_tenant, data, http, http_as, sign_in, start_with, stop};

const SECRET: &str = "one-secret-for-every-instance-0123456789";

/// A fresh database on the process's test PostgreSQL.
fn database() -> String {
    use crm_storage_postgres::testing::{create_database, shared_server};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let target = tokio::task::spawn_blocking(shared_server).await.unwrap();
        create_database(target).await.unwrap()
    })
}

/// Two servers on one database and `redis`, with `extra` flags each; the second serves
/// the tenant the first bootstrapped.
fn two_servers(redis: &str, dirs: (&Path, &Path), extra: &[&str]) -> (Running, Running) {
    let storage = database();
    let mut flags = vec!["--jwt-secret", SECRET, "--redis", redis];
    flags.extend_from_slice(extra);
    let first = start_with(&storage, dirs.0, &flags);
    let tenant = banner_tenant(&first);
    flags.extend_from_slice(&["--tenant-id", &tenant]);
    let second = start_with(&storage, dirs.1, &flags);
    (first, second)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn field(body: &str, name: &str) -> String {
    data(body)[name].as_str().unwrap_or_else(|| panic!("no {name}: {body}")).to_owned()
}

#[test]
fn two_instances_enforce_one_per_user_limit_and_one_sign_in_back_off_between_them() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let limits = ["--rate-limit-user", "5", "--login-attempts", "2"];
    let (first, second) = two_servers(&shared_server().url(), (a.path(), b.path()), &limits);
    let token = access_token(&first.addr);
    let statuses: Vec<u16> = (0..8)
        .map(|i| {
            let server = if i % 2 == 0 { &first } else { &second };
            http_as(&server.addr, "GET", "/api/v1/contacts", "", Some(&token)).0
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429], "5 a minute per user, across both instances");

    // Two free failures for (this client, this account), one on each instance; then
    // either instance makes the pair wait.
    let wrong = r#"{"email":"boss@example.com","password":"not-the-password"}"#;
    let failures: Vec<u16> = [&first, &second, &first, &second]
        .iter()
        .map(|server| http(&server.addr, "POST", "/api/v1/auth/login", wrong).0)
        .collect();
    assert_eq!(failures, [401, 401, 429, 429], "one sign-in back-off across both instances");
    stop(second);
    stop(first);
}

#[test]
fn two_instances_share_sessions_and_the_cache() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = two_servers(&shared_server().url(), (a.path(), b.path()), &[]);
    let (status, body) = sign_in(&first.addr);
    assert_eq!(status, 200, "{body}");

    // Signed in on the first, refreshed on the second, used on the first.
    let refresh = format!(r#"{{"refresh_token":"{}"}}"#, field(&body, "refresh_token"));
    let (status, body) = http(&second.addr, "POST", "/api/v1/auth/refresh", &refresh);
    assert_eq!(status, 200, "the second instance refreshes the first's session: {body}");
    let token = field(&body, "access_token");
    let (status, body) = http_as(&first.addr, "GET", "/api/v1/auth/me", "", Some(&token));
    assert_eq!(status, 200, "{body}");

    // Both read (and cache) a contact; an update through one is read through the other.
    let contact = r#"{"first_name":"Shared","last_name":"Before"}"#;
    let (status, body) = http_as(&first.addr, "POST", "/api/v1/contacts", contact, Some(&token));
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/v1/contacts/{}", json(&body)["data"]["meta"]["id"].as_str().unwrap());
    for server in [&first, &second, &first] {
        let (status, body) = http_as(&server.addr, "GET", &path, "", Some(&token));
        assert!(status == 200 && body.contains("Before"), "{status} {body}");
    }
    let change = r#"{"last_name":"After","version":1}"#;
    let (status, body) = http_as(&second.addr, "PATCH", &path, change, Some(&token));
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_as(&first.addr, "GET", &path, "", Some(&token));
    assert!(status == 200 && body.contains("After"), "the first instance reads the update at once: {status} {body}");

    // Signed out on the second: the second refuses the token at once, the first within
    // its principal cache's TTL (the default, 2 s).
    let (status, body) = http_as(&second.addr, "POST", "/api/v1/auth/logout", "{}", Some(&token));
    assert!(status == 200 || status == 204, "{status} {body}");
    let signed_out = std::time::Instant::now();
    let (status, _) = http_as(&second.addr, "GET", "/api/v1/auth/me", "", Some(&token));
    assert_eq!(status, 401, "the instance that signed out refuses the token at once");
    loop {
        let (status, _) = http_as(&first.addr, "GET", "/api/v1/auth/me", "", Some(&token));
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            signed_out.elapsed() < std::time::Duration::from_millis(2_500),
            "a session signed out on one instance is over on the other within the TTL"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status, body) = http(&first.addr, "GET", "/health/ready", "");
    let ready = json(&body);
    assert!(status == 200 && ready["data"]["redis"] == "ready", "{body}");
    assert_eq!(ready["data"]["storage"], "redis_postgres", "PostgreSQL behind the cache: {body}");
    stop(second);
    stop(first);
}

/// A Redis of the test's own, asking for `password`; its URL carries it.
fn redis_with_password(password: &str) -> TestRedis {
    let redis = TestRedis::start().unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    redis::cmd("CONFIG").arg("SET").arg("requirepass").arg(password).exec(&mut connection).unwrap();
    redis
}

#[test]
fn the_redis_password_is_never_printed_or_logged() {
    let password = "pw-7f3a9c-never-shown";
    let redis = redis_with_password(password);
    let url = format!("{}?pass={password}", redis.url());
    let dir = tempfile::tempdir().unwrap();
    let running = start_with("memory://", dir.path(), &["--redis", &url, "--log-level", "debug"]);
    assert!(running.banner.iter().any(|l| l.contains("redis:") && l.contains("***")), "{:?}", running.banner);
    let (status, body) = sign_in(&running.addr);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&running.addr, "GET", "/health/ready", "");
    assert_eq!(status, 200, "{body}");
    let banner = running.banner.join("\n");
    stop(running);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(!banner.contains(password) && !log.contains(password), "{banner}\n{log}");

    // A wrong password stops the server, and the error names the server, not the password.
    let wrong = format!("{}?pass=wrong-{password}", redis.url());
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["--bind", "127.0.0.1:0", "--storage", "memory://", "--redis", &wrong])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("cannot connect to Redis at"), "{stderr}");
    assert!(!stdout.contains(password) && !stderr.contains(password), "{stdout}{stderr}");
}

#[test]
fn readiness_fails_while_redis_is_down() {
    let redis = TestRedis::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let running = start_with("memory://", dir.path(), &["--redis", &redis.url()]);
    let (status, body) = http(&running.addr, "GET", "/health/ready", "");
    assert!(status == 200 && json(&body)["data"]["redis"] == "ready", "{body}");
    redis.kill().unwrap();
    let (status, body) = http(&running.addr, "GET", "/health/ready", "");
    assert_eq!(status, 503, "sessions and limits cannot be served without Redis: {body}");
    redis.restart().unwrap();
    let ready = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        http(&running.addr, "GET", "/health/ready", "").0 == 200
    });
    assert!(ready, "ready again once Redis is back");
    stop(running);
}

#[test]
fn redis_urls_show_without_their_password() {
    use crm_http::backends::RedisUrl;
    let cases = [
        ("redis://:s3cret@10.0.0.5:6380/2", "redis://:***@10.0.0.5:6380/2"),
        ("rediss://app:s3cret@cache.internal/0", "rediss://app:***@cache.internal/0"),
        ("redis+unix:///run/redis.sock?db=1&pass=s3cret", "redis+unix:///run/redis.sock?db=1&pass=***"),
        ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
    ];
    for (raw, shown) in cases {
        let url: RedisUrl = raw.parse().unwrap();
        assert_eq!(url.to_string(), shown);
        assert!(!format!("{url:?}").contains("s3cret"), "{url:?}");
        assert_eq!(url.mask(&format!("failed: {raw}")), format!("failed: {shown}"));
    }
    assert!("http://example.com".parse::<RedisUrl>().is_err());
}

/// `--redis` moves the job queue to Redis Streams; without it, jobs live in the storage.
#[tokio::test]
async fn the_job_queue_is_on_redis_with_redis_and_in_the_storage_without() {
    use clap::Parser as _;
    use crm_core::{jobs::NewJob, storage::memory::MemoryStorage};
    use crm_http::{backends::Backends, config::Config};

    let storage = MemoryStorage::shared();
    let plain = Backends::open(&Config::parse_from(["crm-server"]), storage.clone()).await.unwrap();
    assert_eq!(plain.jobs.name(), "storage");
    let url = shared_server().url();
    let on_redis = Backends::open(&Config::parse_from(["crm-server", "--redis", &url]), storage).await.unwrap();
    assert_eq!(on_redis.jobs.name(), "redis");
    // It is a working queue: what is enqueued through it is reserved back.
    let queue = format!("wiring-{}", uuid::Uuid::now_v7().simple());
    let id = on_redis.jobs.enqueue(NewJob::new(queue.clone(), serde_json::json!({ "n": 1 }))).await.unwrap();
    let reserved = on_redis.jobs.reserve(&queue, std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(reserved.map(|r| r.job.id), Some(id));
}
