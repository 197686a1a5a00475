//! Listings: filters, sorts, keyset pages, totals, text search and aggregates.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;

use chrono::{Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::World;
use crate::{
    CrmError, PageRequest,
    customers::companies::NewCompany,
    customers::contacts::{Contact, ContactFilter, NewContact},
    customers::deals::{DealStage, NewDeal},
    entity::Entity,
    money::Currency,
    storage::{AggregateQuery, EntityKind, FieldValue, Filter, GroupKey, ListQuery, Sort, TextSearch},
};

/// An exact decimal from its text.
#[allow(unused_imports)]
use super::support::*;

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
    let at_acme = seed_contacts(&w, 23, &["B", "A", "C"], Some(&acme)).await;
    let elsewhere = seed_contacts(&w, 34, &["B", "D"], None).await;
    for field in [None, Some("last_name"), Some("created_at")] {
        for descending in [false, true] {
            for filters in [vec![], vec![Filter::eq("company_id", acme.id())]] {
                let pool: Vec<&Contact> = if filters.is_empty() {
                    at_acme.iter().chain(&elsewhere).collect()
                } else {
                    at_acme.iter().collect()
                };
                let q = ListQuery { filters, sort: Sort { field, descending }, limit: 10, ..ListQuery::default() };
                let ids = all_pages(&s, tenant(&w), EntityKind::Contact, q).await;
                let unique: HashSet<&Uuid> = ids.iter().collect();
                assert_eq!((ids.len(), unique.len()), (pool.len(), pool.len()), "sort {field:?} desc {descending}");
                // In the listing's order: by the sort value (ties, here many, by id).
                let mut expected: Vec<(FieldValue, Uuid)> = pool
                    .iter()
                    .map(|c| {
                        let record = crate::entity::to_record(*c).unwrap();
                        (field.map_or(FieldValue::Null, |f| record.field(f).clone()), record.id)
                    })
                    .collect();
                expected.sort();
                if descending {
                    expected.reverse();
                }
                let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();
                assert_eq!(ids, expected, "order of sort {field:?} desc {descending}");
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
        search: Some(TextSearch { fields: crate::fields::searchable(Contact::FIELDS), term: "alice".into() }),
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
