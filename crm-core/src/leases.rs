//! The lease contract: a named right to do something alone (relay the outbox, run a
//! scheduled job) for a while, shared by every server of one CRM ([`Leases`]). A
//! holder keeps its lease by renewing it before it expires; when it dies, the lease
//! expires and another holder takes over. Every grant carries an epoch that grows, so
//! work stamped with an older epoch can be told apart from the current holder's
//! (fencing).
//!
//! Two implementations live here, in process memory and on the CRM's own storage
//! (`lease` records under the system tenant); Redis has its own in crm-cache-redis.
//! Every implementation runs `lease_suite!`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    authz::Resource,
    crm::Clock,
    entity::{Entity, entity_meta, from_stored, to_record},
    error::Result,
    fields::indexed_fields,
    id::{Meta, TenantId},
    idempotency::derived_id,
    storage::{EntityKind, Storage, StorageError, WriteBatch, WriteOp},
};

/// The tenant that owns records of the CRM itself rather than of a customer (leases,
/// and later the job queue).
pub const SYSTEM_TENANT: TenantId = TenantId(Uuid::nil());

/// A lease as granted: who holds it, under which epoch, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The holder it was granted to.
    pub holder: String,
    /// Grows with every grant to a new holder, or to the same one after expiry or
    /// release; a renewal keeps it.
    pub epoch: u64,
    /// When the lease lapses unless renewed, by the clock of the implementation.
    pub expires_at: DateTime<Utc>,
}

/// Named leases. Implementations decide atomically: of racing acquirers of a free
/// lease, exactly one wins.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// A short name for diagnostics (`memory`, `storage`, `redis`).
    fn name(&self) -> &str;
    /// Grants `lease` to `holder` for `ttl` if it is free, expired or released (a new
    /// epoch), or renews it if `holder` holds it (the same epoch, a new expiry).
    /// `None` while another holder has it.
    async fn acquire(&self, lease: &str, holder: &str, ttl: Duration) -> Result<Option<Grant>>;
    /// Frees `lease` if `holder` holds it (says whether it did), so another holder
    /// need not wait for it to expire.
    async fn release(&self, lease: &str, holder: &str) -> Result<bool>;
    /// Who holds `lease` now, if anyone.
    async fn holder(&self, lease: &str) -> Result<Option<Grant>>;
}

/// The decision every implementation takes, on the lease's last state: `None` when
/// another holder still has it, or the grant to store.
pub fn decide(last: Option<&Grant>, holder: &str, now: DateTime<Utc>, ttl: Duration) -> Option<Grant> {
    let expires_at = now + ttl;
    match last {
        Some(g) if g.expires_at > now && g.holder == holder => Some(Grant { expires_at, ..g.clone() }),
        Some(g) if g.expires_at > now => None,
        last => Some(Grant { holder: holder.to_owned(), epoch: last.map_or(0, |g| g.epoch) + 1, expires_at }),
    }
}

/// The state a release leaves: expired now, the epoch kept so the next grant's grows.
fn released(grant: &Grant, now: DateTime<Utc>) -> Grant {
    Grant { expires_at: now, ..grant.clone() }
}

/// Leases in process memory, by the given clock: for tests and single-process servers.
pub struct MemoryLeases {
    clock: Arc<dyn Clock>,
    leases: Mutex<HashMap<String, Grant>>,
}

impl MemoryLeases {
    /// No lease held yet, timed by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, leases: Mutex::default() }
    }
}

#[async_trait]
impl Leases for MemoryLeases {
    fn name(&self) -> &str {
        "memory"
    }

    async fn acquire(&self, lease: &str, holder: &str, ttl: Duration) -> Result<Option<Grant>> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let grant = decide(leases.get(lease), holder, self.clock.now(), ttl);
        if let Some(grant) = &grant {
            leases.insert(lease.to_owned(), grant.clone());
        }
        Ok(grant)
    }

    async fn release(&self, lease: &str, holder: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        match leases.get_mut(lease) {
            Some(grant) if grant.holder == holder && grant.expires_at > now => {
                *grant = released(grant, now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn holder(&self, lease: &str) -> Result<Option<Grant>> {
        let leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(leases.get(lease).filter(|g| g.expires_at > self.clock.now()).cloned())
    }
}

/// One lease as a `lease` record of the system tenant; its id is derived from its
/// name, so there is one record per name and a second creation is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Common metadata; the version moves with every grant, renewal and release.
    pub meta: Meta,
    /// The lease's name.
    pub name: String,
    /// The holder of the last grant (expired or not).
    pub holder: String,
    /// The last grant's epoch.
    pub epoch: u64,
    /// When the last grant lapses (or lapsed).
    pub expires_at: DateTime<Utc>,
}

impl Entity for LeaseRecord {
    const KIND: EntityKind = EntityKind::Lease;
    // Never read through a service: only this module's calls touch these records.
    const RESOURCE: Resource = Resource::Users;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
    }
}

impl LeaseRecord {
    fn grant(&self) -> Grant {
        Grant { holder: self.holder.clone(), epoch: self.epoch, expires_at: self.expires_at }
    }
}

/// Leases as records of the CRM's own storage, timed by the CRM's clock: shared by
/// every server on that storage. Each change is a versioned write, so of two
/// acquirers that read the same state, the storage lets one win.
#[derive(Clone)]
pub struct StorageLeases {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StorageLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageLeases").field("storage", &self.storage.name()).finish()
    }
}

impl StorageLeases {
    /// Leases kept in `storage`, timed by `clock` (servers sharing a storage should
    /// have clocks closer than the shortest lease).
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Self {
        Self { storage, clock }
    }

    async fn read(&self, lease: &str) -> Result<Option<LeaseRecord>> {
        let id = derived_id(&[b"lease", lease.as_bytes()]);
        self.storage.get(SYSTEM_TENANT, EntityKind::Lease, id).await?.map(from_stored).transpose()
    }

    /// Writes `grant` over `last` (or as the first record); `false` when another
    /// writer got there first.
    async fn write(&self, lease: &str, last: Option<LeaseRecord>, grant: &Grant) -> Result<bool> {
        let now = self.clock.now();
        let op = match last {
            Some(last) => {
                let expected_version = last.meta.version;
                let meta = Meta { version: expected_version + 1, updated_at: now, ..last.meta };
                let record = with_grant(LeaseRecord { meta, ..last }, grant);
                WriteOp::Update { record: to_record(&record)?, expected_version }
            }
            None => {
                let meta = Meta { id: derived_id(&[b"lease", lease.as_bytes()]), ..Meta::new(SYSTEM_TENANT, now) };
                let record =
                    LeaseRecord { meta, name: lease.to_owned(), holder: String::new(), epoch: 0, expires_at: now };
                WriteOp::Insert(to_record(&with_grant(record, grant))?)
            }
        };
        match self.storage.commit(SYSTEM_TENANT, WriteBatch { ops: vec![op], ..WriteBatch::default() }).await {
            Ok(()) => Ok(true),
            Err(StorageError::Conflict { .. } | StorageError::AlreadyExists { .. } | StorageError::NotFound { .. }) => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn with_grant(record: LeaseRecord, grant: &Grant) -> LeaseRecord {
    LeaseRecord { holder: grant.holder.clone(), epoch: grant.epoch, expires_at: grant.expires_at, ..record }
}

#[async_trait]
impl Leases for StorageLeases {
    fn name(&self) -> &str {
        "storage"
    }

    async fn acquire(&self, lease: &str, holder: &str, ttl: Duration) -> Result<Option<Grant>> {
        let last = self.read(lease).await?;
        let Some(grant) = decide(last.as_ref().map(LeaseRecord::grant).as_ref(), holder, self.clock.now(), ttl) else {
            return Ok(None);
        };
        Ok(self.write(lease, last, &grant).await?.then_some(grant))
    }

    async fn release(&self, lease: &str, holder: &str) -> Result<bool> {
        let now = self.clock.now();
        match self.read(lease).await? {
            Some(last) if last.holder == holder && last.expires_at > now => {
                let grant = released(&last.grant(), now);
                self.write(lease, Some(last), &grant).await
            }
            _ => Ok(false),
        }
    }

    async fn holder(&self, lease: &str) -> Result<Option<Grant>> {
        let now = self.clock.now();
        Ok(self.read(lease).await?.map(|r| r.grant()).filter(|g| g.expires_at > now))
    }
}
