//! Bad input and races come back as the contract's errors, never as driver errors or
//! panics.

use std::sync::Arc;

use crm_core::{
    Role,
    access::users::NewUser,
    conformance::{World, cases::company},
    entity::to_record,
    storage::{EntityKind, FieldValue, Filter, ListQuery, Record, Storage, StorageError, WriteBatch, WriteOp},
};
use crm_storage_postgres::testing::fresh_storage;
use futures::future::join_all;

async fn world() -> (Arc<dyn Storage>, World) {
    let s: Arc<dyn Storage> = Arc::new(fresh_storage().await);
    let w = World::new(s.clone()).await;
    (s, w)
}

async fn insert(s: &Arc<dyn Storage>, w: &World, record: Record) -> Result<(), StorageError> {
    s.commit(w.admin.tenant_id(), WriteBatch { ops: vec![WriteOp::Insert(record)], ..WriteBatch::default() }).await
}

#[tokio::test]
async fn nul_bytes_are_invalid_input() {
    let (s, w) = world().await;
    // The core refuses such text when it builds a record; a record built by hand still
    // meets the database's own refusal.
    let mut record = to_record(&company(&w, "bad name")).unwrap();
    for (field, value) in &mut record.fields {
        if *field == "name" {
            *value = FieldValue::Text("bad\0name".into());
        }
    }
    let err = insert(&s, &w, record).await.unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err:?}");
    // The store still works afterwards.
    insert(&s, &w, to_record(&company(&w, "good name")).unwrap()).await.unwrap();
}

#[tokio::test]
async fn fields_must_fit_their_columns() {
    let (s, w) = world().await;
    let mut wrong_type = to_record(&company(&w, "typed")).unwrap();
    wrong_type.fields.retain(|(f, _)| *f != "name");
    wrong_type.fields.push(("name", FieldValue::Int(7)));
    let err = insert(&s, &w, wrong_type).await.unwrap_err();
    assert!(matches!(&err, StorageError::Invalid(m) if m.contains("name")), "{err:?}");

    let mut unknown = to_record(&company(&w, "unknown")).unwrap();
    unknown.fields.push(("shoe_size", FieldValue::Int(44)));
    let err = insert(&s, &w, unknown).await.unwrap_err();
    assert!(matches!(&err, StorageError::Invalid(m) if m.contains("shoe_size")), "{err:?}");

    let query = ListQuery::filtered(vec![Filter::eq("shoe_size", 44i64)]);
    let err = s.list(w.admin.tenant_id(), EntityKind::Company, &query).await.unwrap_err();
    assert!(matches!(&err, StorageError::Invalid(m) if m.contains("shoe_size")), "{err:?}");
}

#[tokio::test]
async fn schema_checks_refuse_what_the_core_would_never_write() {
    let (s, w) = world().await;
    let mut record = to_record(&company(&w, "negative")).unwrap();
    record.kind = EntityKind::Company;
    // A company whose `company_id` is not its own id breaks a CHECK constraint.
    record.fields.retain(|(f, _)| *f != "company_id");
    record.fields.push(("company_id", FieldValue::Uuid(uuid::Uuid::now_v7())));
    let err = insert(&s, &w, record).await.unwrap_err();
    assert!(matches!(&err, StorageError::Invalid(m) if m.contains("companies_check")), "{err:?}");
}

#[tokio::test]
async fn racing_inserts_of_one_email_leave_one_user_and_name_the_field() {
    let (_s, w) = world().await;
    let users = w.crm.users();
    let attempts = (0..12).map(|i| {
        users.create(
            &w.admin,
            NewUser {
                email: if i % 2 == 0 { "race@example.test".into() } else { "RACE@example.test".into() },
                password: "long enough".into(),
                first_name: format!("Racer{i}"),
                last_name: "Same".into(),
                role: Role::User,
                company_id: None,
            },
        )
    });
    let results = join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one racer gets the email: {results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r, crm_core::CrmError::AlreadyExists { kind: EntityKind::User, field } if field == "email"),
            "{r:?}"
        );
    }
}
