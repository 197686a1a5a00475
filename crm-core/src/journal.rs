//! What the unit of work writes besides a call's own records: an audit entry for every
//! change and a notification for every assignment. The kernel states these facts; the
//! areas that own the audit log and notifications decide how they are stored, through
//! the [`Journal`] the CRM is assembled with. So the unit of work imports neither area.

use serde_json::Value;
use uuid::Uuid;

use crate::{error::Result, id::Meta, storage::EntityKind, storage::Record};

/// One change to audit, as the unit of work saw it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AuditFact {
    /// Metadata of the entry (its tenant, id and time).
    pub(crate) meta: Meta,
    /// The acting user (the key's owner for API keys); none when nobody was
    /// authenticated (a failed sign-in, say).
    pub(crate) actor: Option<Uuid>,
    /// The API key used, if any.
    pub(crate) api_key: Option<Uuid>,
    /// `<kind>.<action>`, e.g. `invoice.issued`.
    pub(crate) action: String,
    /// The changed record.
    pub(crate) entity_kind: EntityKind,
    /// The changed record's id.
    pub(crate) entity_id: Uuid,
    /// What changed, with secrets already removed.
    pub(crate) changes: Value,
}

/// A user to tell that a record was assigned to them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AssignmentNotice {
    /// Metadata of the notification.
    pub(crate) meta: Meta,
    /// The user assigned.
    pub(crate) user: Uuid,
    /// The message.
    pub(crate) title: String,
    /// The assigned record.
    pub(crate) entity_kind: EntityKind,
    /// The assigned record's id.
    pub(crate) entity_id: Uuid,
}

/// How the facts become records: supplied when the CRM is assembled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Journal {
    /// The audit entry recording a change.
    pub(crate) audit: fn(AuditFact) -> Result<Record>,
    /// The notification telling a user of an assignment.
    pub(crate) notice: fn(AssignmentNotice) -> Result<Record>,
}
