//! Security events: failed sign-ins and API-key authentications, refresh-token reuse,
//! session revocations. Each is an audit entry of its own (most have no record change
//! to ride on, and the session store need not be the CRM's storage) and a `tracing`
//! event (target `crm_core::security`), so both admins and operators see them. Neither
//! carries a secret: no password, token or hash, only ids, a reason and, for an
//! unknown email, the email as typed (trimmed, printable, bounded).

use serde_json::Value;
use uuid::Uuid;

use crate::{
    crm::Crm,
    error::Result,
    id::{Meta, TenantId},
    journal::AuditFact,
    storage::{EntityKind, WriteBatch, WriteOp},
};

/// How loudly an event is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Expected in normal use (a sign-out, a revocation).
    Info,
    /// Someone may be attacking (a failed credential, a reused token).
    Warn,
}

/// One security event, about one record of the tenant.
#[derive(Clone, Debug)]
pub(crate) struct SecurityEvent {
    pub(crate) tenant: TenantId,
    /// The authenticated user who caused it; none when nobody was authenticated.
    pub(crate) actor: Option<Uuid>,
    /// The API key that caused it, if any.
    pub(crate) api_key: Option<Uuid>,
    /// `<kind>.<what happened>`, e.g. `session.revoked`.
    pub(crate) action: &'static str,
    /// The record the event is about (the tenant itself when no record is known).
    pub(crate) entity_kind: EntityKind,
    /// That record's id.
    pub(crate) entity_id: Uuid,
    /// What an admin needs to read the event: always a `reason`, never a secret.
    pub(crate) details: Value,
    pub(crate) severity: Severity,
}

/// The longest text from a request (an email typed at sign-in) kept in an event.
const MAX_ECHOED_CHARS: usize = 254;

/// `text` as it may be kept in an audit entry: printable, bounded. It comes from an
/// unauthenticated request, and storage refuses control characters.
pub(crate) fn printable(text: &str) -> String {
    text.trim().chars().filter(|c| !c.is_control()).take(MAX_ECHOED_CHARS).collect()
}

impl Crm {
    /// Logs `event` and writes its audit entry (one batch of its own).
    pub(crate) async fn record_security_event(&self, event: SecurityEvent) -> Result<()> {
        log(&event);
        let fact = AuditFact {
            meta: Meta::new(event.tenant, self.now()),
            actor: event.actor,
            api_key: event.api_key,
            action: event.action.to_owned(),
            entity_kind: event.entity_kind,
            entity_id: event.entity_id,
            changes: event.details,
        };
        let batch = WriteBatch { ops: vec![WriteOp::Insert((self.journal.audit)(fact)?)], ..WriteBatch::default() };
        Ok(self.storage.commit(event.tenant, batch).await?)
    }
}

impl Crm {
    /// [`Crm::record_security_event`] if the event's tenant exists; else only logs it.
    pub(crate) async fn record_security_event_in_known_tenant(&self, event: SecurityEvent) -> Result<()> {
        let tenant = event.tenant;
        if self.storage.get(tenant, EntityKind::Tenant, tenant.0).await?.is_some() {
            self.record_security_event(event).await
        } else {
            log(&event);
            Ok(())
        }
    }
}

fn log(e: &SecurityEvent) {
    let (tenant, actor, key, kind) = (e.tenant.0, e.actor, e.api_key, e.entity_kind.as_str());
    let reason = e.details.get("reason").and_then(Value::as_str).unwrap_or("");
    let details = &e.details;
    match e.severity {
        Severity::Info => tracing::info!(
            target: "crm_core::security", %tenant, ?actor, ?key, entity_kind = kind, entity_id = %e.entity_id,
            reason, %details, "{}", e.action
        ),
        Severity::Warn => tracing::warn!(
            target: "crm_core::security", %tenant, ?actor, ?key, entity_kind = kind, entity_id = %e.entity_id,
            reason, %details, "{}", e.action
        ),
    }
}
