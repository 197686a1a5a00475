//! Where entity kinds live in PostgreSQL: one table per kind, with one typed column
//! per indexed field. The fields and their types are the core's declarations
//! (`crm_core::fields_of`); this module adds only each kind's table name and the SQL
//! type of each field type.
//!
//! Every table has `tenant_id`, `id`, `version` and `data` plus one column per indexed
//! field, named after the field. The migrations in `migrations/` create exactly these
//! columns; a test compares them with the database's catalog.

use std::sync::LazyLock;

use crm_core::{fields::FieldType, fields_of, storage::EntityKind};

/// The SQL type of an indexed field's column: the core's field type.
pub(crate) type ColumnType = FieldType;

/// A column type's name as `information_schema.columns.data_type` reports it.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) fn sql_name(ty: ColumnType) -> &'static str {
    match ty {
        FieldType::Bool => "boolean",
        FieldType::Int => "bigint",
        FieldType::Decimal => "numeric",
        FieldType::Text => "text",
        FieldType::Uuid => "uuid",
        FieldType::Date => "date",
        FieldType::Timestamp => "timestamp with time zone",
    }
}

/// One indexed field and its column (same name; `id` is the primary key column).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    pub(crate) field: &'static str,
    pub(crate) ty: ColumnType,
}

/// One entity kind's table.
#[derive(Debug)]
pub(crate) struct Table {
    /// The kind's stable name ([`EntityKind::as_str`]).
    pub(crate) kind: &'static str,
    /// The table.
    pub(crate) name: &'static str,
    /// Every indexed field, `created_at` and `updated_at` first.
    pub(crate) columns: Vec<Column>,
}

impl Table {
    /// The column of an indexed field, if the kind has it.
    pub(crate) fn column(&self, field: &str) -> Option<Column> {
        self.columns.iter().find(|c| c.field == field).copied()
    }

    /// Every indexed column written from a record (not the `id` primary key).
    pub(crate) fn written_columns(&self) -> impl Iterator<Item = Column> + '_ {
        self.columns.iter().filter(|c| c.field != "id").copied()
    }
}

/// Each kind's table name. One kind is one line here plus one migration.
pub(crate) const TABLE_NAMES: &[(EntityKind, &str)] = &[
    (EntityKind::Tenant, "tenants"),
    (EntityKind::User, "users"),
    (EntityKind::Company, "companies"),
    (EntityKind::Contact, "contacts"),
    (EntityKind::Lead, "leads"),
    (EntityKind::Deal, "deals"),
    (EntityKind::Quote, "quotes"),
    (EntityKind::Invoice, "invoices"),
    (EntityKind::Payment, "payments"),
    (EntityKind::DeliveryNote, "delivery_notes"),
    (EntityKind::CreditNote, "credit_notes"),
    (EntityKind::Refund, "refunds"),
    (EntityKind::Project, "projects"),
    (EntityKind::Milestone, "milestones"),
    (EntityKind::Task, "tasks"),
    (EntityKind::Product, "products"),
    (EntityKind::ProductCategory, "product_categories"),
    (EntityKind::Notification, "notifications"),
    (EntityKind::ApiKey, "api_keys"),
    (EntityKind::AuditLog, "audit_log"),
    (EntityKind::Session, "sessions"),
    (EntityKind::TenantSettings, "tenant_settings"),
    (EntityKind::IdempotencyKey, "idempotency_keys"),
    (EntityKind::Job, "jobs"),
    (EntityKind::WebhookEndpoint, "webhook_endpoints"),
    (EntityKind::WebhookDelivery, "webhook_deliveries"),
    (EntityKind::Lease, "leases"),
    (EntityKind::ReportRun, "report_runs"),
];

/// Every kind's table, its columns from the core's field declarations.
pub(crate) static TABLES: LazyLock<Vec<Table>> = LazyLock::new(|| {
    TABLE_NAMES
        .iter()
        .map(|(kind, name)| Table {
            kind: kind.as_str(),
            name,
            columns: fields_of(*kind).iter().map(|f| Column { field: f.name, ty: f.ty }).collect(),
        })
        .collect()
});

/// The table of a kind; `None` for a kind this binary has no migration for.
pub(crate) fn table(kind: EntityKind) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.kind == kind.as_str())
}
