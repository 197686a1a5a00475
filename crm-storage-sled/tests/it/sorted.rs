//! Sorted listings within an equality filter (the sorted index, `sorted/<kind>`): every
//! `(filter, sort, direction)` listing, paged with cursors to its end, equals the same
//! listing computed naively; after updates and deletes; and after a format 1 or 2 store
//! is migrated at open.

use std::{collections::BTreeMap, path::Path, thread, time::Duration};

use chrono::{TimeZone, Utc};
use crm_core::{
    TenantId,
    fields::filtered_sorts,
    fields_of,
    storage::{
        EntityKind, FieldValue, Filter, ListQuery, Record, Sort, Storage, StorageError, TextSearch, WriteBatch,
        WriteOp, row_matches,
    },
};
use crm_storage_sled::{FORMAT_VERSION, OpenError, SledStorage};
use serde_json::json;
use uuid::Uuid;

use crate::rng::Rng;

const TENANT: TenantId = TenantId(Uuid::from_u128(0x5011ED));
/// Another tenant with records of the same values: never in `TENANT`'s listings.
const NEIGHBOUR: TenantId = TenantId(Uuid::from_u128(0x0DD));
const KIND: EntityKind = EntityKind::Contact;

fn companies() -> Vec<FieldValue> {
    (1..=4).map(|n| FieldValue::Uuid(Uuid::from_u128(0xC0 + n))).collect()
}

/// A few values per field, with `Null`s and many ties, so order within equal sort
/// values (by id) and the place of `Null` (first ascending, last descending) matter.
fn random_fields(rng: &mut Rng) -> Fields {
    let pick = |rng: &mut Rng, values: &[FieldValue]| values[rng.index(values.len())].clone();
    let mut company = companies();
    company.push(FieldValue::Null);
    let owners = [FieldValue::Uuid(Uuid::from_u128(0xA1)), FieldValue::Uuid(Uuid::from_u128(0xA2))];
    let emails = ["a@x.test", "b@x.test", "c@x.test"].map(|e| FieldValue::Text(e.into()));
    let mut names: Vec<FieldValue> = ["Adams", "Baker", "baker", "Clark"].map(|n| FieldValue::Text(n.into())).into();
    names.push(FieldValue::Null);
    let instants: Vec<FieldValue> = (0..6)
        .map(|s| FieldValue::Timestamp(Utc.timestamp_opt(1_700_000_000 + s * 60, 0).unwrap()))
        .chain([FieldValue::Null])
        .collect();
    let mut emails: Vec<FieldValue> = emails.into();
    emails.push(FieldValue::Null);
    vec![
        ("created_at", pick(rng, &instants)),
        ("updated_at", pick(rng, &instants)),
        ("first_name", FieldValue::Text("Ann".into())),
        ("last_name", pick(rng, &names)),
        ("email", pick(rng, &emails)),
        ("company_id", pick(rng, &company)),
        ("owner_id", pick(rng, &owners)),
    ]
}

fn record(id: Uuid, version: u64, fields: &[(&'static str, FieldValue)]) -> Record {
    Record {
        kind: KIND,
        id,
        version,
        data: crm_core::storage::Document::from(json!({ "id": id, "version": version })),
        fields: fields.to_vec(),
        uniques: Vec::new(),
        references: Vec::new(),
    }
}

/// A record's indexed fields.
type Fields = Vec<(&'static str, FieldValue)>;

/// What the store should hold: each record's version and indexed fields.
#[derive(Default)]
struct Model(BTreeMap<Uuid, (u64, Fields)>);

impl Model {
    fn field<'a>(fields: &'a [(&'static str, FieldValue)], name: &str) -> &'a FieldValue {
        fields.iter().find(|(n, _)| *n == name).map_or(&FieldValue::Null, |(_, v)| v)
    }

    /// The listing computed naively: filter everything, sort by `(value, id)`.
    fn list(&self, query: &ListQuery) -> Vec<Uuid> {
        let mut rows: Vec<(FieldValue, Uuid)> = self
            .0
            .iter()
            .filter(|(_, (_, f))| row_matches(|name| Self::field(f, name), &query.filters, query.search.as_ref()))
            .map(|(id, (_, f))| (query.sort.field.map_or(FieldValue::Null, |s| Self::field(f, s).clone()), *id))
            .collect();
        rows.sort();
        if query.sort.descending {
            rows.reverse();
        }
        rows.into_iter().map(|(_, id)| id).collect()
    }
}

/// Inserts `count` records into `TENANT` (and as many into `NEIGHBOUR`), `per_batch` a commit.
async fn populate(storage: &SledStorage, rng: &mut Rng, count: usize, per_batch: usize) -> Model {
    let mut model = Model::default();
    for tenant in [TENANT, NEIGHBOUR] {
        let mut ops = Vec::new();
        for _ in 0..count {
            // Ids in another order than the values: ties must be broken by id, not by insertion.
            let id = Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next()));
            let fields = random_fields(rng);
            ops.push(WriteOp::Insert(record(id, 1, &fields)));
            if tenant == TENANT {
                model.0.insert(id, (1, fields));
            }
            if ops.len() == per_batch {
                commit(storage, tenant, std::mem::take(&mut ops)).await;
            }
        }
        commit(storage, tenant, ops).await;
    }
    model
}

async fn commit(storage: &SledStorage, tenant: TenantId, ops: Vec<WriteOp>) {
    if !ops.is_empty() {
        storage.commit(tenant, WriteBatch { ops, ..WriteBatch::default() }).await.unwrap();
    }
}

/// Every page of `query`, following the cursors to the end.
async fn paged(storage: &SledStorage, query: &ListQuery) -> Vec<Uuid> {
    let (mut ids, mut query) = (Vec::new(), query.clone());
    for _ in 0..10_000 {
        let page = storage.list(TENANT, KIND, &query).await.unwrap();
        assert!(page.items.len() <= query.limit, "a page over its limit");
        ids.extend(page.items.iter().map(|r| r.id));
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return ids,
        }
    }
    panic!("the cursors never reached the end of {query:?}");
}

/// The listings to check: every sorted index pair of the kind, every value of its
/// filter (and one no record holds), both directions; plus the same with another
/// filter, a range on the sort field, a search and a total, which a walk of the sorted
/// index must still apply.
fn queries(limit: usize) -> Vec<ListQuery> {
    let pairs: Vec<(&'static str, &'static str)> =
        filtered_sorts(fields_of(KIND)).map(|(f, s)| (f.name, s.name)).collect();
    assert!(pairs.contains(&("company_id", "created_at")), "the pair the benchmark lists: {pairs:?}");
    let mut rng = Rng::new(99);
    let mut queries = Vec::new();
    for (filter, sort) in pairs {
        let mut values = vec![FieldValue::Null, FieldValue::Uuid(Uuid::from_u128(0xBAD))];
        values.extend(std::iter::repeat_with(|| Model::field(&random_fields(&mut rng), filter).clone()).take(12));
        values.sort();
        values.dedup();
        for value in values {
            for descending in [false, true] {
                let base = ListQuery {
                    filters: vec![Filter::eq(filter, value.clone())],
                    sort: Sort { field: Some(sort), descending },
                    limit,
                    ..ListQuery::default()
                };
                let mut narrowed = base.clone();
                let other = if filter == "owner_id" { "company_id" } else { "owner_id" };
                narrowed.filters.push(Filter::eq(other, Model::field(&random_fields(&mut rng), other).clone()));
                let mut ranged = base.clone();
                let bound = Model::field(&random_fields(&mut rng), sort).clone();
                ranged.filters.push(if descending { Filter::lt(sort, bound) } else { Filter::gte(sort, bound) });
                let searched = ListQuery {
                    search: Some(TextSearch { fields: vec!["last_name"], term: "bak".into() }),
                    with_total: true,
                    ..base.clone()
                };
                queries.extend([base, narrowed, ranged, searched]);
            }
        }
    }
    queries
}

async fn assert_listings_match(storage: &SledStorage, model: &Model, limit: usize) {
    let mut nonempty = 0;
    for query in queries(limit) {
        let expected = model.list(&query);
        nonempty += usize::from(!expected.is_empty());
        assert_eq!(paged(storage, &query).await, expected, "{query:?}");
        if query.with_total {
            let page = storage.list(TENANT, KIND, &query).await.unwrap();
            assert_eq!(page.total, Some(expected.len() as u64), "the total of {query:?}");
        }
    }
    assert!(nonempty > 100, "the listings select something ({nonempty} do)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_sorted_listings_page_like_a_naive_sort() {
    let storage = SledStorage::temporary().unwrap();
    let mut rng = Rng::new(0x5EED);
    let mut model = populate(&storage, &mut rng, 300, 50).await;
    assert_listings_match(&storage, &model, 7).await;

    // Move records between filter values and sort values, and delete some: every
    // listing forgets the old entries and finds the new ones.
    let ids: Vec<Uuid> = model.0.keys().copied().collect();
    let mut ops = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let (version, fields) = model.0.get(id).unwrap().clone();
        match n % 6 {
            0 => {
                ops.push(WriteOp::Delete { kind: KIND, id: *id, expected_version: version });
                model.0.remove(id);
            }
            1 | 2 => {
                let fresh = random_fields(&mut rng);
                ops.push(WriteOp::Update { record: record(*id, version + 1, &fresh), expected_version: version });
                model.0.insert(*id, (version + 1, fresh));
            }
            3 => {
                // Only the sort values change; the filter values stay.
                let mut changed = fields.clone();
                let fresh = random_fields(&mut rng);
                for (name, value) in &mut changed {
                    if matches!(*name, "created_at" | "updated_at" | "last_name") {
                        *value = Model::field(&fresh, name).clone();
                    }
                }
                ops.push(WriteOp::Update { record: record(*id, version + 1, &changed), expected_version: version });
                model.0.insert(*id, (version + 1, changed));
            }
            _ => {}
        }
        if ops.len() == 40 {
            commit(&storage, TENANT, std::mem::take(&mut ops)).await;
        }
    }
    commit(&storage, TENANT, ops).await;
    assert_listings_match(&storage, &model, 7).await;
}

/// Opens `dir` with raw sled once the store's handles are gone (sled releases its
/// directory lock shortly after the last `Db` drops).
fn raw(dir: &Path) -> sled::Db {
    for _ in 0..200 {
        match raw_config(dir).open() {
            Ok(db) => return db,
            Err(e) => {
                assert!(e.to_string().contains("lock"), "{e}");
                thread::sleep(Duration::from_millis(25));
            }
        }
    }
    panic!("the store stayed locked");
}

fn format_version(db: &sled::Db) -> u32 {
    let stored = db.open_tree("meta").unwrap().get("format_version").unwrap().unwrap();
    u32::from_be_bytes(stored.as_ref().try_into().unwrap())
}

fn set_format_version(db: &sled::Db, version: u32) {
    db.open_tree("meta").unwrap().insert("format_version", &version.to_be_bytes()).unwrap();
}

/// `tenant ‖ id`.
fn record_key(tenant: TenantId, id: Uuid) -> Vec<u8> {
    [tenant.0.as_bytes().as_slice(), id.as_bytes()].concat()
}

/// A record's value as formats 1 and 2 stored it: `version (u64 BE) ‖ document length
/// (u32 BE) ‖ document ‖ index data (JSON)`.
fn legacy_entry(version: u64, document: &serde_json::Value, index: &serde_json::Value) -> Vec<u8> {
    let document = serde_json::to_vec(document).unwrap();
    let index = serde_json::to_vec(index).unwrap();
    [&version.to_be_bytes()[..], &(document.len() as u32).to_be_bytes(), &document, &index].concat()
}

fn email_of(id: Uuid) -> String {
    format!("{id}@migrated.test")
}

/// Writes a store of format `version` (1 or 2) with raw sled, as those builds laid it
/// out: `count` contacts in `TENANT` and as many in `NEIGHBOUR` (each with a unique email
/// and a reference to its company), the companies, a counter, and index trees the
/// migration must not trust. Returns `TENANT`'s contacts.
fn write_legacy_store(dir: &Path, version: u32, rng: &mut Rng, count: usize) -> Model {
    let db = raw(dir);
    let mut model = Model::default();
    let companies_tree = db.open_tree("records/company").unwrap();
    let contacts = db.open_tree("records/contact").unwrap();
    let none: [u8; 0] = [];
    for tenant in [TENANT, NEIGHBOUR] {
        for company in companies() {
            let FieldValue::Uuid(id) = company else { unreachable!() };
            let index = json!({"fields": [["name", FieldValue::Text("Co".into())]], "uniques": [], "references": []});
            companies_tree.insert(record_key(tenant, id), legacy_entry(1, &json!({ "id": id }), &index)).unwrap();
        }
        for _ in 0..count {
            let id = Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next()));
            let fields = random_fields(rng);
            let references: Vec<serde_json::Value> = match Model::field(&fields, "company_id") {
                FieldValue::Uuid(company) => vec![json!(["company_id", "company", company])],
                _ => Vec::new(),
            };
            let index = json!({
                "fields": fields,
                "uniques": [["email", email_of(id)]],
                "references": references,
            });
            contacts
                .insert(record_key(tenant, id), legacy_entry(1, &json!({ "id": id, "version": 1 }), &index))
                .unwrap();
            if tenant == TENANT {
                model.0.insert(id, (1, fields));
            }
        }
        let counter = [tenant.0.as_bytes().as_slice(), b"invoices"].concat();
        db.open_tree("counters").unwrap().insert(counter, &7u64.to_be_bytes()).unwrap();
    }
    // Old index trees with entries of their own: the migration builds from the records alone.
    db.open_tree("index/contact").unwrap().insert(b"stale", &none).unwrap();
    db.open_tree("uniques/contact").unwrap().insert(b"stale", &none).unwrap();
    db.open_tree("references").unwrap().insert(b"stale", &none).unwrap();
    if version == 2 {
        db.open_tree("sorted/contact").unwrap().insert(b"stale", &none).unwrap();
    }
    // What an interrupted migration to format 3 left: dictionary numbers, and a sorted
    // entry claiming a record of company 1 that is not.
    let names = db.open_tree("names").unwrap();
    names.insert("company_id", &0u16.to_be_bytes()).unwrap();
    names.insert("created_at", &1u16.to_be_bytes()).unwrap();
    let (outsider, _) =
        model.0.iter().find(|(_, (_, f))| Model::field(f, "company_id") != &companies()[0]).expect("another company");
    let FieldValue::Uuid(company) = companies()[0] else { unreachable!() };
    // `tenant ‖ company_id ‖ Uuid tag ‖ company ‖ created_at ‖ Null tag ‖ id` (keys.rs).
    let stale = [
        TENANT.0.as_bytes().as_slice(),
        &0u16.to_be_bytes(),
        &[6],
        company.as_bytes(),
        &1u16.to_be_bytes(),
        &[1],
        outsider.as_bytes(),
    ]
    .concat();
    db.open_tree("s/contact").unwrap().insert(stale, &none).unwrap();
    set_format_version(&db, version);
    db.flush().unwrap();
    model
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_1_and_2_stores_are_migrated_at_open() {
    assert_eq!(FORMAT_VERSION, 3);
    for version in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng::new(0x0F01 + u64::from(version));
        // More records than one migration batch holds.
        let model = write_legacy_store(dir.path(), version, &mut rng, 2_300);

        let storage = SledStorage::open(dir.path()).unwrap();
        // Every filtered and sorted listing, paged to its end.
        assert_listings_match(&storage, &model, 50).await;
        // Every record reads back whole; the id order and totals hold, per tenant.
        for (id, (version, _)) in &model.0 {
            let record = storage.get(TENANT, KIND, *id).await.unwrap().expect("migrated record");
            assert_eq!((record.version, &record.data.to_value()["id"]), (*version, &json!(id)));
        }
        let everything = ListQuery { limit: 700, with_total: true, ..ListQuery::default() };
        assert_eq!(paged(&storage, &everything).await, model.0.keys().copied().collect::<Vec<_>>());
        let neighbours = storage.list(NEIGHBOUR, KIND, &everything).await.unwrap();
        assert_eq!(neighbours.total, Some(2_300));
        let company = companies()[1].clone();
        let of_company = ListQuery {
            filters: vec![Filter::eq("company_id", company.clone())],
            limit: 5_000,
            with_total: true,
            ..ListQuery::default()
        };
        let expected: Vec<Uuid> = model.list(&of_company);
        let listed = storage.list(TENANT, KIND, &of_company).await.unwrap();
        assert_eq!(listed.items.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
        assert_eq!(listed.total, Some(expected.len() as u64));
        assert_eq!(storage.counter(TENANT, "invoices").await.unwrap(), 7);

        // Unique keys and references are still enforced.
        let (taken, _) = model.0.iter().next().unwrap();
        let mut duplicate = record(Uuid::now_v7(), 1, &random_fields(&mut rng));
        duplicate.uniques = vec![crm_core::storage::UniqueKey { field: "email", value: email_of(*taken) }];
        let refused =
            storage.commit(TENANT, WriteBatch { ops: vec![WriteOp::Insert(duplicate)], ..WriteBatch::default() });
        assert!(matches!(refused.await, Err(StorageError::AlreadyExists { .. })), "the email is still taken");
        let FieldValue::Uuid(company_id) = company else { unreachable!() };
        let delete = WriteOp::Delete { kind: EntityKind::Company, id: company_id, expected_version: 1 };
        let refused = storage.commit(TENANT, WriteBatch { ops: vec![delete], ..WriteBatch::default() }).await;
        assert!(matches!(refused, Err(StorageError::Referenced { .. })), "{refused:?}");

        // Updates of migrated records replace exactly their old entries.
        let mut model = model;
        let mut ops = Vec::new();
        for (n, id) in model.0.keys().copied().collect::<Vec<_>>().into_iter().enumerate().step_by(3) {
            let fresh = random_fields(&mut rng);
            ops.push(WriteOp::Update { record: record(id, 2, &fresh), expected_version: 1 });
            model.0.insert(id, (2, fresh));
            if n % 2 == 0 {
                // The freed email can be taken by a new record.
                let mut taker = record(Uuid::now_v7(), 1, &random_fields(&mut rng));
                taker.uniques = vec![crm_core::storage::UniqueKey { field: "email", value: email_of(id) }];
                model.0.insert(taker.id, (1, taker.fields.clone()));
                ops.push(WriteOp::Insert(taker));
            }
        }
        for chunk in ops.chunks(100) {
            commit(&storage, TENANT, chunk.to_vec()).await;
        }
        assert_listings_match(&storage, &model, 50).await;
        drop(storage);

        let db = raw(dir.path());
        assert_eq!(format_version(&db), FORMAT_VERSION, "the migration wrote the new version");
        let left: Vec<String> = db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n.starts_with("records/") || n.starts_with("sorted/") || n == "references")
            .collect();
        assert!(left.is_empty(), "the old trees are dropped: {left:?}");
        drop(db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_formats_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SledStorage::open(dir.path()).unwrap();
    populate(&storage, &mut Rng::new(0x0F02), 50, 50).await;
    drop(storage);
    let mut db = raw(dir.path());
    for unknown in [0, FORMAT_VERSION + 1] {
        set_format_version(&db, unknown);
        db.flush().unwrap();
        let sorted_entries = db.open_tree("s/contact").unwrap().len();
        drop(db);
        let err = SledStorage::open(dir.path()).expect_err("an unknown format must be refused");
        assert!(matches!(err, OpenError::FormatVersion { found, .. } if found == unknown), "{err:?}");
        db = raw(dir.path());
        assert_eq!(db.open_tree("s/contact").unwrap().len(), sorted_entries, "the refused store is untouched");
    }
}

/// By hand: `cargo nextest run -p crm-storage-sled --run-ignored only sorted::timing`
/// (add `--no-capture` to see it). Prints the time of one page of a company's contacts
/// in id order and newest first, the benchmark's two listings. It asserts nothing about
/// time: machines differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing check to run by hand"]
async fn timing_of_a_sorted_page_against_the_default_order() {
    use std::time::Instant;

    let storage = SledStorage::temporary().unwrap().with_durability(crm_storage_sled::Durability::Background);
    let companies: Vec<FieldValue> = (0..100).map(|n| FieldValue::Uuid(Uuid::from_u128(0xC000 + n))).collect();
    let mut ops = Vec::new();
    for n in 0..20_000u64 {
        let created = FieldValue::Timestamp(Utc.timestamp_opt(1_700_000_000 + n as i64, 0).unwrap());
        let fields = vec![
            ("created_at", created.clone()),
            ("updated_at", created),
            ("last_name", FieldValue::Text(format!("Name{}", n % 977))),
            ("email", FieldValue::Text(format!("c{n}@x.test"))),
            ("company_id", companies[(n % 100) as usize].clone()),
            ("owner_id", FieldValue::Uuid(Uuid::from_u128(0xA1))),
        ];
        ops.push(WriteOp::Insert(record(Uuid::now_v7(), 1, &fields)));
        if ops.len() == 1_000 {
            commit(&storage, TENANT, std::mem::take(&mut ops)).await;
        }
    }
    for (label, sort) in [
        ("id order", Sort::default()),
        ("id order desc", Sort { field: None, descending: true }),
        ("created_at", Sort { field: Some("created_at"), descending: false }),
        ("-created_at", Sort { field: Some("created_at"), descending: true }),
        ("last_name", Sort { field: Some("last_name"), descending: false }),
    ] {
        let query = ListQuery {
            filters: vec![Filter::eq("company_id", companies[7].clone())],
            sort,
            limit: 50,
            ..ListQuery::default()
        };
        let rounds = 300;
        // Warm sled's page cache first, so the listings compare walks, not cold reads.
        for _ in 0..rounds {
            storage.list(TENANT, KIND, &query).await.unwrap();
        }
        let started = Instant::now();
        for _ in 0..rounds {
            assert_eq!(storage.list(TENANT, KIND, &query).await.unwrap().items.len(), 50);
        }
        println!("{label:>12}: {:?} a page", started.elapsed() / rounds);
    }
}

/// sled's settings for a store in `dir`: compressed if it was created so (its `conf`).
fn raw_config(dir: &Path) -> sled::Config {
    let compressed =
        std::fs::read(dir.join("conf")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("use_compression: true"));
    sled::Config::new().path(dir).use_compression(compressed)
}
