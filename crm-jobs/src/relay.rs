//! The outbox relay: drains the outbox in commit order, runs every [`Reaction`] of
//! each event (plan webhook deliveries, enqueue emails…) and acknowledges the events
//! only after their reactions succeeded. At least once: a process that dies between a
//! reaction and the ack leaves the event pending, and it is relayed again.
//!
//! Exactly one relay works at a time among every server of one storage: a pass runs
//! only while its holder has the [`RELAY_LEASE`], renewed on every pass, so when the
//! holder dies another takes over once the lease expires ([`RelayOptions::lease_ttl`]).
//!
//! Order: within a tenant, events are acknowledged (and so streamed) in commit order.
//! When a reaction fails for an event, the later events of its tenant wait for the
//! next pass, so none overtakes it; other tenants go on.

use std::{collections::HashSet, sync::Arc, time::Duration};

use crm_core::{
    Result, TenantId,
    jobs::Reaction,
    leases::Leases,
    storage::{OutboxEvent, Storage},
};

/// The lease of the one relay that works.
pub const RELAY_LEASE: &str = "outbox-relay";

/// How the relay paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayOptions {
    /// The most events one pass takes.
    pub batch: usize,
    /// How long the lease lasts unless renewed: how long a dead holder's successor waits.
    pub lease_ttl: Duration,
    /// The pause after a pass that found less than a batch (nothing left to do at once).
    pub idle: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions { batch: 200, lease_ttl: Duration::from_secs(15), idle: Duration::from_millis(200) }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// Whether this relay held the lease (a standby relay does nothing).
    pub leading: bool,
    /// Events relayed and acknowledged.
    pub relayed: usize,
    /// Events left for a later pass: their reactions failed, or an earlier event of
    /// their tenant's did.
    pub held_back: usize,
}

/// One server's relay; see the module docs.
pub struct Relay {
    storage: Arc<dyn Storage>,
    leases: Arc<dyn Leases>,
    holder: String,
    reactions: Vec<Arc<dyn Reaction>>,
    options: RelayOptions,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reactions: Vec<&str> = self.reactions.iter().map(|r| r.name()).collect();
        f.debug_struct("Relay").field("holder", &self.holder).field("reactions", &reactions).finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay of `storage`'s outbox that takes the lease as `holder` (unique per
    /// process) and runs `reactions` for each event.
    pub fn new(
        storage: Arc<dyn Storage>,
        leases: Arc<dyn Leases>,
        holder: impl Into<String>,
        reactions: Vec<Arc<dyn Reaction>>,
    ) -> Self {
        Relay { storage, leases, holder: holder.into(), reactions, options: RelayOptions::default() }
    }

    /// The same relay paced by `options`.
    pub fn with_options(self, options: RelayOptions) -> Self {
        Relay { options, ..self }
    }

    /// One pass: takes or renews the lease, then relays up to a batch of events.
    pub async fn pass(&self) -> Result<Pass> {
        let ttl = chrono::Duration::from_std(self.options.lease_ttl).unwrap_or(chrono::Duration::seconds(15));
        if self.leases.acquire(RELAY_LEASE, &self.holder, ttl).await?.is_none() {
            return Ok(Pass::default());
        }
        let events = self.storage.outbox_pending(self.options.batch).await?;
        if events.is_empty() {
            return Ok(Pass { leading: true, ..Pass::default() });
        }
        // The common case: every reaction takes the whole batch at once.
        match self.react_all(&events).await {
            Ok(()) => {
                self.storage.outbox_ack(&events.iter().map(|e| e.id).collect::<Vec<_>>()).await?;
                return Ok(Pass { leading: true, relayed: events.len(), held_back: 0 });
            }
            Err((reaction, e)) => {
                tracing::info!(reaction, error = %e, events = events.len(), "a batch reaction failed: reacting one event at a time");
            }
        }
        let mut stalled: HashSet<TenantId> = HashSet::new();
        let mut relayed = Vec::with_capacity(events.len());
        for event in &events {
            if stalled.contains(&event.tenant_id) {
                continue;
            }
            match self.react_all(std::slice::from_ref(event)).await {
                Ok(()) => relayed.push(event.id),
                Err((reaction, e)) => {
                    tracing::warn!(event = %event.id, name = %event.name, tenant = %event.tenant_id, reaction, error = %e,
                        "a reaction failed: the event and its tenant's later ones wait for the next pass");
                    stalled.insert(event.tenant_id);
                }
            }
        }
        self.storage.outbox_ack(&relayed).await?;
        Ok(Pass { leading: true, relayed: relayed.len(), held_back: events.len() - relayed.len() })
    }

    async fn react_all(&self, events: &[OutboxEvent]) -> std::result::Result<(), (&'static str, crm_core::CrmError)> {
        for reaction in &self.reactions {
            reaction.react_all(events).await.map_err(|e| (reaction.name(), e))?;
        }
        Ok(())
    }

    /// Relays until the task is aborted: a pass, then another at once while passes
    /// find full batches, else after [`RelayOptions::idle`]. A standby relay tries for
    /// the lease at the same pace.
    pub async fn run(&self) {
        loop {
            match self.pass().await {
                Ok(pass) if pass.leading && pass.relayed + pass.held_back >= self.options.batch && pass.relayed > 0 => {
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the outbox relay's pass failed; retrying"),
            }
            tokio::time::sleep(self.options.idle).await;
        }
    }

    /// Gives the lease up (on shutdown), so another server takes over at once.
    pub async fn release(&self) -> Result<bool> {
        self.leases.release(RELAY_LEASE, &self.holder).await
    }
}
