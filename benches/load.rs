//! `crm-bench-load`: fills a storage with companies and contacts for `scripts/bench.sh`,
//! and writes their ids for wrk's scripts.
//!
//! - `sled://DIR` and `postgres://URL`: the storage is opened directly. The tenant and
//!   its admin are bootstrapped as `crm-server` would (a real argon2id password hash),
//!   the companies are made through the service, and the contacts, each with its
//!   `contact.created` audit entry, are committed in large batches (the bulk path).
//!   The tenant id is written for `crm-server --tenant-id`.
//! - `memory://`: the data lives in the server process, so it is loaded over HTTP
//!   (`--server`), signed in as the admin the server bootstrapped, with 32 requests in
//!   flight.
//!
//! Writes `OUT/tenant-id` (direct loads), `OUT/company-ids` and `OUT/contact-ids` (one
//! UUID a line).
//!
//! `crm-bench-load --storage sled:///tmp/db --contacts 100000 --companies 100 --out /tmp/ids`

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use clap::Parser;
use crm_core::{
    Crm, Meta, Principal,
    access::{audit::AuditLog, users::Bootstrap},
    customers::{
        companies::{Company, NewCompany},
        contacts::Contact,
    },
    entity::{Entity, to_record},
    storage::{EntityKind, Storage, WriteBatch, WriteOp},
};
use crm_storage_postgres::PostgresStorage;
use crm_storage_sled::{Durability, SledStorage};
use serde_json::{Value, json};
use uuid::Uuid;

/// Contacts per commit on the direct path (each with its audit entry: twice the records).
const BATCH: usize = 10_000;

/// Requests in flight when loading over HTTP.
const IN_FLIGHT: usize = 32;

/// The loader's command line.
#[derive(Debug, Parser)]
#[command(name = "crm-bench-load", about = "Loads companies and contacts for scripts/bench.sh")]
struct Args {
    /// `sled://DIR`, `postgres://…` (loaded directly) or `memory://` (over HTTP, `--server`).
    #[arg(long)]
    storage: String,
    /// Contacts to create, spread evenly over the companies.
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Companies to create.
    #[arg(long, default_value_t = 100)]
    companies: usize,
    /// The admin's email (bootstrapped on direct loads; signed in with over HTTP).
    #[arg(long)]
    email: String,
    /// The admin's password.
    #[arg(long)]
    password: String,
    /// The running server's base URL (`http://127.0.0.1:PORT`), for `memory://`.
    #[arg(long)]
    server: Option<String>,
    /// Directory for `tenant-id`, `company-ids` and `contact-ids`.
    #[arg(long)]
    out: PathBuf,
}

/// What a load made.
struct Loaded {
    /// The tenant, on direct loads (a server on `memory://` bootstrapped its own).
    tenant: Option<Uuid>,
    /// Company ids, in creation order.
    companies: Vec<Uuid>,
    /// Contact ids.
    contacts: Vec<Uuid>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.companies > 0, "--companies must be at least 1");
    let started = Instant::now();
    let loaded = match args.storage.split_once("://") {
        Some(("sled", path)) if !path.is_empty() => {
            let storage = SledStorage::open(path).unwrap_or_else(|e| panic!("open sled at {path}: {e}"));
            // No disk sync per commit while loading; one flush at the end.
            let loading = storage.with_durability(Durability::Background);
            let loaded = load_direct(Arc::new(loading), &args).await;
            storage.flush().await.expect("flush sled");
            loaded
        }
        Some(("postgres" | "postgresql", _)) => {
            let storage = Arc::new(PostgresStorage::connect(&args.storage).await.expect("connect to PostgreSQL"));
            let loaded = load_direct(storage.clone(), &args).await;
            let pool = sqlx::PgPool::connect(&args.storage).await.expect("connect for VACUUM ANALYZE");
            sqlx::query("VACUUM ANALYZE").execute(&pool).await.expect("VACUUM ANALYZE");
            pool.close().await;
            storage.close().await;
            loaded
        }
        Some(("memory", _)) => {
            let server = args.server.as_deref().expect("memory:// is loaded over HTTP: pass --server");
            load_http(server, &args).await
        }
        _ => panic!("unsupported storage URL `{}`: sled://DIR, postgres://… or memory://", args.storage),
    };
    std::fs::create_dir_all(&args.out).expect("create --out");
    if let Some(tenant) = loaded.tenant {
        std::fs::write(args.out.join("tenant-id"), format!("{tenant}\n")).expect("write tenant-id");
    }
    write_ids(&args.out.join("company-ids"), &loaded.companies);
    write_ids(&args.out.join("contact-ids"), &loaded.contacts);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "crm-bench-load: {} companies, {} contacts into {} in {secs:.1} s ({:.0} contacts/s)",
        loaded.companies.len(),
        loaded.contacts.len(),
        args.storage.split("://").next().unwrap_or_default(),
        loaded.contacts.len() as f64 / secs,
    );
}

fn write_ids(path: &Path, ids: &[Uuid]) {
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Bootstraps the tenant and admin, makes the companies through the service, and
/// commits the contacts with their audit entries `BATCH` at a time.
async fn load_direct(storage: Arc<dyn Storage>, args: &Args) -> Loaded {
    // The default password policy: the hash crm-server verifies at sign-in.
    let crm = Crm::builder(storage.clone()).build();
    let (tenant, _, admin) = crm
        .users()
        .bootstrap(Bootstrap {
            tenant_name: "Bench".into(),
            admin_email: args.email.clone(),
            admin_password: args.password.clone(),
            admin_first_name: "Ada".into(),
            admin_last_name: "Admin".into(),
        })
        .await
        .expect("bootstrap the tenant");
    let mut companies: Vec<Company> = Vec::with_capacity(args.companies);
    for i in 0..args.companies {
        let input = NewCompany {
            name: format!("Company {i:05}"),
            industry: Some(INDUSTRIES[i % INDUSTRIES.len()].into()),
            website: Some(format!("https://company{i:05}.example.com")),
            email: Some(format!("info@company{i:05}.example.com")),
            ..NewCompany::default()
        };
        companies.push(crm.companies().create(&admin, input).await.expect("create a company"));
    }
    let mut contacts = Vec::with_capacity(args.contacts);
    let mut from = 0;
    while from < args.contacts {
        let to = (from + BATCH).min(args.contacts);
        let mut ops = Vec::with_capacity(2 * (to - from));
        for i in from..to {
            let company = companies[i % companies.len()].id().uuid();
            let (contact, audit) = contact_with_audit(&admin, &person(i, company));
            contacts.push(contact.id);
            ops.push(WriteOp::Insert(contact));
            ops.push(WriteOp::Insert(audit));
        }
        storage.commit(admin.tenant_id(), WriteBatch { ops, ..WriteBatch::default() }).await.expect("bulk commit");
        from = to;
    }
    Loaded { tenant: Some(tenant.meta.id), companies: companies.iter().map(|c| c.id().uuid()).collect(), contacts }
}

/// A contact record owned by `admin` and its `contact.created` audit entry, as the
/// service's unit of work writes them.
fn contact_with_audit(admin: &Principal, input: &Value) -> (crm_core::storage::Record, crm_core::storage::Record) {
    let now = chrono::Utc::now();
    let text = |field: &str| input[field].as_str().map(str::to_owned);
    let contact = Contact {
        meta: Meta::new(admin.tenant_id(), now),
        first_name: text("first_name").unwrap_or_default(),
        last_name: text("last_name").unwrap_or_default(),
        email: text("email"),
        phone: text("phone"),
        position: text("position"),
        company_id: text("company_id").and_then(|id| id.parse().ok()).map(crm_core::Id::from_uuid),
        owner_id: admin.user_id(),
        lead_id: None,
    };
    let record = to_record(&contact).expect("contact record");
    let mut after = record.data.to_value();
    if let Some(fields) = after.as_object_mut() {
        fields.remove("meta");
    }
    let audit = AuditLog {
        meta: Meta::new(admin.tenant_id(), now),
        actor_id: Some(admin.user_id()),
        api_key_id: None,
        action: format!("{}.created", EntityKind::Contact),
        entity_kind: EntityKind::Contact,
        entity_id: record.id,
        changes: json!({ "after": after }),
    };
    (record, to_record(&audit).expect("audit record"))
}

/// Signs in to the server as the admin, then creates the companies and contacts with
/// `POST /api/v1/companies` and `POST /api/v1/contacts`, `IN_FLIGHT` at a time.
async fn load_http(server: &str, args: &Args) -> Loaded {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().build().expect("HTTP client");
    let api = format!("{}/api/v1", server.trim_end_matches('/'));
    let signed_in =
        post(&client, &format!("{api}/auth/login"), None, &json!({ "email": args.email, "password": args.password }))
            .await;
    let token = signed_in["access_token"].as_str().expect("access_token in the sign-in answer").to_owned();
    let mut companies = Vec::with_capacity(args.companies);
    for i in 0..args.companies {
        let body = json!({
            "name": format!("Company {i:05}"),
            "industry": INDUSTRIES[i % INDUSTRIES.len()],
            "website": format!("https://company{i:05}.example.com"),
            "email": format!("info@company{i:05}.example.com"),
        });
        companies.push(id_of(&post(&client, &format!("{api}/companies"), Some(&token), &body).await));
    }
    let (companies, next) = (Arc::new(companies), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, api, token, companies, next) =
                (client.clone(), api.clone(), token.clone(), companies.clone(), next.clone());
            let total = args.contacts;
            tokio::spawn(async move {
                let mut made = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return made;
                    }
                    let body = person(i, companies[i % companies.len()]);
                    made.push(id_of(&post(&client, &format!("{api}/contacts"), Some(&token), &body).await));
                }
            })
        })
        .collect();
    let mut contacts = Vec::with_capacity(args.contacts);
    for worker in workers {
        contacts.extend(worker.await.expect("loader task"));
    }
    let companies = Arc::try_unwrap(companies).unwrap_or_else(|shared| (*shared).clone());
    Loaded { tenant: None, companies, contacts }
}

/// POSTs `body` and returns the envelope's `data`; panics on anything but success.
async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> Value {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_else(|e| panic!("POST {url}: reading the answer: {e}"));
    assert!(status.is_success(), "POST {url}: {status}: {text}");
    let mut answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {url}: {e}: {text}"));
    answer["data"].take()
}

/// The `meta.id` of a created record.
fn id_of(data: &Value) -> Uuid {
    data["meta"]["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no meta.id in {data}"))
}

const FIRST_NAMES: [&str; 24] = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Margaret",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Tim",
    "Joan",
    "Claude",
    "Annie",
    "Bjarne",
    "Shafi",
    "Robin",
];
const LAST_NAMES: [&str; 32] = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Ritchie",
    "Allen",
    "Thompson",
    "Hamilton",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Backus",
    "Johnson",
    "Wirth",
    "Wilson",
    "Berners-Lee",
    "Clarke",
    "Shannon",
    "Easley",
    "Stroustrup",
    "Goldwasser",
    "Milner",
    "Kay",
    "Hoare",
    "Lamport",
    "Cerf",
    "Kahn",
    "Hellman",
    "Diffie",
    "Rivest",
];
const POSITIONS: [&str; 8] = [
    "Buyer",
    "Chief Executive Officer",
    "Office Manager",
    "Head of Procurement",
    "Engineer",
    "Finance Director",
    "Sales Manager",
    "Assistant",
];
const INDUSTRIES: [&str; 6] = ["Manufacturing", "Retail", "Software", "Logistics", "Healthcare", "Finance"];

/// The `i`-th contact, working for `company`, as the JSON body of `POST /contacts`
/// (the direct path reads the same fields): a unique email, a phone and a position.
fn person(i: usize, company: Uuid) -> Value {
    let first = FIRST_NAMES[i % FIRST_NAMES.len()];
    let last = LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()];
    json!({
        "first_name": first,
        "last_name": last,
        "email": format!("{}.{}.{i}@example.com", first.to_lowercase(), last.to_lowercase()),
        "phone": format!("+44 20 7{:03} {:04}", i / 10_000 % 1000, i % 10_000),
        "position": POSITIONS[i % POSITIONS.len()],
        "company_id": company,
    })
}
