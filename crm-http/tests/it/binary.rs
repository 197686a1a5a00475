//! The real `crm-server` binary: boots on a free port of 127.0.0.1, prints where to go,
//! accepts a sign-in, and stops cleanly on SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

/// One HTTP/1.1 request over a plain socket; returns the status and the body.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_as(addr, method, path, body, None)
}

/// [`http`] with a bearer token.
pub(crate) fn http_as(addr: &str, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("authorization", a.as_str())).collect();
    http_with(addr, method, path, body, &headers)
}

/// [`http`] with more headers, as `(name, value)`.
pub(crate) fn http_with(addr: &str, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The `data` of a JSON response body.
pub(crate) fn data(body: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))["data"].clone()
}

/// A running `crm-server` and the address it printed.
pub(crate) struct Running {
    pub(crate) child: std::process::Child,
    pub(crate) addr: String,
    pub(crate) banner: Vec<String>,
}

pub(crate) fn start(storage: &str, data_dir: &std::path::Path) -> Running {
    start_with(storage, data_dir, &[])
}

pub(crate) fn start_with(storage: &str, data_dir: &std::path::Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["--bind", "127.0.0.1:0", "--storage", storage, "--admin-email", "boss@example.com"])
        .args(["--admin-password", "a-long-password", "--log-format", "json"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(data_dir.join("server.log")).unwrap()))
        .spawn()
        .unwrap();
    // A hung server fails the test instead of hanging it. Long enough for the slowest
    // test (a relay lease's takeover on a loaded CI machine took 50 s).
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(180));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("crm-server listening on http://").unwrap_or_else(|| panic!("{first}")).to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // The whole banner: a server printing into a closed pipe would stop.
    let banner: Vec<String> = lines.by_ref().take(7).map(Result::unwrap).collect();
    Running { child, addr, banner }
}

pub(crate) fn stop(mut running: Running) {
    let term = Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let exit = running.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

pub(crate) fn sign_in(addr: &str) -> (u16, String) {
    http(addr, "POST", "/api/v1/auth/login", r#"{"email":"boss@example.com","password":"a-long-password"}"#)
}

/// Signs the first admin in, which must succeed, and returns the access token.
pub(crate) fn access_token(addr: &str) -> String {
    let (status, body) = sign_in(addr);
    assert_eq!(status, 200, "sign-in: {body}");
    data(&body)["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {body}")).to_owned()
}

#[test]
fn the_binary_boots_signs_in_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let running = start("memory://", data.path());
    assert!(running.banner.iter().any(|l| l.contains("boss@example.com")), "{:?}", running.banner);
    let (status, body) = sign_in(&running.addr);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"access_token\""), "{body}");
    let (status, _) = http(&running.addr, "GET", "/health/ready", "");
    assert_eq!(status, 200);
    stop(running);
    // Structured logs: one JSON line per request, never the password or a token.
    let log = std::fs::read_to_string(data.path().join("server.log")).unwrap();
    let token = body.split("\"access_token\":\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(!log.contains("a-long-password") && !log.contains(token), "{log}");
    let login_line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["path"] == "/api/v1/auth/login")
        .unwrap_or_else(|| panic!("no access line for the sign-in: {log}"));
    assert_eq!(login_line["status"], 200);
    assert_eq!(login_line["method"], "POST");
    assert!(
        login_line["request_id"].is_string()
            && login_line["user_id"].is_string()
            && login_line["latency_ms"].is_number()
    );
}

#[test]
fn on_sled_the_tenant_and_its_admin_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sled://{}", data.path().join("db").display());
    let first = start(&url, data.path());
    assert!(first.banner.iter().any(|l| l.contains("first start: created")), "{:?}", first.banner);
    let (status, body) = sign_in(&first.addr);
    assert_eq!(status, 200, "{body}");
    stop(first);
    let second = start(&url, data.path());
    assert!(
        !second.banner.iter().any(|l| l.contains("first start: created")),
        "no second bootstrap: {:?}",
        second.banner
    );
    let (status, body) = sign_in(&second.addr);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&second.addr, "GET", "/health/ready", "");
    assert!(status == 200 && body.contains("sled"), "{body}");
    stop(second);
}

#[test]
fn another_server_serves_the_same_tenant_by_its_id() {
    let store = tempfile::tempdir().unwrap();
    let url = format!("sled://{}", store.path().join("db").display());
    let first = start(&url, store.path());
    let tenant = banner_tenant(&first);
    stop(first);
    // A server with its own, empty data directory, told which tenant to serve.
    let own_dir = tempfile::tempdir().unwrap();
    let second = start_with(&url, own_dir.path(), &["--tenant-id", &tenant]);
    assert!(!second.banner.iter().any(|l| l.contains("first start: created")), "{:?}", second.banner);
    let (status, body) = sign_in(&second.addr);
    assert_eq!(status, 200, "{body}");
    stop(second);

    let unknown = uuid::Uuid::now_v7().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["--bind", "127.0.0.1:0", "--storage", "memory://", "--tenant-id", &unknown])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no tenant {unknown}")));
}

/// The tenant id a banner names.
pub(crate) fn banner_tenant(running: &Running) -> String {
    let line = running.banner.iter().find(|l| l.trim_start().starts_with("tenant:"));
    line.and_then(|l| l.split("--tenant-id ").nth(1))
        .map(|id| id.trim_end_matches(')').to_owned())
        .unwrap_or_else(|| panic!("the banner names the tenant: {:?}", running.banner))
}

#[test]
fn two_servers_share_one_postgresql() {
    use crm_storage_postgres::testing::{create_database, shared_server};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let target = tokio::task::spawn_blocking(shared_server).await.unwrap();
        create_database(target).await.unwrap()
    });
    let secret = ["--jwt-secret", "one-secret-for-every-instance-0123456789"];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = start_with(&url, dir_a.path(), &secret);
    assert!(first.banner.iter().any(|l| l.contains("PostgreSQL")), "{:?}", first.banner);
    let tenant = banner_tenant(&first);
    let second = start_with(&url, dir_b.path(), &[secret[0], secret[1], "--tenant-id", &tenant]);

    // Signed in on one instance, served by the other: sessions live in the database.
    let token = access_token(&first.addr);
    let contact = r#"{"first_name":"Shared","last_name":"Row"}"#;
    let (status, body) = http_as(&second.addr, "POST", "/api/v1/contacts", contact, Some(&token));
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_as(&first.addr, "GET", "/api/v1/contacts?search=shared", "", Some(&token));
    assert!(status == 200 && body.contains("\"last_name\":\"Row\""), "{status} {body}");
    let (status, body) = http(&second.addr, "GET", "/health/ready", "");
    assert!(status == 200 && body.contains("postgres"), "{body}");
    stop(second);
    stop(first);
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server")).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--bind",
        "--storage",
        "--jwt-secret",
        "--cors-origins",
        "--rate-limit-ip",
        "--rate-limit-user",
        "--log-level",
        "--log-format",
        "--admin-email",
        "--admin-password",
        "--tenant-id",
        "--insecure-cookies",
        "--cookie-same-site",
        "--trusted-proxies",
        "--login-attempts",
        "--login-backoff-max",
        "--no-workers",
        "--metrics-bind",
        "--principal-cache-ttl",
        "--schedule",
        "worker",
        "CRM_JWT_SECRET",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_short_jwt_secret_stops_the_server_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["--bind", "127.0.0.1:0", "--storage", "memory://", "--jwt-secret", "too-short"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}

#[test]
fn same_site_none_without_secure_cookies_is_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["--bind", "127.0.0.1:0", "--storage", "memory://", "--log-format", "json"])
        .args(["--insecure-cookies", "--cookie-same-site", "none"])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--cookie-same-site none requires Secure cookies"), "{stderr}");
}
