//! The live event stream's one decision: which relayed events a subscriber receives.
//! An event about a record reaches exactly those who may read that record now (the
//! decision of a GET of it); a `notification.created` event reaches the user it
//! notifies, and nobody else. Subscribers of another tenant receive nothing.
//!
//! The stream itself (positions, resuming, heartbeats, slow consumers) is the edge's:
//! it reads [`Storage::outbox_stream`](crate::storage::Storage::outbox_stream) and asks
//! [`Crm::may_see`] for each event and subscriber.

use crate::{
    authz::Principal,
    crm::Crm,
    error::{CrmError, Result},
    events::Notified,
    storage::{EntityKind, OutboxEvent},
};

impl Crm {
    /// Whether `p`'s live stream carries `event`.
    pub async fn may_see(&self, p: &Principal, event: &OutboxEvent) -> Result<bool> {
        if event.tenant_id != p.tenant_id() {
            return Ok(false);
        }
        if event.entity_kind == EntityKind::Notification {
            let notified: Notified = serde_json::from_value(event.payload.clone())
                .map_err(|e| CrmError::Internal(format!("event {}: {e}", event.id)))?;
            return Ok(notified.user_id == p.user_uuid());
        }
        match self.read_kind(p, event.entity_kind, event.entity_id).await {
            Ok(()) => Ok(true),
            Err(CrmError::NotFound { .. } | CrmError::Forbidden(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
