//! The session-storage contract: where sign-in sessions are kept ([`SessionStore`]),
//! with two implementations (process memory, and the CRM's own storage). The rules of
//! sessions (rotation, reuse detection) live in the access area's `Sessions` service;
//! stores only keep and fetch, so a Redis or other store can stand in for these.

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
    entity::{Entity, entity_meta, from_stored, to_record},
    error::{CrmError, Result},
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    storage::{EntityKind, Filter, ListQuery, Storage, StorageError, WriteBatch, WriteOp},
};

/// How long a session lives when nothing else is configured.
pub const DEFAULT_SESSION_TTL: Duration = Duration::days(7);

/// One sign-in of a user, alive until it expires or is revoked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Common metadata; the version moves on every rotation.
    pub meta: Meta,
    /// The signed-in user.
    // A `User` id, untyped: the session contract sits in the kernel, below users.
    pub user_id: Uuid,
    /// When the session (and its refresh token) stops working.
    pub expires_at: DateTime<Utc>,
    /// Revoked sessions never work again.
    pub revoked: bool,
    /// When the session was last signed in or refreshed (not every request: access
    /// tokens are checked without writing). `None` on sessions stored before it was kept.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// The client's `User-Agent` at sign-in or the last refresh, as the edge saw it.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The client's IP address at sign-in or the last refresh, as the edge saw it.
    #[serde(default)]
    pub ip: Option<String>,
    pub(crate) refresh_hash: String,
    /// Hashes of the refresh tokens rotated away, newest first (a bounded number): a
    /// genuine old token presented again is reuse; a token matching none is a guess.
    #[serde(default)]
    pub(crate) retired_hashes: Vec<String>,
    /// When the current refresh token replaced the previous one.
    #[serde(default)]
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    /// What the current refresh token was derived with from the previous one, so a
    /// concurrent refresh with the previous token gets the same token back.
    #[serde(default)]
    pub(crate) rotation_nonce: Option<String>,
}

impl Session {
    /// Whether the session still works at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && now < self.expires_at
    }

    /// A session with the given refresh-token hash, as the access area's `Sessions`
    /// hands one to its store: for the session-store conformance suite, never for
    /// signing in.
    #[cfg(feature = "conformance")]
    #[doc(hidden)]
    pub fn from_parts(
        meta: Meta,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
        revoked: bool,
        refresh_hash: String,
    ) -> Self {
        Self {
            meta,
            user_id,
            expires_at,
            revoked,
            last_used_at: None,
            user_agent: None,
            ip: None,
            refresh_hash,
            retired_hashes: Vec::new(),
            rotated_at: None,
            rotation_nonce: None,
        }
    }
}

impl Entity for Session {
    const KIND: EntityKind = EntityKind::Session;
    const RESOURCE: Resource = Resource::Users;
    const SECRET_FIELDS: &'static [&'static str] = &["refresh_hash", "retired_hashes", "rotation_nonce"];
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        user_id: Uuid [] = |e| e.user_id,
        expires_at: Timestamp [] = |e| e.expires_at,
        revoked: Bool [] = |e| e.revoked,
    }

    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.user_id]
    }
}

/// Where sessions are kept. Implementations store and fetch; the rotation and reuse
/// rules stay in the access area's `Sessions`. Every implementation runs
/// `session_store_suite!`.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// A short name for diagnostics (`memory`, `storage`, `redis`).
    fn name(&self) -> &str;
    /// One session of a tenant.
    async fn get(&self, tenant: TenantId, id: Id<Session>) -> Result<Option<Session>>;
    /// Stores a new session (version 1); an id the tenant has is [`CrmError::AlreadyExists`].
    async fn insert(&self, session: &Session) -> Result<()>;
    /// Replaces a session that must still be at `expected_version`; `session` carries
    /// the next version. A moved session is [`CrmError::Conflict`], one the tenant does
    /// not have [`CrmError::NotFound`].
    async fn replace(&self, expected_version: u64, session: &Session) -> Result<()>;
    /// Every session of `user` in `tenant`, revoked and expired ones included until
    /// they are removed, in no particular order.
    async fn list_for_user(&self, tenant: TenantId, user: Uuid) -> Result<Vec<Session>>;
    /// Removes up to `limit` sessions of `tenant` that expired before `now`, and says
    /// how many it removed. Until then expired sessions stay readable.
    async fn remove_expired(&self, tenant: TenantId, now: DateTime<Utc>, limit: usize) -> Result<u64>;
}

/// Sessions in process memory: lost on restart; for tests and single-process servers.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<(TenantId, uuid::Uuid), Session>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn get(&self, tenant: TenantId, id: Id<Session>) -> Result<Option<Session>> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.get(&(tenant, id.uuid())).cloned())
    }

    async fn insert(&self, session: &Session) -> Result<()> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (session.meta.tenant_id, session.meta.id);
        if sessions.contains_key(&key) {
            return Err(CrmError::AlreadyExists { kind: EntityKind::Session, field: "id".into() });
        }
        sessions.insert(key, session.clone());
        Ok(())
    }

    async fn replace(&self, expected_version: u64, session: &Session) -> Result<()> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (session.meta.tenant_id, session.meta.id);
        match sessions.get_mut(&key) {
            Some(current) if current.meta.version == expected_version => {
                *current = session.clone();
                Ok(())
            }
            Some(_) => Err(CrmError::Conflict { kind: EntityKind::Session, id: session.meta.id }),
            None => Err(CrmError::NotFound { kind: EntityKind::Session, id: session.meta.id }),
        }
    }

    async fn list_for_user(&self, tenant: TenantId, user: Uuid) -> Result<Vec<Session>> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.iter().filter(|(key, s)| key.0 == tenant && s.user_id == user).map(|(_, s)| s.clone()).collect())
    }

    async fn remove_expired(&self, tenant: TenantId, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let expired: Vec<_> = sessions
            .iter()
            .filter(|(key, s)| key.0 == tenant && s.expires_at < now)
            .map(|(key, _)| *key)
            .take(limit)
            .collect();
        for key in &expired {
            sessions.remove(key);
        }
        Ok(expired.len() as u64)
    }
}

/// Sessions as `session` records of the CRM's own storage: they survive restarts and
/// are shared by every server on the same storage.
#[derive(Clone)]
pub struct StorageSessionStore {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for StorageSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSessionStore").field("storage", &self.storage.name()).finish()
    }
}

impl StorageSessionStore {
    /// Sessions kept in `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl SessionStore for StorageSessionStore {
    fn name(&self) -> &str {
        "storage"
    }

    async fn get(&self, tenant: TenantId, id: Id<Session>) -> Result<Option<Session>> {
        self.storage.get(tenant, EntityKind::Session, id.uuid()).await?.map(from_stored).transpose()
    }

    async fn insert(&self, session: &Session) -> Result<()> {
        let batch = WriteBatch { ops: vec![WriteOp::Insert(to_record(session)?)], ..WriteBatch::default() };
        Ok(self.storage.commit(session.meta.tenant_id, batch).await?)
    }

    async fn replace(&self, expected_version: u64, session: &Session) -> Result<()> {
        let op = WriteOp::Update { record: to_record(session)?, expected_version };
        let batch = WriteBatch { ops: vec![op], ..WriteBatch::default() };
        Ok(self.storage.commit(session.meta.tenant_id, batch).await?)
    }

    async fn list_for_user(&self, tenant: TenantId, user: Uuid) -> Result<Vec<Session>> {
        let mut query = ListQuery { limit: 500, ..ListQuery::filtered(vec![Filter::eq("user_id", user)]) };
        let mut sessions = Vec::new();
        loop {
            let page = self.storage.list(tenant, EntityKind::Session, &query).await?;
            for stored in page.items {
                sessions.push(from_stored(stored)?);
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(sessions),
            }
        }
    }

    async fn remove_expired(&self, tenant: TenantId, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        let query = ListQuery { limit, ..ListQuery::filtered(vec![Filter::lt("expires_at", now)]) };
        let expired = self.storage.list(tenant, EntityKind::Session, &query).await?;
        let ops: Vec<WriteOp> = expired
            .items
            .iter()
            .map(|s| WriteOp::Delete { kind: EntityKind::Session, id: s.id, expected_version: s.version })
            .collect();
        let removed = ops.len() as u64;
        if removed == 0 {
            return Ok(0);
        }
        match self.storage.commit(tenant, WriteBatch { ops, ..WriteBatch::default() }).await {
            Ok(()) => Ok(removed),
            // One of them moved meanwhile (revoked, say): the next round takes them.
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}
