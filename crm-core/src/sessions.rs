//! Sign-in sessions: a refresh token bound to a session, rotated on every use.
//!
//! The rules live here, the storing behind [`SessionStore`]: a refresh token works
//! once; presenting one that was already rotated away (a stolen copy, or the original
//! after a thief used it) revokes the whole session. Only the SHA-256 hash of the
//! current token is stored.
//!
//! Token format: `crs_<tenant id, 32 hex>_<session id, 32 hex>_<secret, 64 hex>`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    authz::{Principal, Resource},
    crm::Crm,
    entity::{Entity, entity_meta, from_stored, to_record},
    error::{CrmError, Result},
    id::{Id, Meta, TenantId},
    storage::{EntityKind, FieldValue, Filter, ListQuery, Storage, StorageError, WriteBatch, WriteOp},
    users::User,
};

/// One sign-in of a user, alive until it expires or is revoked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Common metadata; the version moves on every rotation.
    pub meta: Meta,
    /// The signed-in user.
    pub user_id: Id<User>,
    /// When the session (and its refresh token) stops working.
    pub expires_at: DateTime<Utc>,
    /// Revoked sessions never work again.
    pub revoked: bool,
    refresh_hash: String,
}

impl Session {
    /// Whether the session still works at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && now < self.expires_at
    }

    /// A session with the given refresh-token hash, as [`Sessions`] hands one to its
    /// store: for the session-store conformance suite, never for signing in.
    #[cfg(feature = "conformance")]
    #[doc(hidden)]
    pub fn from_parts(
        meta: Meta,
        user_id: Id<User>,
        expires_at: DateTime<Utc>,
        revoked: bool,
        refresh_hash: String,
    ) -> Self {
        Self { meta, user_id, expires_at, revoked, refresh_hash }
    }
}

impl Entity for Session {
    const KIND: EntityKind = EntityKind::Session;
    const RESOURCE: Resource = Resource::Users;
    const AUDIT_REDACT: &'static [&'static str] = &["refresh_hash"];
    entity_meta!();

    fn index(&self, f: &mut Vec<(&'static str, FieldValue)>) {
        f.extend([
            ("user_id", self.user_id.into()),
            ("expires_at", self.expires_at.into()),
            ("revoked", self.revoked.into()),
        ]);
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.user_id.uuid()]
    }
}

/// Where sessions are kept. Implementations store and fetch; the rotation and reuse
/// rules stay in [`Sessions`]. Every implementation runs `session_store_suite!`.
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

/// A freshly issued refresh token with the session it belongs to.
#[derive(Clone, PartialEq)]
pub struct IssuedSession {
    /// The session.
    pub session: Session,
    /// The refresh token: shown to the client once, never stored.
    pub refresh_token: String,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSession").field("session", &self.session).field("refresh_token", &"<redacted>").finish()
    }
}

/// The sessions service: starts, rotates, checks and revokes sessions.
#[derive(Clone, Copy, Debug)]
pub struct Sessions<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The sessions service.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { crm: self }
    }
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CrmError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Splits a refresh token into tenant, session and secret; `None` for anything else.
fn parse_token(token: &str) -> Option<(TenantId, Id<Session>, &str)> {
    let mut parts = token.strip_prefix("crs_")?.split('_');
    let (tenant, session, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let shaped = tenant.len() == 32
        && session.len() == 32
        && secret.len() == 64
        && parts.next().is_none()
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    let tenant = uuid::Uuid::try_parse(tenant).ok()?;
    let session = uuid::Uuid::try_parse(session).ok()?;
    shaped.then_some((TenantId(tenant), Id::from_uuid(session), secret))
}

fn token_for(session: &Session, secret: &str) -> String {
    format!("crs_{}_{}_{secret}", session.meta.tenant_id.0.simple(), session.meta.id.simple())
}

impl Sessions<'_> {
    /// Starts a session for a signed-in user (never for an API key).
    pub async fn start(&self, p: &Principal) -> Result<IssuedSession> {
        if p.api_key_id().is_some() {
            return Err(CrmError::Forbidden("an API key cannot start a session".into()));
        }
        let now = self.crm.now();
        let secret = random_secret()?;
        let session = Session {
            meta: Meta::new(p.tenant_id(), now),
            user_id: p.user_id(),
            expires_at: now + self.crm.session_ttl,
            revoked: false,
            refresh_hash: hash_secret(&secret),
        };
        self.crm.sessions.insert(&session).await?;
        let refresh_token = token_for(&session, &secret);
        Ok(IssuedSession { session, refresh_token })
    }

    /// Exchanges a refresh token for a new one. Malformed, unknown, expired or revoked
    /// tokens are `Unauthenticated`; a token already used once revokes the session.
    pub async fn refresh(&self, token: &str) -> Result<IssuedSession> {
        let (tenant, id, secret) = parse_token(token).ok_or(CrmError::Unauthenticated)?;
        let before = self.crm.sessions.get(tenant, id).await?.ok_or(CrmError::Unauthenticated)?;
        if !before.is_active(self.crm.now()) {
            return Err(CrmError::Unauthenticated);
        }
        if before.refresh_hash != hash_secret(secret) {
            self.revoke(tenant, id).await?;
            return Err(CrmError::Unauthenticated);
        }
        let new_secret = random_secret()?;
        let mut after = before.clone();
        after.refresh_hash = hash_secret(&new_secret);
        after.meta.version = before.meta.version + 1;
        after.meta.updated_at = self.crm.now();
        match self.crm.sessions.replace(before.meta.version, &after).await {
            Ok(()) => {
                let refresh_token = token_for(&after, &new_secret);
                Ok(IssuedSession { session: after, refresh_token })
            }
            // Someone rotated the same token first: two holders of one token is reuse.
            Err(CrmError::Conflict { .. }) => {
                self.revoke(tenant, id).await?;
                Err(CrmError::Unauthenticated)
            }
            Err(e) => Err(e),
        }
    }

    /// The session if it is still active, else `Unauthenticated`.
    pub async fn active(&self, tenant: TenantId, id: Id<Session>) -> Result<Session> {
        match self.crm.sessions.get(tenant, id).await? {
            Some(session) if session.is_active(self.crm.now()) => Ok(session),
            _ => Err(CrmError::Unauthenticated),
        }
    }

    /// Revokes a session for good (idempotent; unknown ids are ignored).
    pub async fn revoke(&self, tenant: TenantId, id: Id<Session>) -> Result<()> {
        for _ in 0..16 {
            let Some(before) = self.crm.sessions.get(tenant, id).await? else {
                return Ok(());
            };
            if before.revoked {
                return Ok(());
            }
            let mut after = Session { revoked: true, ..before.clone() };
            after.meta.version = before.meta.version + 1;
            after.meta.updated_at = self.crm.now();
            match self.crm.sessions.replace(before.meta.version, &after).await {
                Err(CrmError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(CrmError::Conflict { kind: EntityKind::Session, id: id.uuid() })
    }

    /// Deletes a tenant's expired sessions (they can no longer be refreshed, nor their
    /// reuse detected), for the server's housekeeping; returns how many went.
    pub async fn purge_expired(&self, tenant: TenantId) -> Result<u64> {
        const CHUNK: usize = 500;
        let now = self.crm.now();
        let mut removed = 0;
        loop {
            let round = self.crm.sessions.remove_expired(tenant, now, CHUNK).await?;
            removed += round;
            if round < CHUNK as u64 {
                return Ok(removed);
            }
        }
    }

    /// Revokes the session `p` acts in, if it belongs to `p`.
    pub async fn sign_out(&self, p: &Principal, id: Id<Session>) -> Result<()> {
        match self.crm.sessions.get(p.tenant_id(), id).await? {
            Some(session) if session.user_id == p.user_id() => self.revoke(p.tenant_id(), id).await,
            _ => Err(CrmError::NotFound { kind: EntityKind::Session, id: id.uuid() }),
        }
    }
}

/// How long a session lives when nothing else is configured.
pub const DEFAULT_SESSION_TTL: Duration = Duration::days(7);
