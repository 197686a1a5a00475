//! The storage contract: what every adapter implements and every service goes through.
//!
//! The contract is generic over entity kinds. A write is a [`WriteBatch`] of record
//! operations, counter advances and outbox events that commits atomically or not at all;
//! each [`Record`] carries, besides its JSON document, the indexed values, unique keys
//! and references the adapter must index and enforce. An adapter therefore implements a
//! handful of methods and never knows an entity's Rust type.

mod check;
mod document;
pub mod memory;
mod query;

use std::{fmt, str::FromStr};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use check::{StateView, check_batch};
pub use document::Document;
pub use query::{
    AggregateQuery, AggregateRow, Aggregation, Cursor, FieldValue, Filter, FilterOp, GroupKey, ListQuery, Page, Sort,
    TextSearch, row_matches,
};

use crate::id::TenantId;

macro_rules! entity_kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every kind of record the CRM stores.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum EntityKind {
            $(
                #[doc = concat!("`", $name, "` records.")]
                $variant,
            )*
        }

        impl EntityKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EntityKind] = &[$(EntityKind::$variant),*];

            /// The kind's stable snake_case name (used in keys, tables and events).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EntityKind::$variant => $name,)*
                }
            }
        }
    };
}

entity_kinds! {
    Tenant => "tenant",
    User => "user",
    Company => "company",
    Contact => "contact",
    Lead => "lead",
    Deal => "deal",
    Quote => "quote",
    Invoice => "invoice",
    Payment => "payment",
    DeliveryNote => "delivery_note",
    CreditNote => "credit_note",
    Refund => "refund",
    Project => "project",
    Milestone => "milestone",
    Task => "task",
    Product => "product",
    ProductCategory => "product_category",
    Notification => "notification",
    ApiKey => "api_key",
    AuditLog => "audit_log",
    Session => "session",
    TenantSettings => "tenant_settings",
    IdempotencyKey => "idempotency_key",
    Job => "job",
    WebhookEndpoint => "webhook_endpoint",
    WebhookDelivery => "webhook_delivery",
    Lease => "lease",
    ReportRun => "report_run",
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown entity kind `{s}`"))
    }
}

/// A value that must be unique among records of one kind in one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UniqueKey {
    /// The field it concerns (reported in [`StorageError::AlreadyExists`]).
    pub field: &'static str,
    /// The normalized value (e.g. a lower-cased email).
    pub value: String,
}

/// A pointer from one record to another of the same tenant. The target must exist
/// when the pointer is written, and cannot be deleted while pointed at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The pointing field (reported in [`StorageError::MissingReference`]).
    pub field: &'static str,
    /// The target's kind.
    pub kind: EntityKind,
    /// The target's id.
    pub id: Uuid,
}

/// A record as written: the document plus what the adapter must index and enforce.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The kind.
    pub kind: EntityKind,
    /// The id.
    pub id: Uuid,
    /// The version this write produces (1 on insert, read version + 1 on update).
    pub version: u64,
    /// The whole entity as JSON (shared: reads hand it out without copying).
    pub data: Document,
    /// Indexed values, by field name, for filters, sorts, search and aggregates.
    pub fields: Vec<(&'static str, FieldValue)>,
    /// Unique keys.
    pub uniques: Vec<UniqueKey>,
    /// References to other records.
    pub references: Vec<Reference>,
}

impl Record {
    /// The value of an indexed field; `Null` when the record has none.
    pub fn field(&self, name: &str) -> &FieldValue {
        self.fields.iter().find(|(n, _)| *n == name).map_or(&FieldValue::Null, |(_, v)| v)
    }

    /// The value this record sorts by under `sort`.
    pub fn sort_value(&self, sort: &Sort) -> FieldValue {
        sort.field.map_or(FieldValue::Null, |f| self.field(f).clone())
    }

    /// Whether the record passes every filter and the search of a query.
    pub fn matches(&self, filters: &[Filter], search: Option<&TextSearch>) -> bool {
        row_matches(|name| self.field(name), filters, search)
    }

    /// The stored form handed back by reads.
    pub fn to_stored(&self) -> StoredRecord {
        StoredRecord { kind: self.kind, id: self.id, version: self.version, data: self.data.clone() }
    }
}

/// A record as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    /// The kind.
    pub kind: EntityKind,
    /// The id.
    pub id: Uuid,
    /// The current version.
    pub version: u64,
    /// The whole entity as JSON.
    pub data: Document,
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    /// Create a record; its id must be new and its version 1.
    Insert(Record),
    /// Replace a record that must still be at `expected_version`; `record.version`
    /// must be `expected_version + 1`.
    Update {
        /// The new state.
        record: Record,
        /// The version the caller read.
        expected_version: u64,
    },
    /// Remove a record that must still be at `expected_version` and be referenced by
    /// nothing once the batch is applied.
    Delete {
        /// The kind.
        kind: EntityKind,
        /// The id.
        id: Uuid,
        /// The version the caller read.
        expected_version: u64,
    },
    /// Write nothing, but fail the batch unless the record is still at `version`
    /// (guards decisions taken on records the batch does not change).
    Check {
        /// The kind.
        kind: EntityKind,
        /// The id.
        id: Uuid,
        /// The version the caller read.
        version: u64,
    },
}

impl WriteOp {
    /// The kind and id the operation touches.
    pub fn target(&self) -> (EntityKind, Uuid) {
        match self {
            Self::Insert(r) | Self::Update { record: r, .. } => (r.kind, r.id),
            Self::Delete { kind, id, .. } | Self::Check { kind, id, .. } => (*kind, *id),
        }
    }
}

/// Moves a per-tenant counter (document numbers) from `expected` to `new`, atomically
/// with the rest of the batch; a counter never written reads as 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterUpdate {
    /// The counter's name, e.g. `invoice:2026`.
    pub key: String,
    /// The value the caller read.
    pub expected: u64,
    /// The value to store.
    pub new: u64,
}

/// A domain event recorded in the transactional outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// The event's id (UUID v7: pending events are delivered in id order).
    pub id: Uuid,
    /// The tenant it happened in.
    pub tenant_id: TenantId,
    /// Its name, such as `lead.converted`.
    pub name: String,
    /// The kind of the record it is about.
    pub entity_kind: EntityKind,
    /// The id of that record.
    pub entity_id: Uuid,
    /// Event-specific details.
    pub payload: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// An acknowledged outbox event with its place in the stream: what a live subscriber
/// reads, and resumes after (`Last-Event-ID`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamedEvent {
    /// Its position in the one global sequence of acknowledgements (from 1, strictly
    /// increasing in ack order, never reused, never given to a later ack out of order).
    pub position: u64,
    /// The event itself.
    pub event: OutboxEvent,
}

/// Everything one service call writes, committed all-or-nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteBatch {
    /// Record operations, applied in order.
    pub ops: Vec<WriteOp>,
    /// Counter advances.
    pub counters: Vec<CounterUpdate>,
    /// Outbox events.
    pub events: Vec<OutboxEvent>,
}

impl WriteBatch {
    /// Whether the batch writes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.counters.is_empty() && self.events.is_empty()
    }
}

/// Why a storage call failed, in the contract's own terms: never a driver's error type.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The record does not exist in this tenant.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Its kind.
        kind: EntityKind,
        /// Its id.
        id: Uuid,
    },
    /// A unique key (or the id) is already taken.
    #[error("a {kind} with this {field} already exists")]
    AlreadyExists {
        /// The kind.
        kind: EntityKind,
        /// The unique field (`id` for a duplicate id).
        field: String,
    },
    /// A record's version is not the expected one (or a counter moved); nothing was written.
    #[error("{kind} {id}: version conflict")]
    Conflict {
        /// The kind (`tenant` for a counter).
        kind: EntityKind,
        /// The id (the tenant's id for a counter).
        id: Uuid,
    },
    /// A delete was refused because another record still points at this one.
    #[error("{kind} {id} is still referenced by a {by}")]
    Referenced {
        /// The kind of the record to delete.
        kind: EntityKind,
        /// Its id.
        id: Uuid,
        /// The kind of a record pointing at it.
        by: EntityKind,
    },
    /// A written record points at a record that does not exist.
    #[error("{field}: {kind} {id} does not exist")]
    MissingReference {
        /// The pointing field.
        field: String,
        /// The target kind.
        kind: EntityKind,
        /// The target id.
        id: Uuid,
    },
    /// The batch breaks the contract itself (e.g. an update of the append-only audit log).
    #[error("invalid write: {0}")]
    Invalid(String),
    /// The backend cannot be reached now; the call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure.
    #[error("storage backend error: {source}")]
    Backend {
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The storage contract. Every call is scoped to one tenant by construction, except
/// the outbox, which a background worker drains for all tenants.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A short name for diagnostics and test output (`memory`, `sled`, `postgres`).
    fn name(&self) -> &str;

    /// One record by id.
    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError>;

    /// Several records by id in one round trip (missing ids are skipped; order not guaranteed).
    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError>;

    /// A page of records matching a query, in its order, after its cursor.
    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError>;

    /// Grouped counts and sums, computed by the storage (rows ordered by key).
    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError>;

    /// The current value of a counter (0 if never written).
    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError>;

    /// Applies a batch atomically: every check passes and everything is written, or
    /// nothing is. Once this returns `Ok`, the write is durable under the adapter's policy.
    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError>;

    /// Up to `limit` unacknowledged outbox events, oldest first, across tenants.
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError>;

    /// Acknowledges outbox events (their reactions ran): each newly acknowledged event
    /// gets the next position of one global sequence, in the order of `ids`, and the
    /// instant of its acknowledgement. Unknown and already acknowledged ids are ignored.
    ///
    /// Acknowledgements are serialized: once any reader has seen position N (through
    /// [`Storage::outbox_stream`] or [`Storage::outbox_position`]), no event ever appears
    /// at a position ≤ N. That is what lets a live stream resume after a position, on
    /// any instance.
    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError>;

    /// Up to `limit` acknowledged events of `tenant` with a position above `after`, in
    /// position order (pruned events are gone).
    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError>;

    /// The highest position given so far (0 before the first acknowledgement): where a
    /// new stream subscriber starts.
    async fn outbox_position(&self) -> Result<u64, StorageError>;

    /// Deletes up to `limit` events acknowledged before `acked_before`, oldest first, and
    /// says how many; pending events are never pruned. Positions are never reused.
    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError>;

    /// Whether the backend answers (readiness).
    async fn ping(&self) -> Result<(), StorageError>;
}
