//! Idempotency keys: a client that retries a `POST` with the same key gets the first
//! outcome instead of a second write. The first response is kept per tenant, principal
//! (user or API key) and key, as an `idempotency_key` record of the CRM's own storage,
//! so every server on that storage sees it and it survives restarts.
//!
//! The rules, in order: an unknown key is claimed (the request runs); the same key with
//! another request is refused; a claim still running is refused until its lease ends
//! (a server that died mid-request does not block the key for a day); a finished one is
//! replayed. Records expire [`IDEMPOTENCY_TTL`] after their claim and are pruned by
//! [`Idempotency::purge_expired`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    authz::{Principal, Resource},
    crm::Crm,
    entity::{Entity, entity_meta, from_stored, to_record},
    error::{CrmError, Result},
    fields::indexed_fields,
    id::{Meta, TenantId},
    storage::{EntityKind, Filter, StorageError, WriteBatch, WriteOp},
};

/// How long a first response is kept for retries.
pub const IDEMPOTENCY_TTL: Duration = Duration::hours(24);

/// How many expired keys one purge round removes at most (the scheduled purge).
pub const IDEMPOTENCY_PURGE_BATCH: usize = 1000;

/// How long a claimed key counts as running without an outcome; after that a retry
/// runs the request again (its first server is presumed gone).
pub const RUNNING_LEASE: Duration = Duration::minutes(2);

/// The outcome kept for replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The HTTP status (or the embedder's equivalent).
    pub status: u16,
    /// Headers worth replaying (`ETag`, `Content-Type`), as name and value.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: String,
}

/// One claimed key: the request it stands for and, once known, its outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Common metadata; `meta.id` is derived from the principal and the key.
    pub meta: Meta,
    /// A digest of the request (method, path, body): the same key must mean the same request.
    pub fingerprint: String,
    /// When the record may be pruned.
    pub expires_at: DateTime<Utc>,
    /// The outcome; absent while the request runs.
    pub response: Option<StoredResponse>,
}

impl Entity for IdempotencyRecord {
    const KIND: EntityKind = EntityKind::IdempotencyKey;
    // Never read through a service: only this module's calls touch these records.
    const RESOURCE: Resource = Resource::Users;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        expires_at: Timestamp [] = |e| e.expires_at,
    }
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// The key is this request's: run it, then [`Idempotency::finish`] or
    /// [`Idempotency::abandon`] with this ticket.
    Started(Ticket),
    /// The request already ran: answer this.
    Replay(StoredResponse),
    /// The same key is running now.
    Running,
    /// The key was used for another request.
    Mismatch,
}

/// A claimed key, to finish or abandon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    tenant: TenantId,
    id: Uuid,
    version: u64,
}

/// A digest of a request's parts, for [`Idempotency::claim`].
pub fn fingerprint(parts: &[&[u8]]) -> String {
    hex::encode(digest(parts))
}

/// SHA-256 of `parts`, each prefixed by its length so no two lists of parts collide.
fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The record id of `key` for `principal`: one per tenant, acting user or API key, and
/// key, so another caller's key never finds this caller's response.
fn record_id(principal: &Principal, key: &str) -> Uuid {
    let actor = principal.api_key_uuid().unwrap_or_else(|| principal.user_uuid());
    derived_id(&[principal.tenant_id().0.as_bytes(), actor.as_bytes(), key.as_bytes()])
}

/// A record id that is a function of `parts`, for records there must be at most one
/// of (a key's response, a named lease, a once-only notification): a second insert
/// of the same id is refused by every storage.
pub(crate) fn derived_id(parts: &[&[u8]]) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest(parts)[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Idempotency keys over the CRM's storage (see the module docs).
#[derive(Debug)]
pub struct Idempotency<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// Idempotency keys of requests.
    pub fn idempotency(&self) -> Idempotency<'_> {
        Idempotency { crm: self }
    }
}

impl Idempotency<'_> {
    /// Claims `key` for a request with `fingerprint`, or says why not.
    pub async fn claim(&self, principal: &Principal, key: &str, fingerprint: &str) -> Result<Claim> {
        let (tenant, id) = (principal.tenant_id(), record_id(principal, key));
        // Two attempts: a claim racing ours may win the insert; then we read theirs.
        for _ in 0..2 {
            let now = self.crm.now();
            let found = self.crm.storage().get(tenant, EntityKind::IdempotencyKey, id).await?;
            let Some(stored) = found else {
                match self.write(tenant, id, fingerprint, now, None).await {
                    Err(CrmError::AlreadyExists { .. } | CrmError::Conflict { .. }) => continue,
                    other => return other.map(Claim::Started),
                }
            };
            let record: IdempotencyRecord = from_stored(stored)?;
            let stale = record.response.is_none() && now - record.meta.updated_at > RUNNING_LEASE;
            if record.expires_at <= now || stale {
                match self.write(tenant, id, fingerprint, now, Some(record.meta.version)).await {
                    Err(CrmError::Conflict { .. }) => continue,
                    other => return other.map(Claim::Started),
                }
            }
            return Ok(match record.response {
                _ if record.fingerprint != fingerprint => Claim::Mismatch,
                Some(response) => Claim::Replay(response),
                None => Claim::Running,
            });
        }
        Ok(Claim::Running)
    }

    /// A fresh claim: inserted, or replacing an expired or stale one at `replacing`.
    async fn write(
        &self,
        tenant: TenantId,
        id: Uuid,
        fingerprint: &str,
        now: DateTime<Utc>,
        replacing: Option<u64>,
    ) -> Result<Ticket> {
        let mut meta = Meta::new(tenant, now);
        meta.id = id;
        meta.version = replacing.map_or(1, |v| v + 1);
        let record = IdempotencyRecord {
            meta,
            fingerprint: fingerprint.into(),
            expires_at: now + IDEMPOTENCY_TTL,
            response: None,
        };
        let op = match replacing {
            None => WriteOp::Insert(to_record(&record)?),
            Some(expected_version) => WriteOp::Update { record: to_record(&record)?, expected_version },
        };
        self.crm.storage().commit(tenant, WriteBatch { ops: vec![op], ..WriteBatch::default() }).await?;
        Ok(Ticket { tenant, id, version: record.meta.version })
    }

    /// Keeps `response` as the claimed key's outcome, for replay.
    pub async fn finish(&self, ticket: &Ticket, response: StoredResponse) -> Result<()> {
        let Some(stored) = self.crm.storage().get(ticket.tenant, EntityKind::IdempotencyKey, ticket.id).await? else {
            return Err(CrmError::NotFound { kind: EntityKind::IdempotencyKey, id: ticket.id });
        };
        let mut record: IdempotencyRecord = from_stored(stored)?;
        record.response = Some(response);
        record.meta.version = ticket.version + 1;
        record.meta.updated_at = self.crm.now();
        let op = WriteOp::Update { record: to_record(&record)?, expected_version: ticket.version };
        Ok(self.crm.storage().commit(ticket.tenant, WriteBatch { ops: vec![op], ..WriteBatch::default() }).await?)
    }

    /// Gives the key up (the request failed in a way worth retrying): a retry runs again.
    pub async fn abandon(&self, ticket: &Ticket) -> Result<()> {
        let op = WriteOp::Delete { kind: EntityKind::IdempotencyKey, id: ticket.id, expected_version: ticket.version };
        match self.crm.storage().commit(ticket.tenant, WriteBatch { ops: vec![op], ..WriteBatch::default() }).await {
            Ok(()) | Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes up to `limit` of `tenant`'s expired keys; says how many.
    pub async fn purge_expired(&self, tenant: TenantId, limit: usize) -> Result<u64> {
        let expired = vec![Filter::lt("expires_at", self.crm.now())];
        self.crm.delete_matching(tenant, EntityKind::IdempotencyKey, expired, limit).await
    }
}
