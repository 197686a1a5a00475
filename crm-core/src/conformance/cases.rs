//! The conformance cases. Each takes a fresh, empty storage and panics (with a message
//! naming what broke) when the storage misbehaves.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{collections::HashSet, sync::Arc};

use chrono::{Duration, TimeZone, Utc};
use futures::future::join_all;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::World;
use crate::{
    CrmError, Id, Meta, PageRequest, TenantId,
    companies::{Company, CompanyPatch, NewCompany},
    contacts::{Contact, ContactFilter, NewContact},
    deals::{DealStage, NewDeal},
    entity::{Entity, from_stored, to_record},
    money::Currency,
    storage::{
        AggregateQuery, CounterUpdate, EntityKind, FieldValue, Filter, GroupKey, ListQuery, OutboxEvent, Record, Sort,
        Storage, StorageError, TextSearch, WriteBatch, WriteOp,
    },
    users::User,
};

type Store = Arc<dyn Storage>;

/// An exact decimal from its text.
fn amount(text: &str) -> Decimal {
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

fn contact(w: &World, last_name: &str, company: Option<&Company>) -> Contact {
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

fn rec<E: Entity>(e: &E) -> Record {
    to_record(e).unwrap()
}

fn insert<E: Entity>(e: &E) -> WriteOp {
    WriteOp::Insert(rec(e))
}

fn update<E: Entity>(before: &E, after: &mut E) -> WriteOp {
    after.meta_mut().version = before.meta().version + 1;
    WriteOp::Update { record: rec(after), expected_version: before.meta().version }
}

fn batch(ops: Vec<WriteOp>) -> WriteBatch {
    WriteBatch { ops, ..WriteBatch::default() }
}

fn tenant(w: &World) -> TenantId {
    w.admin.tenant_id()
}

async fn exists<E: Entity>(s: &Store, w: &World, e: &E) -> bool {
    s.get(tenant(w), E::KIND, e.meta().id).await.unwrap().is_some()
}

async fn commit(s: &Store, w: &World, ops: Vec<WriteOp>) -> Result<(), StorageError> {
    s.commit(tenant(w), batch(ops)).await
}

/// Reads every page of a listing and returns the ids in order.
async fn all_pages(s: &Store, t: TenantId, kind: EntityKind, mut query: ListQuery) -> Vec<Uuid> {
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
async fn seed_contacts(w: &World, n: usize, names: &[&str], company: Option<&Company>) -> Vec<Contact> {
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

/// A missing id reads as absent, singly and in bulk.
pub async fn get_missing_is_none(s: Store) {
    let w = World::new(s.clone()).await;
    assert!(s.get(tenant(&w), EntityKind::Company, Uuid::now_v7()).await.unwrap().is_none());
    assert!(s.get_many(tenant(&w), EntityKind::Company, &[Uuid::now_v7()]).await.unwrap().is_empty());
    let err = w.crm.companies().get(&w.admin, Id::generate()).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { kind: EntityKind::Company, .. }), "{err:?}");
}

/// What is written is read back unchanged, singly and in bulk.
pub async fn insert_get_roundtrip(s: Store) {
    let w = World::new(s.clone()).await;
    let mut c = company(&w, "Roundtrip Ltd");
    c.industry = Some("Testing".into());
    c.email = Some("Hello@Roundtrip.test".into());
    let c2 = company(&w, "Second");
    commit(&s, &w, vec![insert(&c), insert(&c2)]).await.unwrap();
    let stored = s.get(tenant(&w), EntityKind::Company, c.meta.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(from_stored::<Company>(stored).unwrap(), c);
    let many = s.get_many(tenant(&w), EntityKind::Company, &[c.meta.id, c2.meta.id, Uuid::now_v7()]).await.unwrap();
    let ids: HashSet<Uuid> = many.iter().map(|r| r.id).collect();
    assert_eq!(ids, HashSet::from([c.meta.id, c2.meta.id]));
    s.ping().await.unwrap();
}

/// Inserting an id twice is refused.
pub async fn insert_duplicate_id_is_refused(s: Store) {
    let w = World::new(s.clone()).await;
    let c = company(&w, "Once");
    commit(&s, &w, vec![insert(&c)]).await.unwrap();
    let err = commit(&s, &w, vec![insert(&c)]).await.unwrap_err();
    assert!(
        matches!(err, StorageError::AlreadyExists { kind: EntityKind::Company, ref field } if field == "id"),
        "{err:?}"
    );
}

/// An update naming a version that is no longer current writes nothing.
pub async fn update_with_stale_version_conflicts(s: Store) {
    let w = World::new(s.clone()).await;
    let v1 = company(&w, "v1");
    commit(&s, &w, vec![insert(&v1)]).await.unwrap();
    let mut v2 = v1.clone();
    v2.name = "v2".into();
    commit(&s, &w, vec![update(&v1, &mut v2)]).await.unwrap();
    let mut stale = v1.clone();
    stale.name = "stale".into();
    let err = commit(&s, &w, vec![update(&v1, &mut stale)]).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { kind: EntityKind::Company, .. }), "{err:?}");
    let now: Company = from_stored(s.get(tenant(&w), EntityKind::Company, v1.meta.id).await.unwrap().unwrap()).unwrap();
    assert_eq!((now.name.as_str(), now.meta.version), ("v2", 2));
    let mut missing = company(&w, "missing");
    let err = commit(&s, &w, vec![update(&missing.clone(), &mut missing)]).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
}

/// A delete naming a stale version writes nothing; a current one removes the record.
pub async fn delete_with_stale_version_conflicts(s: Store) {
    let w = World::new(s.clone()).await;
    let v1 = company(&w, "v1");
    commit(&s, &w, vec![insert(&v1)]).await.unwrap();
    let mut v2 = v1.clone();
    commit(&s, &w, vec![update(&v1, &mut v2)]).await.unwrap();
    let delete = |version| WriteOp::Delete { kind: EntityKind::Company, id: v1.meta.id, expected_version: version };
    let err = commit(&s, &w, vec![delete(1)]).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { .. }), "{err:?}");
    assert!(exists(&s, &w, &v1).await);
    commit(&s, &w, vec![delete(2)]).await.unwrap();
    assert!(!exists(&s, &w, &v1).await);
    let err = commit(&s, &w, vec![delete(2)]).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
}

/// Many concurrent updates from the same version: exactly one wins, the rest conflict.
pub async fn concurrent_updates_never_overwrite(s: Store) {
    let w = World::new(s).await;
    let c =
        w.crm.companies().create(&w.admin, NewCompany { name: "Race".into(), ..NewCompany::default() }).await.unwrap();
    let companies = w.crm.companies();
    let attempts = (0..16).map(|i| {
        let patch = CompanyPatch { version: Some(1), name: Some(format!("writer {i}")), ..CompanyPatch::default() };
        companies.update(&w.manager, c.id(), patch)
    });
    let results = join_all(attempts).await;
    let winners: Vec<&Company> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one concurrent update from version 1 may win");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CrmError::Conflict { .. }), "losers must see a conflict, got {e:?}");
        }
    }
    let now = w.crm.companies().get(&w.admin, c.id()).await.unwrap();
    assert_eq!((now.name.as_str(), now.meta.version), (winners[0].name.as_str(), 2));
}

/// A batch that fails part-way leaves no record, counter or event behind.
pub async fn failed_batch_writes_nothing(s: Store) {
    let w = World::new(s.clone()).await;
    let existing = company(&w, "existing");
    commit(&s, &w, vec![insert(&existing)]).await.unwrap();
    let new_company = company(&w, "new");
    let new_contact = contact(&w, "New", Some(&new_company));
    let mut stale = existing.clone();
    stale.meta.version = 7;
    let mut after = stale.clone();
    let event = OutboxEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant(&w),
        name: "test.failed".into(),
        entity_kind: EntityKind::Company,
        entity_id: new_company.meta.id,
        payload: json!({}),
        occurred_at: Utc::now(),
    };
    let failing = WriteBatch {
        ops: vec![insert(&new_company), insert(&new_contact), update(&stale, &mut after)],
        counters: vec![CounterUpdate { key: "test:failed".into(), expected: 0, new: 1 }],
        events: vec![event.clone()],
    };
    let err = s.commit(tenant(&w), failing).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { .. }), "{err:?}");
    assert!(!exists(&s, &w, &new_company).await, "the first insert of a failed batch must not survive");
    assert!(!exists(&s, &w, &new_contact).await);
    assert_eq!(s.counter(tenant(&w), "test:failed").await.unwrap(), 0);
    assert!(!s.outbox_pending(10_000).await.unwrap().iter().any(|e| e.id == event.id));
    // A dangling reference at the end fails the whole batch as well.
    let dangling = contact(&w, "Dangling", Some(&company(&w, "never written")));
    let err = commit(&s, &w, vec![insert(&new_company), insert(&dangling)]).await.unwrap_err();
    assert!(matches!(err, StorageError::MissingReference { .. }), "{err:?}");
    assert!(!exists(&s, &w, &new_company).await);
}

/// A `Check` operation fails the batch once its record has moved on.
pub async fn check_op_guards_unchanged_records(s: Store) {
    let w = World::new(s.clone()).await;
    let c = company(&w, "guarded");
    commit(&s, &w, vec![insert(&c)]).await.unwrap();
    let check = |version| WriteOp::Check { kind: EntityKind::Company, id: c.meta.id, version };
    let first = contact(&w, "First", Some(&c));
    commit(&s, &w, vec![check(1), insert(&first)]).await.unwrap();
    let mut v2 = c.clone();
    commit(&s, &w, vec![update(&c, &mut v2)]).await.unwrap();
    let second = contact(&w, "Second", Some(&c));
    let err = commit(&s, &w, vec![check(1), insert(&second)]).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { .. }), "{err:?}");
    assert!(!exists(&s, &w, &second).await);
}

/// Unique keys are unique per tenant and kind, compared after normalization.
pub async fn unique_keys_are_enforced_per_tenant(s: Store) {
    let w = World::new(s.clone()).await;
    let new_user = |email: &str| crate::users::NewUser {
        email: email.into(),
        password: "long enough".into(),
        first_name: "Dup".into(),
        last_name: "Licate".into(),
        role: crate::Role::User,
        company_id: None,
    };
    w.crm.users().create(&w.admin, new_user("dup@example.test")).await.unwrap();
    let err = w.crm.users().create(&w.admin, new_user("DUP@Example.test")).await.unwrap_err();
    assert!(
        matches!(err, CrmError::AlreadyExists { kind: EntityKind::User, ref field } if field == "email"),
        "{err:?}"
    );
    let other = World::new(s).await;
    other.crm.users().create(&other.admin, new_user("dup@example.test")).await.unwrap();
}

/// A unique key freed by one record can be taken by another in the same batch.
pub async fn unique_key_can_move_within_one_batch(s: Store) {
    let w = World::new(s.clone()).await;
    let a: User = w.crm.users().get(&w.admin, w.user.user_id()).await.unwrap();
    let mut a_after = a.clone();
    a_after.email = "moved@acme.test".into();
    let mut b = a.clone();
    b.meta = Meta::new(tenant(&w), w.crm.now());
    b.email = a.email.to_uppercase();
    commit(&s, &w, vec![update(&a, &mut a_after), insert(&b)]).await.unwrap();
    let mut c = b.clone();
    c.meta = Meta::new(tenant(&w), w.crm.now());
    c.email = "Moved@Acme.test".into();
    let err = commit(&s, &w, vec![insert(&c)]).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { ref field, .. } if field == "email"), "{err:?}");
    let mut d = c.clone();
    d.email = "fresh@acme.test".into();
    let mut e = c.clone();
    e.meta = Meta::new(tenant(&w), w.crm.now());
    e.email = "fresh@acme.test".into();
    let err = commit(&s, &w, vec![insert(&d), insert(&e)]).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "two inserts of one key in a batch: {err:?}");
}

/// A record cannot point at a record that does not exist (or lives in another tenant).
pub async fn references_must_exist(s: Store) {
    let w = World::new(s.clone()).await;
    let ghost = company(&w, "ghost");
    let orphan = contact(&w, "Orphan", Some(&ghost));
    let err = commit(&s, &w, vec![insert(&orphan)]).await.unwrap_err();
    assert!(
        matches!(err, StorageError::MissingReference { ref field, kind: EntityKind::Company, .. } if field == "company_id"),
        "{err:?}"
    );
    let other = World::new(s.clone()).await;
    let theirs = company(&other, "theirs");
    commit(&s, &other, vec![insert(&theirs)]).await.unwrap();
    let cross = contact(&w, "Cross", Some(&theirs));
    let err = commit(&s, &w, vec![insert(&cross)]).await.unwrap_err();
    assert!(matches!(err, StorageError::MissingReference { .. }), "cross-tenant reference: {err:?}");
    // Service level: the error names the field.
    let err = w
        .crm
        .contacts()
        .create(
            &w.admin,
            NewContact {
                first_name: "A".into(),
                last_name: "B".into(),
                company_id: Some(ghost.id()),
                ..NewContact::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "company_id"), "{err:?}");
}

/// A referenced record cannot be deleted, unless the same batch removes every pointer.
pub async fn referenced_records_cannot_be_deleted(s: Store) {
    let w = World::new(s.clone()).await;
    let c = company(&w, "parent");
    let child = contact(&w, "Child", Some(&c));
    commit(&s, &w, vec![insert(&c), insert(&child)]).await.unwrap();
    let delete_company = WriteOp::Delete { kind: EntityKind::Company, id: c.meta.id, expected_version: 1 };
    let err = commit(&s, &w, vec![delete_company.clone()]).await.unwrap_err();
    assert!(matches!(err, StorageError::Referenced { by: EntityKind::Contact, .. }), "{err:?}");
    let err = w.crm.companies().delete(&w.admin, c.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Referenced { by: EntityKind::Contact, .. }), "{err:?}");
    // Detaching the child and deleting the parent together is fine.
    let mut detached = child.clone();
    detached.company_id = None;
    commit(&s, &w, vec![update(&child, &mut detached), delete_company]).await.unwrap();
    assert!(!exists(&s, &w, &c).await);
}

/// Audit entries are written with each change and can never be changed or removed.
pub async fn audit_log_is_append_only(s: Store) {
    let w = World::new(s.clone()).await;
    let c = w
        .crm
        .companies()
        .create(&w.manager, NewCompany { name: "Audited".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let filter = crate::audit::AuditFilter { entity_id: Some(c.meta.id), ..Default::default() };
    let entries = w.crm.audit().list(&w.admin, &filter, &PageRequest::default()).await.unwrap();
    assert_eq!(entries.items.len(), 1);
    let entry = &entries.items[0];
    assert_eq!((entry.action.as_str(), entry.actor_id), ("company.created", Some(w.manager.user_id())));
    let mut changed = entry.clone();
    changed.action = "forged".into();
    let err = commit(&s, &w, vec![update(entry, &mut changed)]).await.unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err:?}");
    let err =
        commit(&s, &w, vec![WriteOp::Delete { kind: EntityKind::AuditLog, id: entry.meta.id, expected_version: 1 }])
            .await
            .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err:?}");
    let err = w.crm.audit().list(&w.manager, &filter, &PageRequest::default()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "only admins read the audit log: {err:?}");
}

/// Counters move only from the value read, atomically with the batch, per tenant.
pub async fn counters_advance_atomically(s: Store) {
    let w = World::new(s.clone()).await;
    let t = tenant(&w);
    assert_eq!(s.counter(t, "doc:2026").await.unwrap(), 0);
    let advance = |expected, new| CounterUpdate { key: "doc:2026".into(), expected, new };
    let first = company(&w, "numbered 1");
    s.commit(t, WriteBatch { ops: vec![insert(&first)], counters: vec![advance(0, 1)], events: vec![] }).await.unwrap();
    assert_eq!(s.counter(t, "doc:2026").await.unwrap(), 1);
    let second = company(&w, "numbered 2");
    let err = s
        .commit(t, WriteBatch { ops: vec![insert(&second)], counters: vec![advance(0, 1)], events: vec![] })
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Conflict { .. }), "{err:?}");
    assert!(!exists(&s, &w, &second).await);
    assert_eq!(s.counter(t, "doc:2027").await.unwrap(), 0, "counters are independent");
    let other = World::new(s.clone()).await;
    assert_eq!(s.counter(tenant(&other), "doc:2026").await.unwrap(), 0, "counters are per tenant");
}

/// A batch with a stale counter is a `Conflict`, even when the document number it
/// derived from that counter is already taken: the caller must retry, not give up.
pub async fn stale_counter_wins_over_taken_number(s: Store) {
    let w = World::new(s.clone()).await;
    let first = issued_invoice(&w, "1", "1").await;
    let mut second = issued_invoice(&w, "1", "1").await;
    assert_eq!(s.counter(tenant(&w), "invoice:2026").await.unwrap(), 2);
    let before = second.clone();
    second.number = first.number.clone();
    let racing = WriteBatch {
        ops: vec![update(&before, &mut second)],
        counters: vec![CounterUpdate { key: "invoice:2026".into(), expected: 0, new: 1 }],
        events: vec![],
    };
    let err = s.commit(tenant(&w), racing).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict { kind: EntityKind::Tenant, .. }), "{err:?}");
}

/// Events committed with a batch are pending until acknowledged, oldest first.
pub async fn outbox_records_and_acknowledges(s: Store) {
    let w = World::new(s.clone()).await;
    let c = company(&w, "evented");
    let events: Vec<OutboxEvent> = (0..3)
        .map(|i| OutboxEvent {
            id: Uuid::now_v7(),
            tenant_id: tenant(&w),
            name: format!("test.event{i}"),
            entity_kind: EntityKind::Company,
            entity_id: c.meta.id,
            payload: json!({ "n": i }),
            occurred_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        })
        .collect();
    s.commit(tenant(&w), WriteBatch { ops: vec![insert(&c)], counters: vec![], events: events.clone() }).await.unwrap();
    let pending = s.outbox_pending(10_000).await.unwrap();
    let ours: Vec<&OutboxEvent> = pending.iter().filter(|e| e.entity_id == c.meta.id).collect();
    assert_eq!(ours, events.iter().collect::<Vec<_>>(), "pending events come back whole, in id order");
    s.outbox_ack(&[events[0].id, events[1].id, Uuid::now_v7()]).await.unwrap();
    let pending = s.outbox_pending(10_000).await.unwrap();
    let left: Vec<Uuid> = pending.iter().filter(|e| e.entity_id == c.meta.id).map(|e| e.id).collect();
    assert_eq!(left, vec![events[2].id]);
    // Domain events come from the services: a lead assigned to someone else.
    let lead = w
        .crm
        .leads()
        .create(
            &w.admin,
            crate::leads::NewLead {
                first_name: "Eve".into(),
                last_name: "Event".into(),
                email: None,
                phone: None,
                company_name: None,
                source: crate::leads::LeadSource::Website,
                score: None,
                owner_id: Some(w.user.user_id()),
                notes: None,
            },
        )
        .await
        .unwrap();
    let pending = s.outbox_pending(10_000).await.unwrap();
    assert!(pending.iter().any(|e| e.entity_id == lead.meta.id && e.name == "lead.assigned"), "{pending:?}");
}

/// No read or write crosses a tenant, through the storage or the services.
pub async fn tenants_are_isolated(s: Store) {
    let a = World::new(s.clone()).await;
    let b = World::new(s.clone()).await;
    let c =
        a.crm.companies().create(&a.admin, NewCompany { name: "A's".into(), ..NewCompany::default() }).await.unwrap();
    assert!(s.get(tenant(&b), EntityKind::Company, c.meta.id).await.unwrap().is_none());
    assert!(s.get_many(tenant(&b), EntityKind::Company, &[c.meta.id]).await.unwrap().is_empty());
    let listed = s.list(tenant(&b), EntityKind::Company, &ListQuery::default()).await.unwrap();
    assert!(!listed.items.iter().any(|r| r.id == c.meta.id));
    let agg = s.aggregate(tenant(&b), EntityKind::Company, &AggregateQuery::default()).await.unwrap();
    let counted: u64 = agg.iter().map(|r| r.count).sum();
    assert_eq!(counted, 1, "tenant b sees only its own client company");
    for p in [&b.admin, &b.manager] {
        let err = b.crm.companies().get(p, c.id()).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound { .. }), "{err:?}");
        let patch = CompanyPatch { name: Some("hijacked".into()), ..CompanyPatch::default() };
        let err = b.crm.companies().update(p, c.id(), patch).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound { .. }), "{err:?}");
        let err = b.crm.companies().delete(p, c.id(), None).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound { .. }), "{err:?}");
    }
    let cross_list = b.crm.companies().list(&b.admin, &Default::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(cross_list.items.len(), 1, "tenant b lists only its own client company");
    assert!(cross_list.items.iter().all(|x| x.meta.tenant_id == tenant(&b)));
}

/// Equality, set, range and null filters select exactly the matching rows.
pub async fn filters_select_exactly(s: Store) {
    let w = World::new(s.clone()).await;
    let acme =
        w.crm.companies().create(&w.admin, NewCompany { name: "Acme".into(), ..NewCompany::default() }).await.unwrap();
    let at_acme = seed_contacts(&w, 7, &["Adams"], Some(&acme)).await;
    w.clock.set(w.crm.now() + Duration::days(10));
    let loose = seed_contacts(&w, 5, &["Baker"], None).await;
    let mine = w
        .crm
        .contacts()
        .create(&w.user, NewContact { first_name: "U".into(), last_name: "Owned".into(), ..NewContact::default() })
        .await
        .unwrap();
    let ids = |v: &[Contact]| v.iter().map(|c| c.meta.id).collect::<HashSet<_>>();
    let list = async |filter: ContactFilter| {
        let page = PageRequest { limit: Some(500), ..PageRequest::default() };
        ids(&w.crm.contacts().list(&w.admin, &filter, &page).await.unwrap().items)
    };
    assert_eq!(list(ContactFilter { company_id: Some(acme.id()), ..Default::default() }).await, ids(&at_acme));
    assert_eq!(
        list(ContactFilter { owner_id: Some(w.user.user_id()), ..Default::default() }).await,
        ids(std::slice::from_ref(&mine))
    );
    let later = w.crm.now() - Duration::days(1);
    let mut recent = ids(&loose);
    recent.insert(mine.meta.id);
    assert_eq!(list(ContactFilter { created_from: Some(later), ..Default::default() }).await, recent);
    assert_eq!(list(ContactFilter { created_to: Some(later), ..Default::default() }).await, ids(&at_acme));
    assert_eq!(list(ContactFilter { email: Some("PERSON3@example.test".into()), ..Default::default() }).await.len(), 2);
    // Null and set filters, straight through the contract.
    let no_company = ListQuery { limit: 500, ..ListQuery::filtered(vec![Filter::eq("company_id", FieldValue::Null)]) };
    let got: HashSet<Uuid> =
        s.list(tenant(&w), EntityKind::Contact, &no_company).await.unwrap().items.iter().map(|r| r.id).collect();
    assert_eq!(got, recent);
    let owners = Filter::one_of("owner_id", [w.user.user_id().into(), w.other_user.user_id().into()]);
    let got = s.list(tenant(&w), EntityKind::Contact, &ListQuery::filtered(vec![owners])).await.unwrap();
    assert_eq!(got.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![mine.meta.id]);
}

/// Sorting by a field orders by (value, id), and descending is the exact reverse.
pub async fn sorts_order_with_id_tiebreak(s: Store) {
    let w = World::new(s.clone()).await;
    let contacts = seed_contacts(&w, 24, &["Young", "Adams", "Miller", "adams"], None).await;
    let mut expected: Vec<(String, Uuid)> = contacts.iter().map(|c| (c.last_name.clone(), c.meta.id)).collect();
    expected.sort();
    let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();
    for limit in [500, 5] {
        let asc =
            ListQuery { sort: Sort { field: Some("last_name"), descending: false }, limit, ..ListQuery::default() };
        assert_eq!(all_pages(&s, tenant(&w), EntityKind::Contact, asc.clone()).await, expected);
        let desc = ListQuery { sort: Sort { field: Some("last_name"), descending: true }, ..asc };
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(all_pages(&s, tenant(&w), EntityKind::Contact, desc).await, reversed);
    }
    let by_id = all_pages(&s, tenant(&w), EntityKind::Contact, ListQuery { limit: 7, ..ListQuery::default() }).await;
    let mut sorted_ids: Vec<Uuid> = contacts.iter().map(|c| c.meta.id).collect();
    sorted_ids.sort();
    assert_eq!(by_id, sorted_ids);
}

/// Walking every page returns every matching row exactly once, for each order.
pub async fn pagination_has_no_duplicates_or_gaps(s: Store) {
    let w = World::new(s.clone()).await;
    let acme =
        w.crm.companies().create(&w.admin, NewCompany { name: "Acme".into(), ..NewCompany::default() }).await.unwrap();
    seed_contacts(&w, 23, &["B", "A", "C"], Some(&acme)).await;
    seed_contacts(&w, 34, &["B", "D"], None).await;
    for field in [None, Some("last_name"), Some("created_at")] {
        for descending in [false, true] {
            for filters in [vec![], vec![Filter::eq("company_id", acme.id())]] {
                let expect = if filters.is_empty() { 57 } else { 23 };
                let q = ListQuery { filters, sort: Sort { field, descending }, limit: 10, ..ListQuery::default() };
                let ids = all_pages(&s, tenant(&w), EntityKind::Contact, q).await;
                let unique: HashSet<&Uuid> = ids.iter().collect();
                assert_eq!((ids.len(), unique.len()), (expect, expect), "sort {field:?} desc {descending}");
            }
        }
    }
    // Service paging hands out opaque cursors that work the same way.
    let mut page = PageRequest::first(20);
    let mut seen = HashSet::new();
    loop {
        let got = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &page).await.unwrap();
        for c in &got.items {
            assert!(seen.insert(c.meta.id), "duplicate across service pages");
        }
        match got.next {
            Some(next) => page = page.after(&next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 57);
    let bad = PageRequest { cursor: Some("not-a-cursor".into()), ..PageRequest::default() };
    let err = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &bad).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "cursor"), "{err:?}");
}

/// Rows inserted while paging never make a page repeat or skip a row that was there.
pub async fn pagination_is_stable_under_inserts(s: Store) {
    let w = World::new(s.clone()).await;
    let original = seed_contacts(&w, 30, &["M"], None).await;
    for field in [None, Some("last_name")] {
        let mut q = ListQuery { sort: Sort { field, descending: false }, limit: 8, ..ListQuery::default() };
        let mut seen: Vec<Uuid> = Vec::new();
        let mut round = 0;
        loop {
            let page = s.list(tenant(&w), EntityKind::Contact, &q).await.unwrap();
            seen.extend(page.items.iter().map(|r| r.id));
            // Insert rows that sort before and after the cursor.
            seed_contacts(&w, 2, &["A", "Z"], None).await;
            round += 1;
            match page.next {
                Some(next) if round < 100 => q.after = Some(next),
                _ => break,
            }
        }
        let unique: HashSet<&Uuid> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a row appeared twice while inserting (sort {field:?})");
        for c in &original {
            assert!(unique.contains(&c.meta.id), "a row present from the start was skipped (sort {field:?})");
        }
    }
}

/// The total counts every match, whatever the page and cursor.
pub async fn totals_count_all_matches(s: Store) {
    let w = World::new(s.clone()).await;
    let acme =
        w.crm.companies().create(&w.admin, NewCompany { name: "Acme".into(), ..NewCompany::default() }).await.unwrap();
    seed_contacts(&w, 12, &["A"], Some(&acme)).await;
    seed_contacts(&w, 5, &["A"], None).await;
    let filter = ContactFilter { company_id: Some(acme.id()), ..Default::default() };
    let page = PageRequest { limit: Some(5), with_total: true, ..PageRequest::default() };
    let first = w.crm.contacts().list(&w.admin, &filter, &page).await.unwrap();
    assert_eq!((first.items.len(), first.total), (5, Some(12)));
    let second = w.crm.contacts().list(&w.admin, &filter, &page.after(&first.next.unwrap())).await.unwrap();
    assert_eq!(second.total, Some(12));
    let all = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &page).await.unwrap();
    assert_eq!(all.total, Some(17));
    let none = PageRequest { with_total: false, ..page };
    assert_eq!(w.crm.contacts().list(&w.admin, &filter, &none).await.unwrap().total, None);
}

/// Text search matches any searchable field, ignoring case.
pub async fn text_search_ignores_case(s: Store) {
    let w = World::new(s.clone()).await;
    let alice = w
        .crm
        .contacts()
        .create(
            &w.admin,
            NewContact {
                first_name: "Alice".into(),
                last_name: "Smith".into(),
                email: Some("wonder@land.test".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    seed_contacts(&w, 10, &["Jones"], None).await;
    let search = async |term: &str| {
        let page = PageRequest { search: Some(term.into()), limit: Some(500), ..PageRequest::default() };
        w.crm.contacts().list(&w.admin, &ContactFilter::default(), &page).await.unwrap().items
    };
    for term in ["ALI", "smi", "WONDER@", "land.TEST"] {
        let found = search(term).await;
        assert_eq!(found.iter().map(|c| c.meta.id).collect::<Vec<_>>(), vec![alice.meta.id], "term {term}");
    }
    assert_eq!(search("jones").await.len(), 10);
    assert!(search("zzz").await.is_empty());
    let raw = ListQuery {
        search: Some(TextSearch { fields: Contact::SEARCHABLE, term: "alice".into() }),
        ..ListQuery::default()
    };
    assert_eq!(s.list(tenant(&w), EntityKind::Contact, &raw).await.unwrap().items.len(), 1);
}

/// Aggregates count and sum per group, by field and by month.
pub async fn aggregates_group_and_sum(s: Store) {
    let w = World::new(s.clone()).await;
    let deal = async |value: &str, stage: Option<DealStage>| {
        let input = NewDeal {
            title: format!("Deal {value}"),
            company_id: None,
            contact_id: None,
            owner_id: None,
            amount: amount(value),
            currency: Currency::EUR,
            stage,
            expected_close_date: None,
        };
        w.crm.deals().create(&w.admin, input).await.unwrap()
    };
    deal("100.00", None).await;
    deal("250.50", None).await;
    w.clock.set(Utc.with_ymd_and_hms(2026, 4, 2, 9, 0, 0).unwrap());
    deal("1000.00", Some(DealStage::Negotiation)).await;
    let by_stage = AggregateQuery {
        filters: vec![],
        group_by: vec![GroupKey::Field("stage")],
        sums: vec!["amount", "weighted_amount"],
    };
    let rows = s.aggregate(tenant(&w), EntityKind::Deal, &by_stage).await.unwrap();
    let summary: Vec<(FieldValue, u64, Vec<Decimal>)> =
        rows.into_iter().map(|r| (r.key[0].clone(), r.count, r.sums)).collect();
    assert_eq!(
        summary,
        vec![
            ("negotiation".into(), 1, vec![amount("1000.00"), amount("750.00")]),
            ("prospecting".into(), 2, vec![amount("350.50"), amount("35.05")]),
        ]
    );
    let by_month = AggregateQuery { group_by: vec![GroupKey::Month("created_at")], sums: vec!["amount"], ..by_stage };
    let rows = s.aggregate(tenant(&w), EntityKind::Deal, &by_month).await.unwrap();
    let months: Vec<(FieldValue, u64)> = rows.iter().map(|r| (r.key[0].clone(), r.count)).collect();
    let month = |m| FieldValue::Date(chrono::NaiveDate::from_ymd_opt(2026, m, 1).unwrap());
    assert_eq!(months, vec![(month(3), 2), (month(4), 1)]);
    let filtered = AggregateQuery {
        filters: vec![Filter::gte("amount", amount("200.00"))],
        group_by: vec![],
        sums: vec!["amount"],
    };
    let rows = s.aggregate(tenant(&w), EntityKind::Deal, &filtered).await.unwrap();
    assert_eq!((rows[0].count, rows[0].sums[0]), (2, amount("1250.50")));
}

/// Asserts a record is gone: reading it through its service answers `NotFound`.
fn assert_gone<T: std::fmt::Debug>(result: crate::Result<T>) {
    let err = result.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { .. }), "expected NotFound after delete, got {err:?}");
}

/// Create, read, update and delete every entity through its service.
pub async fn services_crud_every_entity(s: Store) {
    use crate::{
        contacts::ContactPatch,
        deals::DealPatch,
        leads::{LeadPatch, NewLead},
        users::{NewUser, UserPatch},
    };
    let w = World::new(s).await;
    let (crm, admin) = (&w.crm, &w.admin);

    let user = crm
        .users()
        .create(
            admin,
            NewUser {
                email: "crud@acme.test".into(),
                password: "crud-password".into(),
                first_name: "Cru".into(),
                last_name: "D".into(),
                role: crate::Role::User,
                company_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.users().get(admin, user.id()).await.unwrap(), user);
    let patch = UserPatch { version: Some(1), last_name: Some("Dee".into()), ..UserPatch::default() };
    assert_eq!(crm.users().update(admin, user.id(), patch).await.unwrap().meta.version, 2);
    crm.users().delete(admin, user.id(), Some(2)).await.unwrap();
    assert_gone(crm.users().get(admin, user.id()).await);

    let company =
        crm.companies().create(admin, NewCompany { name: "Crud Co".into(), ..NewCompany::default() }).await.unwrap();
    assert_eq!(crm.companies().get(admin, company.id()).await.unwrap(), company);
    let patch =
        CompanyPatch { version: Some(1), website: Some(Some("https://crud.test".into())), ..CompanyPatch::default() };
    let company = crm.companies().update(admin, company.id(), patch).await.unwrap();
    assert_eq!((company.website.as_deref(), company.meta.version), (Some("https://crud.test"), 2));

    let contact = crm
        .contacts()
        .create(
            admin,
            NewContact {
                first_name: "C".into(),
                last_name: "Rud".into(),
                company_id: Some(company.id()),
                ..NewContact::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.contacts().get(admin, contact.id()).await.unwrap(), contact);
    let patch = ContactPatch { version: Some(1), phone: Some(Some("+1 555".into())), ..ContactPatch::default() };
    assert_eq!(crm.contacts().update(admin, contact.id(), patch).await.unwrap().phone.as_deref(), Some("+1 555"));

    let lead = crm
        .leads()
        .create(
            admin,
            NewLead {
                first_name: "L".into(),
                last_name: "Ead".into(),
                email: None,
                phone: None,
                company_name: None,
                source: crate::leads::LeadSource::Event,
                score: Some(5),
                owner_id: None,
                notes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.leads().get(admin, lead.id()).await.unwrap(), lead);
    let patch = LeadPatch { version: Some(1), score: Some(90), ..LeadPatch::default() };
    assert_eq!(crm.leads().update(admin, lead.id(), patch).await.unwrap().score, 90);
    crm.leads().delete(admin, lead.id(), Some(2)).await.unwrap();
    assert_gone(crm.leads().get(admin, lead.id()).await);

    let deal = crm
        .deals()
        .create(
            admin,
            NewDeal {
                title: "Crud deal".into(),
                company_id: Some(company.id()),
                contact_id: Some(contact.id()),
                owner_id: None,
                amount: amount("99.99"),
                currency: Currency::USD,
                stage: Some(DealStage::Qualification),
                expected_close_date: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.deals().get(admin, deal.id()).await.unwrap(), deal);
    let patch = DealPatch { version: Some(1), amount: Some(amount("150.00")), ..DealPatch::default() };
    assert_eq!(crm.deals().update(admin, deal.id(), patch).await.unwrap().amount, amount("150.00"));
    // The deal references the contact and the company: deleting those first is refused.
    assert!(matches!(crm.contacts().delete(admin, contact.id(), None).await, Err(CrmError::Referenced { .. })));
    crm.deals().delete(admin, deal.id(), Some(2)).await.unwrap();
    assert_gone(crm.deals().get(admin, deal.id()).await);
    crm.contacts().delete(admin, contact.id(), Some(2)).await.unwrap();
    assert_gone(crm.contacts().get(admin, contact.id()).await);
    crm.companies().delete(admin, company.id(), Some(2)).await.unwrap();
    assert_gone(crm.companies().get(admin, company.id()).await);

    // Notifications: created by an assignment, marked read, deleted by their owner.
    crm.deals()
        .create(&w.manager, NewDeal { owner_id: Some(w.user.user_id()), ..deal_input("Assigned") })
        .await
        .unwrap();
    let inbox = crm.notifications().list(&w.user, false, &PageRequest::default()).await.unwrap();
    assert_eq!(inbox.items.len(), 1);
    let note = crm.notifications().mark_read(&w.user, inbox.items[0].id()).await.unwrap();
    assert!(note.read_at.is_some());
    crm.notifications().delete(&w.user, note.id()).await.unwrap();
    assert!(crm.notifications().list(&w.user, false, &PageRequest::default()).await.unwrap().items.is_empty());

    crud_catalog_projects_documents_and_keys(&w).await;
}

/// The second half of [`services_crud_every_entity`]: catalog, projects, documents, keys.
async fn crud_catalog_projects_documents_and_keys(w: &World) {
    use crate::{
        api_keys::NewApiKey,
        delivery_notes::{DeliveryLine, NewDeliveryNote},
        invoices::{InvoicePatch, NewInvoice},
        money::LineInput,
        payments::{NewPayment, PaymentMethod, PaymentStatus},
        products::{NewProduct, ProductPatch},
        projects::{NewProject, NewTask, ProjectPatch, TaskPatch},
        quotes::{NewQuote, QuotePatch},
    };
    let (crm, admin) = (&w.crm, &w.admin);
    let company = w.client_company.id();

    let category = crm.product_categories().create(admin, "Tools".into(), None).await.unwrap();
    let category = crm.product_categories().rename(admin, category.id(), "Hand tools".into(), Some(1)).await.unwrap();
    assert_eq!(crm.product_categories().get(admin, category.id()).await.unwrap(), category);
    let product = crm
        .products()
        .create(
            admin,
            NewProduct {
                sku: "HAM-1".into(),
                name: "Hammer".into(),
                description: None,
                unit_price: amount("12.50"),
                currency: Currency::EUR,
                tax_rate: amount("20"),
                unit: None,
                category_id: Some(category.id()),
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.products().get(admin, product.id()).await.unwrap(), product);
    let patch = ProductPatch { version: Some(1), unit_price: Some(amount("13.00")), ..ProductPatch::default() };
    assert_eq!(crm.products().update(admin, product.id(), patch).await.unwrap().unit_price, amount("13.00"));

    let project = crm
        .projects()
        .create(
            admin,
            NewProject {
                name: "Fit-out".into(),
                company_id: company,
                deal_id: None,
                budget: None,
                currency: None,
                start_date: None,
                end_date: None,
                manager_id: Some(w.manager.user_id()),
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.projects().get(admin, project.id()).await.unwrap(), project);
    let patch = ProjectPatch { version: Some(1), name: Some("Fit-out 2".into()), ..ProjectPatch::default() };
    assert_eq!(crm.projects().update(admin, project.id(), patch).await.unwrap().name, "Fit-out 2");
    let milestone = crm.milestones().create(admin, project.id(), "Design".into(), None).await.unwrap();
    assert_eq!(crm.milestones().get(admin, milestone.id()).await.unwrap(), milestone);
    let task = crm
        .tasks()
        .create(
            admin,
            NewTask {
                project_id: project.id(),
                milestone_id: Some(milestone.id()),
                title: "Draw".into(),
                description: None,
                assignee_id: Some(w.user.user_id()),
                priority: None,
                due_date: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((crm.tasks().get(admin, task.id()).await.unwrap(), task.company_id), (task.clone(), company));
    let patch = TaskPatch { version: Some(1), title: Some("Draw plans".into()), ..TaskPatch::default() };
    assert_eq!(crm.tasks().update(admin, task.id(), patch).await.unwrap().title, "Draw plans");
    crm.tasks().delete(admin, task.id(), Some(2)).await.unwrap();
    assert_gone(crm.tasks().get(admin, task.id()).await);
    crm.milestones().delete(admin, milestone.id(), Some(1)).await.unwrap();
    assert_gone(crm.milestones().get(admin, milestone.id()).await);
    crm.projects().delete(admin, project.id(), Some(2)).await.unwrap();
    assert_gone(crm.projects().get(admin, project.id()).await);

    let line = LineInput { product_id: Some(product.id()), ..LineInput::new("Hammer", amount("2"), amount("13.00")) };
    let quote = crm
        .quotes()
        .create(
            admin,
            NewQuote {
                company_id: company,
                contact_id: None,
                deal_id: None,
                owner_id: None,
                currency: Currency::EUR,
                lines: vec![line.clone()],
                valid_until: w.crm.today(),
                notes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(crm.quotes().get(admin, quote.id()).await.unwrap(), quote);
    let patch = QuotePatch { version: Some(1), notes: Some(Some("Net 30".into())), ..QuotePatch::default() };
    assert_eq!(crm.quotes().update(admin, quote.id(), patch).await.unwrap().notes.as_deref(), Some("Net 30"));
    assert!(matches!(crm.products().delete(admin, product.id(), None).await, Err(CrmError::Referenced { .. })));
    crm.quotes().delete(admin, quote.id(), Some(2)).await.unwrap();
    assert_gone(crm.quotes().get(admin, quote.id()).await);

    let new_invoice = NewInvoice {
        company_id: company,
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![line],
        payment_terms_days: None,
        notes: None,
    };
    let draft = crm.invoices().create(admin, new_invoice.clone()).await.unwrap();
    assert_eq!(crm.invoices().get(admin, draft.id()).await.unwrap(), draft);
    let patch = InvoicePatch { version: Some(1), payment_terms_days: Some(45), ..InvoicePatch::default() };
    assert_eq!(crm.invoices().update(admin, draft.id(), patch).await.unwrap().payment_terms_days, 45);
    crm.invoices().delete(admin, draft.id(), Some(2)).await.unwrap();
    assert_gone(crm.invoices().get(admin, draft.id()).await);

    let invoice = crm.invoices().create(admin, new_invoice).await.unwrap();
    let invoice = crm.invoices().issue(admin, invoice.id(), None).await.unwrap();
    let payment = NewPayment {
        invoice_id: invoice.id(),
        amount: amount("1.00"),
        method: PaymentMethod::Other,
        paid_on: None,
        reference: Some("r".into()),
    };
    let payment = crm.payments().record(admin, payment).await.unwrap();
    assert_eq!(crm.payments().get(admin, payment.id()).await.unwrap(), payment);
    assert_eq!(crm.payments().void(admin, payment.id(), Some(1)).await.unwrap().status, PaymentStatus::Voided);
    let note = NewDeliveryNote {
        invoice_id: invoice.id(),
        lines: vec![DeliveryLine { line_index: 0, quantity: amount("1") }],
        notes: None,
    };
    let note = crm.delivery_notes().create(admin, note).await.unwrap();
    assert_eq!(crm.delivery_notes().get(admin, note.id()).await.unwrap(), note);
    crm.delivery_notes().delete(admin, note.id(), Some(1)).await.unwrap();
    assert_gone(crm.delivery_notes().get(admin, note.id()).await);

    let key =
        NewApiKey { name: "CRUD".into(), owner_id: None, scopes: vec!["*:read".parse().unwrap()], expires_at: None };
    let (key, _token) = crm.api_keys().create(admin, key).await.unwrap();
    assert_eq!(crm.api_keys().get(admin, key.id()).await.unwrap(), key);
    assert!(crm.api_keys().revoke(admin, key.id(), Some(1)).await.unwrap().revoked);
    crm.api_keys().delete(admin, key.id(), Some(2)).await.unwrap();
    assert_gone(crm.api_keys().get(admin, key.id()).await);
}

fn deal_input(title: &str) -> NewDeal {
    NewDeal {
        title: title.into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount: amount("500.00"),
        currency: Currency::EUR,
        stage: None,
        expected_close_date: None,
    }
}

/// The services apply the permission matrix and the tenant wall on this storage.
pub async fn services_enforce_roles_and_tenants(s: Store) {
    let w = World::new(s.clone()).await;
    let other = World::new(s).await;
    let mine = w.crm.deals().create(&w.user, deal_input("Mine")).await.unwrap();
    let theirs = w.crm.deals().create(&w.other_user, deal_input("Theirs")).await.unwrap();
    let rename = |title: &str| crate::deals::DealPatch { title: Some(title.into()), ..Default::default() };
    assert!(w.crm.deals().update(&w.user, mine.id(), rename("ok")).await.is_ok());
    let err = w.crm.deals().update(&w.user, theirs.id(), rename("no")).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    assert!(w.crm.deals().update(&w.manager, theirs.id(), rename("managed")).await.is_ok());
    let err = w.crm.deals().get(&w.client, mine.id()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "clients have no access to deals: {err:?}");
    for p in [&other.admin, &other.manager, &other.user] {
        let err = other.crm.deals().get(p, mine.id()).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound { .. }), "{err:?}");
    }
    let listed = other.crm.deals().list(&other.admin, &Default::default(), &PageRequest::default()).await.unwrap();
    assert!(listed.items.is_empty(), "another tenant's deals never list");
    let client_view = w.crm.companies().list(&w.client, &Default::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(client_view.items.iter().map(|c| c.id()).collect::<Vec<_>>(), vec![w.client_company.id()]);
}

/// Lead → contact, company and deal, atomically, through the services.
pub async fn flow_lead_conversion(s: Store) {
    use crate::leads::{ConvertCompany, ConvertDeal, ConvertLead, LeadStatus, NewLead};
    let w = World::new(s.clone()).await;
    let lead = w
        .crm
        .leads()
        .create(
            &w.manager,
            NewLead {
                first_name: "Grace".into(),
                last_name: "Hopper".into(),
                email: Some("grace@globex.test".into()),
                phone: None,
                company_name: Some("Globex".into()),
                source: crate::leads::LeadSource::Referral,
                score: Some(90),
                owner_id: Some(w.user.user_id()),
                notes: None,
            },
        )
        .await
        .unwrap();
    let lead = w.crm.leads().change_status(&w.user, lead.id(), LeadStatus::Qualified, Some(1)).await.unwrap();
    let input = ConvertLead {
        version: Some(lead.meta.version),
        company: ConvertCompany::New(None),
        deal: Some(ConvertDeal { title: "Globex rollout".into(), amount: amount("12000.00"), currency: Currency::EUR }),
    };
    let done = w.crm.leads().convert(&w.user, lead.id(), input).await.unwrap();
    let (company, deal) = (done.company.clone().unwrap(), done.deal.clone().unwrap());
    // Everything it created is stored, linked and owned by the lead's owner.
    assert_eq!(w.crm.companies().get(&w.user, company.id()).await.unwrap(), company);
    assert_eq!(w.crm.contacts().get(&w.user, done.contact.id()).await.unwrap(), done.contact);
    assert_eq!(w.crm.deals().get(&w.user, deal.id()).await.unwrap(), deal);
    assert_eq!(w.crm.leads().get(&w.user, lead.id()).await.unwrap(), done.lead);
    assert_eq!(done.contact.lead_id, Some(lead.id()));
    assert_eq!(
        (deal.owner_id, done.contact.owner_id, company.owner_id),
        (w.user.user_id(), w.user.user_id(), w.user.user_id())
    );
    let events = s.outbox_pending(10_000).await.unwrap();
    assert!(events.iter().any(|e| e.name == "lead.converted" && e.entity_id == lead.meta.id));
    // A stale version is refused and writes nothing.
    let again =
        w.crm.leads().create(&w.user, NewLead { company_name: Some("Initech".into()), ..lead_input() }).await.unwrap();
    let stale = ConvertLead { version: Some(7), company: ConvertCompany::New(None), deal: None };
    assert!(matches!(w.crm.leads().convert(&w.user, again.id(), stale).await, Err(CrmError::Conflict { .. })));
    let companies = w.crm.companies().list(&w.admin, &Default::default(), &PageRequest::default()).await.unwrap();
    assert!(!companies.items.iter().any(|c| c.name == "Initech"));
}

fn lead_input() -> crate::leads::NewLead {
    crate::leads::NewLead {
        first_name: "Ann".into(),
        last_name: "Other".into(),
        email: None,
        phone: None,
        company_name: None,
        source: crate::leads::LeadSource::Website,
        score: None,
        owner_id: None,
        notes: None,
    }
}

/// A company, an issued invoice of `quantity` × `unit_price` (no tax) for it, in EUR.
async fn issued_invoice(w: &World, quantity: &str, unit_price: &str) -> crate::invoices::Invoice {
    use crate::{invoices::NewInvoice, money::LineInput};
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

/// Quote → accepted → invoice → issued → partial and final payments → paid.
pub async fn flow_quote_to_paid_invoice(s: Store) {
    use crate::{
        invoices::InvoiceStatus,
        money::LineInput,
        payments::{NewPayment, PaymentFilter, PaymentMethod},
        quotes::{NewQuote, QuoteStatus},
    };
    let w = World::new(s.clone()).await;
    let customer = w
        .crm
        .companies()
        .create(&w.user, NewCompany { name: "Customer".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let lines = vec![
        LineInput { tax_rate: amount("20"), ..LineInput::new("Licence", amount("10"), amount("99.99")) },
        LineInput { discount_percent: amount("10"), ..LineInput::new("Setup", amount("1"), amount("500")) },
    ];
    let quote = w
        .crm
        .quotes()
        .create(
            &w.user,
            NewQuote {
                company_id: customer.id(),
                contact_id: None,
                deal_id: None,
                owner_id: None,
                currency: Currency::EUR,
                lines,
                valid_until: w.crm.today() + Duration::days(30),
                notes: None,
            },
        )
        .await
        .unwrap();
    // 999.90 + 199.98 tax, 500.00 − 50.00 discount: 1649.88.
    assert_eq!(quote.totals.total, amount("1649.88"));
    let sent = w.crm.quotes().send(&w.user, quote.id(), Some(1)).await.unwrap();
    let (accepted, invoice) = w.crm.quotes().accept(&w.user, sent.id(), Some(sent.meta.version)).await.unwrap();
    assert_eq!((accepted.status, accepted.invoice_id), (QuoteStatus::Accepted, Some(invoice.id())));
    assert_eq!(
        (invoice.status, invoice.totals, invoice.quote_id),
        (InvoiceStatus::Draft, quote.totals, Some(quote.id()))
    );
    assert_eq!(w.crm.invoices().get(&w.user, invoice.id()).await.unwrap(), invoice);

    let issued = w.crm.invoices().issue(&w.user, invoice.id(), Some(1)).await.unwrap();
    assert_eq!(issued.number.as_deref(), Some("INV-2026-000001"));
    assert_eq!((issued.issue_date, issued.due_date), (Some(w.crm.today()), Some(w.crm.today() + Duration::days(30))));
    let pay = |value: &str| NewPayment {
        invoice_id: invoice.id(),
        amount: amount(value),
        method: PaymentMethod::BankTransfer,
        paid_on: None,
        reference: None,
    };
    w.crm.payments().record(&w.user, pay("649.88")).await.unwrap();
    let partly = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!(
        (partly.status, partly.amount_paid, partly.balance_due),
        (InvoiceStatus::PartiallyPaid, amount("649.88"), amount("1000.00"))
    );
    let err = w.crm.payments().record(&w.user, pay("1000.01")).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "amount"), "overpayment: {err:?}");
    let last = w.crm.payments().record(&w.user, pay("1000.00")).await.unwrap();
    let paid = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!((paid.status, paid.balance_due), (InvoiceStatus::Paid, Decimal::ZERO));
    let events = s.outbox_pending(10_000).await.unwrap();
    for name in ["quote.accepted", "invoice.issued", "payment.recorded", "invoice.paid"] {
        assert!(events.iter().any(|e| e.name == name), "missing event {name}");
    }
    // Voiding the last payment reopens the balance, atomically.
    w.crm.payments().void(&w.manager, last.id(), None).await.unwrap();
    let reopened = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!((reopened.status, reopened.balance_due), (InvoiceStatus::PartiallyPaid, amount("1000.00")));
    let filter = PaymentFilter { invoice_id: Some(invoice.id()), ..Default::default() };
    assert_eq!(w.crm.payments().list(&w.user, &filter, &PageRequest::default()).await.unwrap().items.len(), 2);
    // A cancelled or paid invoice takes no payment; a paid-in-part one cannot be cancelled.
    let err = w.crm.invoices().cancel(&w.manager, invoice.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }), "{err:?}");
}

/// Invoice → delivery notes that never exceed the invoiced quantities.
pub async fn flow_invoice_to_delivery(s: Store) {
    use crate::delivery_notes::{DeliveryLine, DeliveryStatus, NewDeliveryNote};
    let w = World::new(s).await;
    let invoice = issued_invoice(&w, "10", "5").await;
    let note = |qty: &str| NewDeliveryNote {
        invoice_id: invoice.id(),
        lines: vec![DeliveryLine { line_index: 0, quantity: amount(qty) }],
        notes: None,
    };
    let first = w.crm.delivery_notes().create(&w.user, note("6")).await.unwrap();
    let err = w.crm.delivery_notes().create(&w.user, note("5")).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "lines[0].quantity"), "{err:?}");
    let second = w.crm.delivery_notes().create(&w.user, note("4")).await.unwrap();
    let booked = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!(booked.lines[0].quantity_delivered, amount("10"));
    let shipped = w.crm.delivery_notes().ship(&w.user, first.id(), Some(1)).await.unwrap();
    assert_eq!(shipped.status, DeliveryStatus::Shipped);
    let delivered = w.crm.delivery_notes().deliver(&w.user, first.id(), None).await.unwrap();
    assert!(delivered.delivered_at.is_some());
    let err = w.crm.delivery_notes().ship(&w.user, first.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }));
    // Deleting the pending note gives its quantity back.
    w.crm.delivery_notes().delete(&w.user, second.id(), None).await.unwrap();
    let released = w.crm.invoices().get(&w.user, invoice.id()).await.unwrap();
    assert_eq!(released.lines[0].quantity_delivered, amount("6"));
    let err = w
        .crm
        .delivery_notes()
        .create(
            &w.user,
            NewDeliveryNote { lines: vec![DeliveryLine { line_index: 3, quantity: amount("1") }], ..note("1") },
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "lines[0].line_index"), "{err:?}");
}

/// 64 concurrent issues get 64 distinct, consecutive numbers (joined futures: real
/// interleaving on adapters whose calls yield).
pub async fn invoice_numbers_under_concurrency(s: Store) {
    use crate::{invoices::NewInvoice, money::LineInput};
    let w = World::new(s.clone()).await;
    let company = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Numbered".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let mut drafts = Vec::new();
    for i in 0..64 {
        let input = NewInvoice {
            company_id: company.id(),
            contact_id: None,
            owner_id: None,
            currency: Currency::EUR,
            lines: vec![LineInput::new(format!("Item {i}"), amount("1"), amount("10"))],
            payment_terms_days: None,
            notes: None,
        };
        drafts.push(w.crm.invoices().create(&w.admin, input).await.unwrap());
    }
    let invoices = w.crm.invoices();
    let issued = join_all(drafts.iter().map(|d| invoices.issue(&w.admin, d.id(), None))).await;
    let mut numbers: Vec<String> = issued.into_iter().map(|r| r.unwrap().number.unwrap()).collect();
    numbers.sort();
    let expected: Vec<String> = (1..=64).map(|n| format!("INV-2026-{n:06}")).collect();
    assert_eq!(numbers, expected);
    assert_eq!(s.counter(tenant(&w), "invoice:2026").await.unwrap(), 64);
}

/// 64 concurrent payments of 10.00 on a 500.00 invoice: exactly 50 succeed, and the
/// invoice's paid amount is the sum of the accepted payments.
pub async fn payments_under_concurrency(s: Store) {
    use crate::payments::{NewPayment, PaymentFilter, PaymentMethod};
    let w = World::new(s).await;
    let invoice = issued_invoice(&w, "50", "10").await;
    let payments = w.crm.payments();
    let attempts = (0..64).map(|_| {
        let input = NewPayment {
            invoice_id: invoice.id(),
            amount: amount("10.00"),
            method: PaymentMethod::Card,
            paid_on: None,
            reference: None,
        };
        payments.record(&w.user, input)
    });
    let results = join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CrmError::Validation(_)), "a refused payment names the amount or status: {e:?}");
        }
    }
    assert_eq!(accepted, 50);
    let paid = w.crm.invoices().get(&w.admin, invoice.id()).await.unwrap();
    let filter = PaymentFilter { invoice_id: Some(invoice.id()), ..Default::default() };
    let listed = w.crm.payments().list(&w.admin, &filter, &PageRequest::first(500)).await.unwrap();
    let sum: Decimal = listed.items.iter().map(|p| p.amount).sum();
    assert_eq!((paid.amount_paid, sum, listed.items.len()), (amount("500.00"), amount("500.00"), 50));
    assert_eq!(paid.balance_due, Decimal::ZERO);
}
