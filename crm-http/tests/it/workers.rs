//! crm-server's workers through the real binary on PostgreSQL: `crm-server worker`
//! runs the scheduled jobs alone, and two servers on one database run each job once
//! per period between them (the leases).

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{NaiveDate, Utc};
use crm_core::{
    Crm, ManualClock, PageRequest, Principal,
    access::users::Bootstrap,
    customers::companies::NewCompany,
    entity::Entity,
    money::Currency,
    passwords::PasswordPolicy,
    sales::invoices::NewInvoice,
    sales::lines::LineInput,
    sales::quotes::{NewQuote, Quote, QuoteStatus},
};
use crm_storage_postgres::{
    PostgresStorage,
    testing::{create_database, shared_server},
};
use rust_decimal::Decimal;

use crate::binary::{banner_tenant, start_with, stop};

/// A new database of the test server, and a CRM on it whose clock stands `days_ago`
/// in the past (so documents can be dated before today).
async fn database(days_ago: i64) -> (String, Crm) {
    let target = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let url = create_database(target).await.unwrap();
    let storage = Arc::new(PostgresStorage::connect(&url).await.unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now() - chrono::Duration::days(days_ago)));
    let crm = Crm::builder(storage).clock(clock).passwords(PasswordPolicy::insecure_fast()).build();
    (url, crm)
}

async fn bootstrap(crm: &Crm) -> Principal {
    let input = Bootstrap {
        tenant_name: "Scheduled".into(),
        admin_email: "boss@example.com".into(),
        admin_password: "a-long-password".into(),
        admin_first_name: "Ada".into(),
        admin_last_name: "Admin".into(),
    };
    crm.users().bootstrap(input).await.unwrap().2
}

/// A sent quote valid until `valid_until`.
async fn sent_quote(crm: &Crm, admin: &Principal, valid_until: NaiveDate) -> Quote {
    let company = NewCompany { name: "Globex".into(), ..NewCompany::default() };
    let company = crm.companies().create(admin, company).await.unwrap();
    let input = NewQuote {
        company_id: company.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", Decimal::ONE, Decimal::TEN)],
        valid_until,
        notes: None,
    };
    let draft = crm.quotes().create(admin, input).await.unwrap();
    crm.quotes().send(admin, draft.id(), None).await.unwrap()
}

/// `crm-server worker` with `extra` flags, and its banner once it runs.
fn start_worker(url: &str, data_dir: &Path, extra: &[&str]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["worker", "--storage", url, "--log-format", "json"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(data_dir.join("server.log")).unwrap()))
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let banner: Vec<String> =
        BufReader::new(child.stdout.take().unwrap()).lines().take(4).map(Result::unwrap).collect();
    assert!(banner[0].starts_with("crm-server worker running"), "{banner:?}");
    (child, banner)
}

/// The `scheduled job ran` log lines of `job` in a server's log, as their lease epochs.
fn runs_of(data_dir: &Path, job: &str) -> Vec<u64> {
    let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["message"] == "scheduled job ran" && entry["job"] == job)
        .map(|entry| entry["epoch"].as_u64().unwrap())
        .collect()
}

#[test]
fn crm_server_worker_never_creates_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sled://{}", dir.path().join("db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["worker", "--storage", &storage, "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("crm-server worker needs a tenant: pass --tenant-id"), "{stderr}");
    assert!(!dir.path().join("tenant-id").exists(), "the worker bootstrapped a tenant");
}

#[test]
fn crm_server_worker_expires_a_past_due_quote_on_postgresql() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, past, admin, lapsed, valid) = rt.block_on(async {
        let (url, past) = database(10).await;
        let admin = bootstrap(&past).await;
        let today = past.today(admin.tenant_id()).await.unwrap();
        let lapsed = sent_quote(&past, &admin, today + chrono::Duration::days(1)).await;
        let valid = sent_quote(&past, &admin, today + chrono::Duration::days(30)).await;
        (url, past, admin, lapsed, valid)
    });
    let dir = tempfile::tempdir().unwrap();
    let tenant = admin.tenant_id().to_string();
    let (mut worker, banner) =
        start_worker(&url, dir.path(), &["--tenant-id", &tenant, "--schedule", "quote-expiry=1s"]);
    assert!(banner.iter().any(|l| l.contains("quote-expiry=1s")), "{banner:?}");

    let status = |quote: &Quote| rt.block_on(past.quotes().get(&admin, quote.id())).unwrap().status;
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&lapsed) != QuoteStatus::Expired {
        assert!(
            Instant::now() < deadline,
            "the worker did not expire the quote: {:?}",
            runs_of(dir.path(), "quote-expiry")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status(&valid), QuoteStatus::Sent, "a quote still valid was expired");
    assert!(!runs_of(dir.path(), "quote-expiry").is_empty());

    let term = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(term.success());
    assert!(worker.wait().unwrap().success(), "the worker exits 0 on SIGTERM");
}

#[test]
fn two_servers_on_one_postgresql_run_each_job_once_per_period() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, past, admin, invoice) = rt.block_on(async {
        let (url, past) = database(10).await;
        let admin = bootstrap(&past).await;
        let company = NewCompany { name: "Initech".into(), ..NewCompany::default() };
        let company = past.companies().create(&admin, company).await.unwrap();
        let input = NewInvoice {
            company_id: company.id(),
            contact_id: None,
            owner_id: None,
            currency: Currency::EUR,
            lines: vec![LineInput::new("Work", Decimal::ONE, Decimal::ONE_HUNDRED)],
            payment_terms_days: Some(1),
            notes: None,
        };
        let draft = past.invoices().create(&admin, input).await.unwrap();
        let invoice = past.invoices().issue(&admin, draft.id(), None).await.unwrap();
        (url, past, admin, invoice)
    });
    let tenant = admin.tenant_id().to_string();
    let schedule = "purge=2s,overdue-invoices=2s,quote-expiry=off";
    let flags =
        ["--tenant-id", &tenant, "--schedule", schedule, "--jwt-secret", "one-secret-for-every-instance-0123456789"];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let began = Instant::now();
    let first = start_with(&url, dir_a.path(), &flags);
    let second = start_with(&url, dir_b.path(), &flags);
    assert_eq!(banner_tenant(&second), tenant);
    std::thread::sleep(Duration::from_secs(9));
    stop(first);
    stop(second);
    let window = began.elapsed();

    let (on_a, on_b) = (runs_of(dir_a.path(), "purge"), runs_of(dir_b.path(), "purge"));
    eprintln!("purge (2 s period) in {window:?}: epochs {on_a:?} on the first server, {on_b:?} on the second");
    let epochs: Vec<u64> = on_a.into_iter().chain(on_b).collect();
    let most = window.as_secs() / 2 + 1;
    assert!(epochs.len() >= 2, "purge ran {} times in {window:?}", epochs.len());
    assert!(epochs.len() as u64 <= most, "purge ran {} times in {window:?} (2 s period): {epochs:?}", epochs.len());
    let mut distinct = epochs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), epochs.len(), "two runs under one grant: {epochs:?}");
    let overdue_runs =
        runs_of(dir_a.path(), "overdue-invoices").len() + runs_of(dir_b.path(), "overdue-invoices").len();
    assert!(overdue_runs as u64 <= most, "overdue-invoices ran {overdue_runs} times in {window:?}");

    let notifications = rt.block_on(past.notifications().list(&admin, false, &PageRequest::first(100))).unwrap();
    let told = notifications.items.iter().filter(|n| n.entity_id == invoice.meta.id && n.title.ends_with("is overdue"));
    assert_eq!(told.count(), 1, "the owner of an overdue invoice is told once");
}

#[test]
fn no_workers_serves_the_api_without_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sled://{}", dir.path().join("db").display());
    let server = start_with(&storage, dir.path(), &["--no-workers", "--schedule", "purge=1s"]);
    assert!(server.banner.iter().any(|l| l.contains("workers:  none here")), "{:?}", server.banner);
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = crate::binary::http(&server.addr, "GET", "/health/ready", "");
    stop(server);
    assert_eq!(status, 200);
    assert_eq!(runs_of(dir.path(), "purge"), Vec::<u64>::new(), "a --no-workers server ran a job");
}
