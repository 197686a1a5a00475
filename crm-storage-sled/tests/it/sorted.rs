//! Sorted listings within an equality filter (the sorted index, `sorted/<kind>`): every
//! `(filter, sort, direction)` listing, paged with cursors to its end, equals the same
//! listing computed naively; after updates and deletes; and after a format 1 store is
//! migrated at open.

use std::{collections::BTreeMap, path::Path, thread, time::Duration};

use chrono::{TimeZone, Utc};
use crm_core::{
    TenantId,
    fields::filtered_sorts,
    fields_of,
    storage::{
        EntityKind, FieldValue, Filter, ListQuery, Record, Sort, Storage, TextSearch, WriteBatch, WriteOp, row_matches,
    },
};
use crm_storage_sled::{FORMAT_VERSION, OpenError, SledStorage};
use serde_json::json;
use uuid::Uuid;

const TENANT: TenantId = TenantId(Uuid::from_u128(0x5011ED));
/// Another tenant with records of the same values: never in `TENANT`'s listings.
const NEIGHBOUR: TenantId = TenantId(Uuid::from_u128(0x0DD));
const KIND: EntityKind = EntityKind::Contact;

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn companies() -> Vec<FieldValue> {
    (1..=4).map(|n| FieldValue::Uuid(Uuid::from_u128(0xC0 + n))).collect()
}

/// A few values per field, with `Null`s and many ties, so order within equal sort
/// values (by id) and the place of `Null` (first ascending, last descending) matter.
fn random_fields(rng: &mut Rng) -> Fields {
    let pick = |rng: &mut Rng, values: &[FieldValue]| values[rng.below(values.len() as u64) as usize].clone();
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
    let mut rng = Rng(99);
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
    let mut rng = Rng(0x5EED);
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
        match sled::open(dir) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_store_gets_its_sorted_index_at_open() {
    assert_eq!(FORMAT_VERSION, 2);
    let dir = tempfile::tempdir().unwrap();
    let storage = SledStorage::open(dir.path()).unwrap();
    let mut rng = Rng(0x0F01);
    // More records than one migration batch holds.
    let model = populate(&storage, &mut rng, 2_300, 500).await;
    drop(storage);

    // What format 1 was: no sorted trees, version 1. Plus a stale entry from an
    // interrupted migration, which a format 1 build wrote around: it claims a record
    // of company 1 that is not.
    let db = raw(dir.path());
    for &kind in EntityKind::ALL {
        db.drop_tree(format!("sorted/{kind}")).unwrap();
    }
    let (outsider, _) = model
        .0
        .iter()
        .find(|(_, (_, f))| Model::field(f, "company_id") != &companies()[0])
        .expect("a record of another company");
    let FieldValue::Uuid(company) = companies()[0] else { unreachable!() };
    // `tenant ‖ company_id ‖ 0 ‖ Uuid tag ‖ company ‖ created_at ‖ 0 ‖ Null tag ‖ id` (keys.rs).
    let stale = [
        TENANT.0.as_bytes().as_slice(),
        b"company_id\0\x06",
        company.as_bytes(),
        b"created_at\0\x01",
        outsider.as_bytes(),
    ]
    .concat();
    db.open_tree("sorted/contact").unwrap().insert(stale, &[]).unwrap();
    set_format_version(&db, 1);
    db.flush().unwrap();
    drop(db);

    let storage = SledStorage::open(dir.path()).unwrap();
    assert_listings_match(&storage, &model, 50).await;
    drop(storage);
    let db = raw(dir.path());
    assert_eq!(format_version(&db), FORMAT_VERSION, "the migration wrote the new version");

    // A newer or unknown format is still refused, untouched.
    let mut db = db;
    for unknown in [0, FORMAT_VERSION + 1] {
        set_format_version(&db, unknown);
        db.flush().unwrap();
        let sorted_entries = db.open_tree("sorted/contact").unwrap().len();
        drop(db);
        let err = SledStorage::open(dir.path()).expect_err("an unknown format must be refused");
        assert!(matches!(err, OpenError::FormatVersion { found, .. } if found == unknown), "{err:?}");
        db = raw(dir.path());
        assert_eq!(db.open_tree("sorted/contact").unwrap().len(), sorted_entries, "the refused store is untouched");
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
