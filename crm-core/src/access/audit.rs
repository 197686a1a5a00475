//! The audit log: who did what to which record, when. Append-only: the contract has
//! no way to change or remove an entry, and adapters refuse to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    access::api_keys::ApiKey,
    access::users::User,
    authz::{Principal, Resource},
    crm::{Crm, Filters, PageRequest},
    entity::{Entity, entity_meta, to_record},
    error::Result,
    fields::indexed_fields,
    id::{Id, Meta},
    journal::AuditFact,
    storage::{EntityKind, Page, Record},
};

/// One audited change, written in the same atomic batch as the change itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditLog {
    /// Common metadata; `created_at` is when it happened.
    pub meta: Meta,
    /// The acting user (the key's owner for API keys); none for events nobody
    /// authenticated for (failed sign-ins, refresh-token reuse).
    pub actor_id: Option<Id<User>>,
    /// The API key used, if any.
    pub api_key_id: Option<Id<ApiKey>>,
    /// `<kind>.<action>`, e.g. `invoice.issued`; security events are
    /// `user.sign_in_failed`, `session.revoked`, `session.refresh_token_reused`,
    /// `api_key.authentication_failed` (and `user.password_changed`,
    /// `user.password_reset` as updates).
    pub action: String,
    /// The kind of the changed record.
    pub entity_kind: EntityKind,
    /// The changed record's id.
    pub entity_id: Uuid,
    /// `{"after": …}` on create, `{"changes": {field: {from, to}}}` on update,
    /// `{"before": …}` on delete, the event's details (a `reason`, say) on security
    /// events; secrets are never included.
    pub changes: Value,
}

impl Entity for AuditLog {
    const KIND: EntityKind = EntityKind::AuditLog;
    const RESOURCE: Resource = Resource::AuditLogs;
    entity_meta!();

    indexed_fields! {
        created_at [range(from, to)],
        updated_at [],
        actor_id: Uuid [eq] = |e| e.actor_id,
        action: Text [] = |e| e.action.as_str(),
        entity_kind: Text [eq] = |e| e.entity_kind.as_str(),
        entity_id: Uuid [eq] = |e| e.entity_id,
    }
}

impl AuditLog {
    /// The record of an audited change the unit of work journaled.
    pub(crate) fn record_fact(fact: AuditFact) -> Result<Record> {
        to_record(&Self {
            meta: fact.meta,
            actor_id: fact.actor.map(Id::from_uuid),
            api_key_id: fact.api_key.map(Id::from_uuid),
            action: fact.action,
            entity_kind: fact.entity_kind,
            entity_id: fact.entity_id,
            changes: fact.changes,
        })
    }
}

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditFilter {
    /// Only this actor's entries.
    pub actor_id: Option<Id<User>>,
    /// Only entries about this kind.
    pub entity_kind: Option<EntityKind>,
    /// Only entries about this record.
    pub entity_id: Option<Uuid>,
    /// Only entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// Reading the audit log (admins only). There is no write method.
#[derive(Clone, Copy, Debug)]
pub struct Audit<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The audit log service.
    pub fn audit(&self) -> Audit<'_> {
        Audit { crm: self }
    }
}

impl Audit<'_> {
    /// A page of entries.
    pub async fn list(&self, p: &Principal, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditLog>> {
        let filters = Filters::default()
            .eq("actor_id", filter.actor_id)
            .eq("entity_kind", filter.entity_kind.map(EntityKind::as_str))
            .eq("entity_id", filter.entity_id)
            .range("created_at", filter.from, filter.to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// One entry.
    pub async fn get(&self, p: &Principal, id: Id<AuditLog>) -> Result<AuditLog> {
        self.crm.read(p, id).await
    }
}
