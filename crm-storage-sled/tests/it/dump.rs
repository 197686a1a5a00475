//! Export to JSON lines and import back: the same store, byte for byte, and usable.

use std::{io::Cursor, sync::Arc};

use crm_core::{
    CrmError, Id, PageRequest, Role,
    access::users::NewUser,
    conformance::World,
    customers::companies::{Company, NewCompany},
    customers::contacts::{ContactFilter, NewContact},
    entity::Entity,
    money::Currency,
    sales::invoices::NewInvoice,
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
};
use crm_storage_sled::{DumpError, SledStorage};
use rust_decimal::Decimal;

async fn populated() -> (SledStorage, World) {
    let storage = SledStorage::temporary().unwrap();
    let world = World::new(Arc::new(storage.clone())).await;
    let (crm, admin) = (&world.crm, &world.admin);
    let company =
        crm.companies().create(admin, NewCompany { name: "Globex".into(), ..NewCompany::default() }).await.unwrap();
    for i in 0..5 {
        let input = NewContact {
            first_name: format!("Ann{i}"),
            last_name: "Example".into(),
            email: Some(format!("ann{i}@globex.test")),
            company_id: Some(company.id()),
            ..NewContact::default()
        };
        crm.contacts().create(admin, input).await.unwrap();
    }
    let draft = crm.invoices().create(admin, invoice_for(company.id())).await.unwrap();
    let issued = crm.invoices().issue(admin, draft.id(), None).await.unwrap();
    let payment = NewPayment {
        invoice_id: issued.id(),
        amount: Decimal::new(10_00, 2),
        method: PaymentMethod::Card,
        paid_on: None,
        reference: None,
    };
    crm.payments().record(admin, payment).await.unwrap();
    (storage, world)
}

fn invoice_for(company_id: Id<Company>) -> NewInvoice {
    NewInvoice {
        company_id,
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", Decimal::from(3), Decimal::new(19_99, 2))],
        payment_terms_days: None,
        notes: None,
    }
}

fn export(storage: &SledStorage) -> Vec<u8> {
    let mut out = Vec::new();
    storage.export(&mut out).unwrap();
    out
}

#[tokio::test]
async fn export_then_import_restores_the_same_store() {
    let (original, world) = populated().await;
    let dump = export(&original);
    let restored = SledStorage::temporary().unwrap();
    let stats = restored.import(Cursor::new(dump.clone())).await.unwrap();
    assert!(stats.records > 10 && stats.counters > 0 && stats.events > 0, "{stats:?}");
    assert_eq!(export(&restored), dump, "a restored store exports exactly what it imported");

    // The restored store serves the services: indexes, uniques and counters came along.
    let crm = crm_core::Crm::new(Arc::new(restored));
    let admin = crm.users().principal(world.admin.tenant_id(), world.admin.user_id()).await.unwrap();
    let companies = crm.companies().list(&admin, &Default::default(), &PageRequest::first(50)).await.unwrap();
    let globex = companies.items.iter().find(|c| c.name == "Globex").expect("Globex restored");
    let filter = ContactFilter { company_id: Some(globex.id()), ..ContactFilter::default() };
    let contacts = crm.contacts().list(&admin, &filter, &PageRequest::first(50)).await.unwrap();
    assert_eq!(contacts.items.len(), 5);
    // Unique keys came along: the manager's email is still taken.
    let duplicate = NewUser {
        email: "MANAGER@acme.test".into(),
        password: "a long password".into(),
        first_name: "Copy".into(),
        last_name: "Cat".into(),
        role: Role::User,
        company_id: None,
    };
    let taken = crm.users().create(&admin, duplicate).await;
    assert!(matches!(taken, Err(CrmError::AlreadyExists { .. })), "{taken:?}");
    // Counters came along: the next invoice number follows the restored one.
    let draft = crm.invoices().create(&admin, invoice_for(globex.id())).await.unwrap();
    let issued = crm.invoices().issue(&admin, draft.id(), None).await.unwrap();
    assert_eq!(issued.number.as_deref(), Some("INV-2026-000002"));
}

#[tokio::test]
async fn import_refuses_a_store_with_data() {
    let (original, _world) = populated().await;
    let dump = export(&original);
    let err = original.import(Cursor::new(dump)).await.expect_err("importing over data must be refused");
    assert!(matches!(err, DumpError::NotEmpty), "{err:?}");
}

#[tokio::test]
async fn a_bad_dump_leaves_the_store_empty() {
    let (original, _world) = populated().await;
    let dump = String::from_utf8(export(&original)).unwrap();
    // A valid beginning, then a broken line.
    let lines: Vec<&str> = dump.lines().collect();
    let broken = format!("{}\n{}\n{{\"record\": 42}}\n", lines[0], lines[1]);
    let target = SledStorage::temporary().unwrap();
    let err = target.import(Cursor::new(broken)).await.expect_err("a broken line must fail the import");
    assert!(matches!(err, DumpError::Parse { line: 3, .. }), "{err:?}");
    let empty = export(&target);
    assert_eq!(String::from_utf8(empty).unwrap().lines().count(), 1, "only the header: nothing was kept");

    for not_a_dump in ["", "{\"counter\":{}}\n", "{\"header\":{\"format\":\"other\",\"version\":1}}\n"] {
        let err = target.import(not_a_dump.as_bytes()).await.expect_err("not a dump");
        assert!(matches!(err, DumpError::Format(_) | DumpError::Parse { .. }), "{not_a_dump:?}: {err:?}");
    }
}
