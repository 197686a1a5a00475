//! Sign-in sessions: a refresh token bound to a session, rotated on every use.
//!
//! The rules live here, the storing behind [`SessionStore`](crate::session_store::SessionStore): a refresh token works
//! once; presenting one that was already rotated away (a stolen copy, or the original
//! after a thief used it) revokes the whole session. Only the SHA-256 hash of the
//! current token is stored.
//!
//! Token format: `crs_<tenant id, 32 hex>_<session id, 32 hex>_<secret, 64 hex>`.

use sha2::{Digest, Sha256};

use crate::{
    authz::Principal,
    crm::Crm,
    error::{CrmError, Result},
    id::{Id, Meta, TenantId},
    session_store::Session,
    storage::EntityKind,
};

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
            user_id: p.user_uuid(),
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
            Some(session) if session.user_id == p.user_uuid() => self.revoke(p.tenant_id(), id).await,
            _ => Err(CrmError::NotFound { kind: EntityKind::Session, id: id.uuid() }),
        }
    }
}
