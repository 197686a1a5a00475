//! Core calls on in-memory storage with 100k contacts: create, get by id, a filtered
//! page of 50, lead conversion and payment recording.
//!
//! `cargo bench -p crm-benches --bench core`

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use crm_benches::{new_contact, seed};
use crm_core::{
    PageRequest,
    conformance::World,
    contacts::ContactFilter,
    entity::Entity,
    invoices::NewInvoice,
    leads::{ConvertCompany, ConvertLead, LeadSource, NewLead},
    money::{Currency, LineInput},
    payments::{NewPayment, PaymentMethod},
    storage::memory::MemoryStorage,
};
use rust_decimal::Decimal;
use tokio::runtime::Runtime;

const CONTACTS: usize = 100_000;
const COMPANIES: usize = 100;

fn core_calls(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let (world, data) = rt.block_on(async {
        let world = World::new(Arc::new(MemoryStorage::new())).await;
        let data = seed(&world.crm, &world.admin, COMPANIES, CONTACTS).await;
        (world, data)
    });
    let (crm, admin) = (&world.crm, &world.admin);
    let mut group = c.benchmark_group("memory");

    let mut n = CONTACTS;
    group.bench_function("contact_create", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let input = new_contact(n, &data.companies[n % COMPANIES]);
            async move { black_box(crm.contacts().create(admin, input).await.expect("create")) }
        })
    });

    let mut i = 0;
    group.bench_function("contact_get_by_id", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % CONTACTS;
            let id = data.contact_ids[i];
            async move { black_box(crm.contacts().get(admin, id).await.expect("get")) }
        })
    });

    let page = PageRequest::first(50);
    let mut k = 0;
    group.bench_function("contact_list_company_page_50", |b| {
        b.to_async(&rt).iter(|| {
            k = (k + 1) % COMPANIES;
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
        b.to_async(&rt).iter(|| {
            k = (k + 1) % COMPANIES;
            let filter = ContactFilter { company_id: Some(data.companies[k].id()), ..ContactFilter::default() };
            let page = &sorted;
            async move { black_box(crm.contacts().list(admin, &filter, page).await.expect("list")) }
        })
    });

    group.bench_function("lead_convert", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
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
        b.to_async(&rt).iter(|| {
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

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = core_calls
}
criterion_main!(benches);
