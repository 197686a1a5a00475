//! Shared set-up for the benchmarks: seeding data sets through the services, so every
//! storage is measured on the same data shape.

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, measurement::WallTime};
use crm_core::{
    Crm, Meta, PageRequest, Principal, TenantId,
    conformance::World,
    customers::companies::{Company, NewCompany},
    customers::contacts::{Contact, ContactFilter, NewContact},
    customers::leads::{ConvertCompany, ConvertLead, LeadSource, NewLead},
    entity::Entity,
    entity::to_record,
    money::Currency,
    sales::invoices::NewInvoice,
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    storage::{EntityKind, Record, Storage, WriteBatch, WriteOp},
};
use rust_decimal::Decimal;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// The data set of the core benchmarks: `contacts` contacts spread evenly over
/// `companies` companies.
pub struct Dataset {
    /// The companies, in creation order.
    pub companies: Vec<Company>,
    /// Ids of every seeded contact, in creation order.
    pub contact_ids: Vec<crm_core::Id<crm_core::customers::contacts::Contact>>,
}

/// Seeds companies and contacts through the services (with their audit entries).
pub async fn seed(crm: &Crm, p: &Principal, companies: usize, contacts: usize) -> Dataset {
    let mut company_list = Vec::with_capacity(companies);
    for i in 0..companies {
        let input = NewCompany { name: format!("Company {i:05}"), ..NewCompany::default() };
        company_list.push(crm.companies().create(p, input).await.expect("seed company"));
    }
    let mut contact_ids = Vec::with_capacity(contacts);
    for i in 0..contacts {
        let contact =
            crm.contacts().create(p, new_contact(i, &company_list[i % companies])).await.expect("seed contact");
        contact_ids.push(contact.id());
    }
    Dataset { companies: company_list, contact_ids }
}

/// The `i`-th contact of the data set's shape.
pub fn new_contact(i: usize, company: &Company) -> NewContact {
    NewContact {
        first_name: format!("First{i}"),
        last_name: format!("Last{:04}", i % 5000),
        email: Some(format!("contact{i}@bench.test")),
        company_id: Some(company.id()),
        ..NewContact::default()
    }
}

/// The `i`-th contact of [`new_contact`]'s shape as an entity of `admin`'s tenant, not
/// stored: for bulk loads that commit records straight to a storage.
pub fn unsaved_contact(admin: &Principal, company: &Company, i: usize) -> Contact {
    let input = new_contact(i, company);
    Contact {
        meta: Meta::new(admin.tenant_id(), chrono::Utc::now()),
        first_name: input.first_name,
        last_name: input.last_name,
        email: input.email,
        phone: None,
        position: None,
        company_id: input.company_id,
        owner_id: admin.user_id(),
        lead_id: None,
    }
}

/// The core calls every storage is measured on, as one criterion group named `name`:
/// create a contact, get one by id, a company's page of 50 (by id and by name), lead
/// conversion and payment recording, on a data set made by [`seed`].
pub fn core_calls(c: &mut Criterion, rt: &Runtime, name: &str, crm: &Crm, admin: &Principal, data: &Dataset) {
    let (contacts, companies) = (data.contact_ids.len(), data.companies.len());
    let mut group: criterion::BenchmarkGroup<'_, WallTime> = c.benchmark_group(name);

    let mut n = contacts;
    group.bench_function("contact_create", |b| {
        b.to_async(rt).iter(|| {
            n += 1;
            let input = new_contact(n, &data.companies[n % companies]);
            async move { black_box(crm.contacts().create(admin, input).await.expect("create")) }
        })
    });

    let mut i = 0;
    group.bench_function("contact_get_by_id", |b| {
        b.to_async(rt).iter(|| {
            i = (i + 7919) % contacts;
            let id = data.contact_ids[i];
            async move { black_box(crm.contacts().get(admin, id).await.expect("get")) }
        })
    });

    let page = PageRequest::first(50);
    let mut k = 0;
    group.bench_function("contact_list_company_page_50", |b| {
        b.to_async(rt).iter(|| {
            k = (k + 1) % companies;
            let filter = ContactFilter { company_id: Some(data.companies[k].id()), ..ContactFilter::default() };
            let page = &page;
            async move {
                let got = crm.contacts().list(admin, &filter, page).await.expect("list");
                assert_eq!(got.items.len(), 50);
                black_box(got)
            }
        })
    });

    let sorted = PageRequest { sort: Some("last_name".into()), ..PageRequest::first(50) };
    group.bench_function("contact_list_company_page_50_sorted_by_name", |b| {
        b.to_async(rt).iter(|| {
            k = (k + 1) % companies;
            let filter = ContactFilter { company_id: Some(data.companies[k].id()), ..ContactFilter::default() };
            let page = &sorted;
            async move { black_box(crm.contacts().list(admin, &filter, page).await.expect("list")) }
        })
    });

    group.bench_function("lead_convert", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let lead = crm.leads().create(admin, lead_input()).await.expect("lead");
                let input = ConvertLead { company: ConvertCompany::New(None), ..ConvertLead::default() };
                let start = Instant::now();
                black_box(crm.leads().convert(admin, lead.id(), input).await.expect("convert"));
                spent += start.elapsed();
            }
            spent
        })
    });

    // One invoice large enough to take every payment the bench records.
    let invoice = rt.block_on(async {
        let input = NewInvoice {
            company_id: data.companies[0].id(),
            contact_id: None,
            owner_id: None,
            currency: Currency::EUR,
            lines: vec![LineInput::new("Capacity", Decimal::from(1_000_000), Decimal::from(1_000))],
            payment_terms_days: None,
            notes: None,
        };
        let draft = crm.invoices().create(admin, input).await.expect("invoice");
        crm.invoices().issue(admin, draft.id(), None).await.expect("issue")
    });
    group.bench_function("payment_record", |b| {
        b.to_async(rt).iter(|| {
            let input = NewPayment {
                invoice_id: invoice.id(),
                amount: Decimal::new(1, 2),
                method: PaymentMethod::Card,
                paid_on: None,
                reference: None,
            };
            async move { black_box(crm.payments().record(admin, input).await.expect("payment")) }
        })
    });

    group.finish();
}

fn lead_input() -> NewLead {
    NewLead {
        first_name: "Bench".into(),
        last_name: "Lead".into(),
        email: Some("lead@bench.test".into()),
        phone: None,
        company_name: Some("Bench Co".into()),
        source: LeadSource::Website,
        score: Some(50),
        owner_id: None,
        notes: None,
    }
}

/// Contacts per commit when loading a data set: one big batch is the adapters' bulk path.
const LOAD_BATCH: usize = 50_000;

/// Contacts in the large data sets: `CRM_BENCH_CONTACTS`, default 1M.
pub fn bench_contacts() -> usize {
    std::env::var("CRM_BENCH_CONTACTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// The `i`-th contact of the data set as a record to commit.
pub fn contact_record(w: &World, i: usize, company: &Company) -> Record {
    to_record(&unsaved_contact(&w.admin, company, i)).expect("contact record")
}

/// Loads contacts `from..from + n` straight into the storage, `LOAD_BATCH` per commit;
/// returns their ids.
pub async fn import(s: &dyn Storage, w: &World, companies: &[Company], from: usize, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    let mut i = from;
    while i < from + n {
        let end = (i + LOAD_BATCH).min(from + n);
        let ops: Vec<WriteOp> =
            (i..end).map(|k| WriteOp::Insert(contact_record(w, k, &companies[k % companies.len()]))).collect();
        ids.extend(ops.iter().map(|op| op.target().1));
        s.commit(w.admin.tenant_id(), WriteBatch { ops, ..WriteBatch::default() }).await.expect("bulk import");
        i = end;
    }
    ids
}

/// Contact reads by id (each must exist) from 16 concurrent tasks for `secs` seconds;
/// returns reads/s.
pub async fn reads_per_second(s: Arc<dyn Storage>, tenant: TenantId, ids: Arc<Vec<Uuid>>, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let (s, ids, done) = (s.clone(), ids.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = (t as usize) * 7919;
                while Instant::now() < until {
                    i = (i + 104_729) % ids.len();
                    s.get(tenant, EntityKind::Contact, ids[i]).await.expect("get").expect("present");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("reader");
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

/// `n` companies made through the service, to spread loaded contacts over.
pub async fn companies(w: &World, n: usize) -> Vec<Company> {
    let mut companies = Vec::with_capacity(n);
    for i in 0..n {
        let input = NewCompany { name: format!("Company {i:05}"), ..NewCompany::default() };
        companies.push(w.crm.companies().create(&w.admin, input).await.expect("company"));
    }
    companies
}
