//! The schema: migrations match the adapter's column mapping, run idempotently, and a
//! database migrated by a newer binary is refused.

use std::collections::BTreeSet;

use crm_core::storage::EntityKind;
use crm_storage_postgres::{
    PostgresOptions, PostgresStorage, latest_migration,
    testing::{Target, create_database, expected_columns, expected_sort_indexes, mapped_kinds, shared_server},
};

async fn fresh_url() -> String {
    let target = tokio::task::spawn_blocking(shared_server).await.unwrap();
    create_database(target).await.unwrap()
}

#[tokio::test]
async fn every_entity_kind_has_a_table() {
    let mapped: BTreeSet<&str> = mapped_kinds().into_iter().collect();
    for kind in EntityKind::ALL {
        assert!(mapped.contains(kind.as_str()), "no table mapped for entity kind `{kind}`: add a migration");
    }
}

#[tokio::test]
async fn migrations_create_exactly_the_mapped_columns() {
    let url = fresh_url().await;
    PostgresStorage::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND column_name NOT IN ('tenant_id', 'id', 'version', 'data')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let actual: BTreeSet<(String, String, String)> = rows.into_iter().collect();
    let tables: BTreeSet<&str> = expected_columns().iter().map(|(t, _, _)| *t).collect();
    let actual_mapped: BTreeSet<(String, String, String)> =
        actual.into_iter().filter(|(t, _, _)| tables.contains(t.as_str())).collect();
    let expected: BTreeSet<(String, String, String)> =
        expected_columns().into_iter().map(|(t, c, ty)| (t.into(), c.into(), ty.into())).collect();
    assert_eq!(actual_mapped, expected, "the migrations and src/schema.rs disagree");
}

#[tokio::test]
async fn migrations_are_idempotent_and_newer_schemas_are_refused() {
    let url = fresh_url().await;
    let first = PostgresStorage::connect(&url).await.unwrap();
    // Again, from a second "instance": nothing to do, no error.
    let second = PostgresStorage::connect(&url).await.unwrap();
    second.migrate().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert_eq!(applied, i64::try_from(files).unwrap(), "each migration applied once");
    assert!(latest_migration() > 0);
    first.close().await;
    second.close().await;

    // A release from the future migrated this database.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = PostgresStorage::connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("99991231000000") && err.contains("newer release"), "unclear refusal: {err}");
    // Without migrating on connect, the refusal comes from the explicit call.
    let options = PostgresOptions { migrate: false, ..PostgresOptions::default() };
    let manual = PostgresStorage::connect_with(&url, options).await.unwrap();
    assert!(manual.migrate().await.is_err());
}

#[tokio::test]
async fn every_indexed_field_has_a_tenant_first_index() {
    let url = fresh_url().await;
    PostgresStorage::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The first two key columns of every btree index (or unique constraint) per table.
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, a1.attname::text, a2.attname::text \
         FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_am am ON am.oid = i.relam \
         JOIN pg_attribute a1 ON a1.attrelid = t.oid AND a1.attnum = x.indkey[0] \
         JOIN pg_attribute a2 ON a2.attrelid = t.oid AND a2.attnum = x.indkey[1] \
         WHERE am.amname = 'btree' AND t.relnamespace = 'public'::regnamespace",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let indexed: BTreeSet<(String, String)> =
        rows.into_iter().filter(|(_, first, _)| first == "tenant_id").map(|(t, _, second)| (t, second)).collect();
    let missing: Vec<String> = expected_columns()
        .into_iter()
        // A company's `company_id` is its own id: the primary key serves it.
        .filter(|(table, column, _)| (*table, *column) != ("companies", "company_id"))
        .filter(|(table, column, _)| !indexed.contains(&((*table).to_owned(), (*column).to_owned())))
        .map(|(t, c, _)| format!("{t}.{c}"))
        .collect();
    assert!(missing.is_empty(), "indexed fields without a (tenant_id, field) index: {missing:?}");
}

/// A listing filtered by equality and sorted by another field walks one index in order
/// (goal: sorting costs about what the default order does), rather than sorting every
/// matching row.
#[tokio::test]
async fn every_filter_and_sort_pair_has_a_composite_index() {
    let url = fresh_url().await;
    PostgresStorage::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The key columns of every btree index, in order, per table.
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, array_agg(a.attname::text ORDER BY k.ord) \
         FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_am am ON am.oid = i.relam \
         CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE am.amname = 'btree' AND t.relnamespace = 'public'::regnamespace \
         GROUP BY t.relname, i.relname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let indexed: BTreeSet<(String, Vec<String>)> = rows.into_iter().collect();
    let missing: Vec<String> = expected_sort_indexes()
        .into_iter()
        .filter(|(table, filter, sort)| {
            let columns = ["tenant_id", filter, sort, "id"].map(str::to_owned).to_vec();
            !indexed.contains(&((*table).to_owned(), columns))
        })
        .map(|(t, f, s)| format!("CREATE INDEX {t}_{f}_{s}_idx ON {t} (tenant_id, {f}, {s} NULLS FIRST, id);"))
        .collect();
    assert!(missing.is_empty(), "filter and sort pairs without their index; add a migration:\n{}", missing.join("\n"));
}

#[tokio::test]
async fn debug_output_never_shows_the_password() {
    let url = fresh_url().await;
    // The throwaway server trusts local connections, so any password is accepted; on a
    // CRM_TEST_DATABASE_URL server, the URL as given must not show.
    let local = matches!(shared_server(), Target::Local(_));
    let (with_password, secret) = match url.strip_prefix("postgres://postgres@").filter(|_| local) {
        Some(rest) => (format!("postgres://postgres:hunter2secret@{rest}"), "hunter2secret".to_owned()),
        None => (url.clone(), url.clone()),
    };
    let storage = PostgresStorage::connect(&with_password).await.unwrap();
    let shown = format!("{storage:?}");
    assert!(shown.contains("PostgresStorage") && !shown.contains(&secret), "{shown}");
}

#[tokio::test]
async fn status_checks_accept_every_value_the_core_knows() {
    use crm_core::{
        Role,
        customers::deals::DealStage,
        customers::leads::{LeadSource, LeadStatus},
        jobs::JobState,
        reports::runs::RunStatus,
        sales::delivery_notes::DeliveryStatus,
        sales::invoices::InvoiceStatus,
        sales::payments::{PaymentMethod, PaymentStatus},
        sales::quotes::QuoteStatus,
        webhooks::deliveries::DeliveryState,
        work::{
            milestones::MilestoneStatus,
            projects::ProjectStatus,
            tasks::{TaskPriority, TaskStatus},
        },
    };
    fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| name(*v)).collect()
    }
    let expected: Vec<(&str, &str, Vec<&str>)> = vec![
        ("users", "role", names(&Role::ALL, Role::as_str)),
        ("leads", "source", names(LeadSource::ALL, LeadSource::as_str)),
        ("leads", "status", names(LeadStatus::ALL, LeadStatus::as_str)),
        ("deals", "stage", names(DealStage::ALL, DealStage::as_str)),
        ("quotes", "status", names(QuoteStatus::ALL, QuoteStatus::as_str)),
        ("invoices", "status", names(InvoiceStatus::ALL, InvoiceStatus::as_str)),
        ("payments", "method", names(PaymentMethod::ALL, PaymentMethod::as_str)),
        ("payments", "status", names(PaymentStatus::ALL, PaymentStatus::as_str)),
        ("delivery_notes", "status", names(DeliveryStatus::ALL, DeliveryStatus::as_str)),
        ("projects", "status", names(ProjectStatus::ALL, ProjectStatus::as_str)),
        ("milestones", "status", names(MilestoneStatus::ALL, MilestoneStatus::as_str)),
        ("tasks", "status", names(TaskStatus::ALL, TaskStatus::as_str)),
        ("tasks", "priority", names(TaskPriority::ALL, TaskPriority::as_str)),
        ("jobs", "state", names(JobState::ALL, JobState::as_str)),
        ("webhook_deliveries", "status", names(DeliveryState::ALL, DeliveryState::as_str)),
        ("report_runs", "status", names(RunStatus::ALL, RunStatus::as_str)),
    ];
    let url = fresh_url().await;
    PostgresStorage::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for (table, column, values) in expected {
        let checks: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
             WHERE c.contype = 'c' AND t.relname = $1",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        let check = checks
            .iter()
            .find(|c| c.contains(&format!("({column} = ANY")))
            .unwrap_or_else(|| panic!("no CHECK on {table}.{column} among {checks:?}"));
        for value in values {
            assert!(
                check.contains(&format!("'{value}'")),
                "{table}.{column} refuses `{value}`, which the core writes: add it with a migration ({check})"
            );
        }
    }
}
