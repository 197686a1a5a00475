//! Records: reads, writes, versions, uniqueness, references, counters, the outbox and tenant walls.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::World;
use crate::{
    CrmError, Id, Meta, PageRequest,
    access::users::User,
    customers::companies::{Company, CompanyPatch, NewCompany},
    customers::contacts::NewContact,
    entity::{Entity, from_stored},
    storage::{AggregateQuery, CounterUpdate, EntityKind, ListQuery, OutboxEvent, StorageError, WriteBatch, WriteOp},
};

/// An exact decimal from its text.
#[allow(unused_imports)]
use super::support::*;

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
    let new_user = |email: &str| crate::access::users::NewUser {
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
    let filter = crate::access::audit::AuditFilter { entity_id: Some(c.meta.id), ..Default::default() };
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
            crate::customers::leads::NewLead {
                first_name: "Eve".into(),
                last_name: "Event".into(),
                email: None,
                phone: None,
                company_name: None,
                source: crate::customers::leads::LeadSource::Website,
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
