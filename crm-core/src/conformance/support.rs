//! What the conformance cases share: builders of records and batches, and helpers
//! that read a storage back.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use rust_decimal::Decimal;
use uuid::Uuid;

use super::World;
use crate::{
    Meta, TenantId,
    customers::companies::{Company, NewCompany},
    customers::contacts::{Contact, NewContact},
    entity::{Entity, to_record},
    money::Currency,
    storage::{EntityKind, ListQuery, Record, Storage, StorageError, WriteBatch, WriteOp},
};

pub(super) type Store = Arc<dyn Storage>;

/// An exact decimal from its text.
pub(super) fn amount(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

/// A company of the world's tenant, owned by its admin and not stored yet: for cases
/// (here and in adapters' own tests) that write records straight to the storage.
pub fn company(w: &World, name: &str) -> Company {
    Company {
        meta: Meta::new(w.admin.tenant_id(), w.crm.now()),
        name: name.into(),
        industry: None,
        website: None,
        email: None,
        phone: None,
        address: None,
        owner_id: w.admin.user_id(),
    }
}

pub(super) fn contact(w: &World, last_name: &str, company: Option<&Company>) -> Contact {
    Contact {
        meta: Meta::new(w.admin.tenant_id(), w.crm.now()),
        first_name: "Test".into(),
        last_name: last_name.into(),
        email: None,
        phone: None,
        position: None,
        company_id: company.map(Entity::id),
        owner_id: w.admin.user_id(),
        lead_id: None,
    }
}

pub(super) fn rec<E: Entity>(e: &E) -> Record {
    to_record(e).unwrap()
}

pub(super) fn insert<E: Entity>(e: &E) -> WriteOp {
    WriteOp::Insert(rec(e))
}

pub(super) fn update<E: Entity>(before: &E, after: &mut E) -> WriteOp {
    after.meta_mut().version = before.meta().version + 1;
    WriteOp::Update { record: rec(after), expected_version: before.meta().version }
}

pub(super) fn batch(ops: Vec<WriteOp>) -> WriteBatch {
    WriteBatch { ops, ..WriteBatch::default() }
}

pub(super) fn tenant(w: &World) -> TenantId {
    w.admin.tenant_id()
}

pub(super) async fn exists<E: Entity>(s: &Store, w: &World, e: &E) -> bool {
    s.get(tenant(w), E::KIND, e.meta().id).await.unwrap().is_some()
}

pub(super) async fn commit(s: &Store, w: &World, ops: Vec<WriteOp>) -> Result<(), StorageError> {
    s.commit(tenant(w), batch(ops)).await
}

/// Reads every page of a listing and returns the ids in order.
pub(super) async fn all_pages(s: &Store, t: TenantId, kind: EntityKind, mut query: ListQuery) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let page = s.list(t, kind, &query).await.unwrap();
        assert!(page.items.len() <= query.limit, "a page holds more rows than its limit");
        ids.extend(page.items.iter().map(|r| r.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return ids,
        }
    }
    panic!("pagination never ended");
}

/// Creates `n` contacts through the service, with last names cycling over `names`.
pub(super) async fn seed_contacts(w: &World, n: usize, names: &[&str], company: Option<&Company>) -> Vec<Contact> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let input = NewContact {
            first_name: format!("First{i}"),
            last_name: names[i % names.len()].into(),
            email: Some(format!("person{i}@example.test")),
            company_id: company.map(Entity::id),
            ..NewContact::default()
        };
        out.push(w.crm.contacts().create(&w.admin, input).await.unwrap());
    }
    out
}

/// A company, an issued invoice of `quantity` × `unit_price` (no tax) for it, in EUR.
pub(super) async fn issued_invoice(w: &World, quantity: &str, unit_price: &str) -> crate::sales::invoices::Invoice {
    use crate::{sales::invoices::NewInvoice, sales::lines::LineInput};
    let company = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Billed".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let input = NewInvoice {
        company_id: company.id(),
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Service", amount(quantity), amount(unit_price))],
        payment_terms_days: Some(14),
        notes: None,
    };
    let draft = w.crm.invoices().create(&w.manager, input).await.unwrap();
    w.crm.invoices().issue(&w.manager, draft.id(), Some(1)).await.unwrap()
}

/// Waits without a runtime (crm-core has none): a timer thread completes a channel.
pub(super) async fn sleep(d: std::time::Duration) {
    let (done, wait) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = done.send(());
    });
    wait.await.unwrap();
}
