//! The one place that maps entity kinds to tables and indexed fields to typed columns.
//!
//! Every table has `tenant_id`, `id`, `version` and `data` plus one column per indexed
//! field, named after the field. The migrations in `migrations/` create exactly these
//! columns; a test compares this table with the database's catalog.

use crm_core::storage::EntityKind;

/// The SQL type of an indexed field's column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnType {
    /// `boolean`
    Bool,
    /// `bigint`
    Int,
    /// `numeric`
    Decimal,
    /// `text COLLATE "C"`
    Text,
    /// `uuid`
    Uuid,
    /// `date`
    Date,
    /// `timestamptz`
    Timestamp,
}

impl ColumnType {
    /// The type's name as `information_schema.columns.data_type` reports it.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn sql_name(self) -> &'static str {
        match self {
            Self::Bool => "boolean",
            Self::Int => "bigint",
            Self::Decimal => "numeric",
            Self::Text => "text",
            Self::Uuid => "uuid",
            Self::Date => "date",
            Self::Timestamp => "timestamp with time zone",
        }
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
    /// Indexed fields besides the common `created_at` and `updated_at`.
    pub(crate) columns: &'static [Column],
}

impl Table {
    /// The column of an indexed field, if the kind has it.
    pub(crate) fn column(&self, field: &str) -> Option<Column> {
        COMMON.iter().chain(self.columns).find(|c| c.field == field).copied()
    }

    /// Every indexed column written from a record (not the `id` primary key).
    pub(crate) fn written_columns(&self) -> impl Iterator<Item = Column> + '_ {
        COMMON.iter().chain(self.columns).filter(|c| c.field != "id").copied()
    }
}

use ColumnType::{Bool, Date, Decimal, Int, Text, Timestamp, Uuid};

const fn c(field: &'static str, ty: ColumnType) -> Column {
    Column { field, ty }
}

/// Fields every entity indexes.
pub(crate) const COMMON: &[Column] = &[c("created_at", Timestamp), c("updated_at", Timestamp)];

/// Every kind's table. One kind is one entry here plus one migration.
pub(crate) const TABLES: &[Table] = &[
    Table { kind: "tenant", name: "tenants", columns: &[] },
    Table {
        kind: "user",
        name: "users",
        columns: &[
            c("id", Uuid),
            c("email", Text),
            c("first_name", Text),
            c("last_name", Text),
            c("role", Text),
            c("company_id", Uuid),
            c("active", Bool),
        ],
    },
    Table {
        kind: "company",
        name: "companies",
        columns: &[c("name", Text), c("email", Text), c("industry", Text), c("owner_id", Uuid), c("company_id", Uuid)],
    },
    Table {
        kind: "contact",
        name: "contacts",
        columns: &[
            c("first_name", Text),
            c("last_name", Text),
            c("email", Text),
            c("company_id", Uuid),
            c("owner_id", Uuid),
            c("lead_id", Uuid),
        ],
    },
    Table {
        kind: "lead",
        name: "leads",
        columns: &[
            c("first_name", Text),
            c("last_name", Text),
            c("email", Text),
            c("company_name", Text),
            c("source", Text),
            c("score", Int),
            c("status", Text),
            c("owner_id", Uuid),
        ],
    },
    Table {
        kind: "deal",
        name: "deals",
        columns: &[
            c("title", Text),
            c("company_id", Uuid),
            c("contact_id", Uuid),
            c("owner_id", Uuid),
            c("stage", Text),
            c("currency", Text),
            c("amount", Decimal),
            c("weighted_amount", Decimal),
            c("expected_close_date", Date),
            c("closed_at", Timestamp),
        ],
    },
    Table {
        kind: "quote",
        name: "quotes",
        columns: &[
            c("company_id", Uuid),
            c("contact_id", Uuid),
            c("deal_id", Uuid),
            c("owner_id", Uuid),
            c("status", Text),
            c("currency", Text),
            c("total", Decimal),
            c("valid_until", Date),
        ],
    },
    Table {
        kind: "invoice",
        name: "invoices",
        columns: &[
            c("number", Text),
            c("company_id", Uuid),
            c("contact_id", Uuid),
            c("quote_id", Uuid),
            c("owner_id", Uuid),
            c("status", Text),
            c("currency", Text),
            c("total", Decimal),
            c("amount_paid", Decimal),
            c("balance_due", Decimal),
            c("issue_date", Date),
            c("due_date", Date),
        ],
    },
    Table {
        kind: "payment",
        name: "payments",
        columns: &[
            c("invoice_id", Uuid),
            c("company_id", Uuid),
            c("amount", Decimal),
            c("currency", Text),
            c("method", Text),
            c("paid_on", Date),
            c("status", Text),
            c("recorded_by", Uuid),
        ],
    },
    Table {
        kind: "delivery_note",
        name: "delivery_notes",
        columns: &[c("invoice_id", Uuid), c("company_id", Uuid), c("status", Text), c("created_by", Uuid)],
    },
    Table {
        kind: "project",
        name: "projects",
        columns: &[
            c("name", Text),
            c("company_id", Uuid),
            c("deal_id", Uuid),
            c("status", Text),
            c("manager_id", Uuid),
            c("start_date", Date),
            c("end_date", Date),
        ],
    },
    Table {
        kind: "milestone",
        name: "milestones",
        columns: &[c("project_id", Uuid), c("name", Text), c("due_date", Date), c("status", Text), c("owner_id", Uuid)],
    },
    Table {
        kind: "task",
        name: "tasks",
        columns: &[
            c("project_id", Uuid),
            c("company_id", Uuid),
            c("milestone_id", Uuid),
            c("title", Text),
            c("assignee_id", Uuid),
            c("created_by", Uuid),
            c("status", Text),
            c("priority", Text),
            c("due_date", Date),
        ],
    },
    Table {
        kind: "product",
        name: "products",
        columns: &[
            c("sku", Text),
            c("name", Text),
            c("unit_price", Decimal),
            c("active", Bool),
            c("category_id", Uuid),
        ],
    },
    Table { kind: "product_category", name: "product_categories", columns: &[c("name", Text), c("parent_id", Uuid)] },
    Table { kind: "notification", name: "notifications", columns: &[c("user_id", Uuid), c("read", Bool)] },
    Table {
        kind: "api_key",
        name: "api_keys",
        columns: &[c("name", Text), c("owner_id", Uuid), c("prefix", Text), c("revoked", Bool)],
    },
    Table {
        kind: "audit_log",
        name: "audit_log",
        columns: &[c("actor_id", Uuid), c("action", Text), c("entity_kind", Text), c("entity_id", Uuid)],
    },
    Table {
        kind: "session",
        name: "sessions",
        columns: &[c("user_id", Uuid), c("expires_at", Timestamp), c("revoked", Bool)],
    },
];

/// The table of a kind; `None` for a kind this binary has no migration for.
pub(crate) fn table(kind: EntityKind) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.kind == kind.as_str())
}
