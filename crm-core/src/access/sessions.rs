//! Sign-in sessions: a refresh token bound to a session, rotated on every use.
//!
//! The rules live here, the storing behind [`SessionStore`](crate::session_store::SessionStore):
//!
//! 1. A refresh token works once: using it rotates it. The next token is derived from
//!    the presented one and a random nonce kept with the session, and only hashes are
//!    stored, so the store alone can mint no token.
//! 2. Within [`REFRESH_GRACE`] of a rotation, the token just rotated away is answered
//!    with the same new token (derived again from it and the kept nonce): two tabs or a
//!    retry after a lost answer refresh at once, and both get the pair.
//! 3. Any other token that was genuinely issued for the session and rotated away (one
//!    of the last [`RETIRED_TOKENS_KEPT`]) is reuse: a stolen copy, or the original
//!    after a thief used it. It revokes the whole session.
//! 4. A token naming the session with a secret it never had is a guess: refused,
//!    and the session is left alone (else knowing a session id would be enough to end it).
//!
//! Revocations (sign-out, sign-out everywhere, a password or email change, an admin's
//! password reset) and reuse are security events: audited and logged.
//!
//! Token format: `crs_<tenant id, 32 hex>_<session id, 32 hex>_<secret, 64 hex>`.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    access::security::{SecurityEvent, Severity, printable},
    authz::Principal,
    crm::Crm,
    error::{CrmError, Result},
    id::{Id, Meta, TenantId},
    principal_cache::Credential,
    session_store::Session,
    storage::EntityKind,
};

/// How long after a rotation the token just rotated away still gets the new token
/// instead of revoking the session (concurrent refreshes, a retried request).
pub const REFRESH_GRACE: Duration = Duration::seconds(30);

/// How many rotated-away refresh tokens a session remembers (as hashes) to recognise
/// their reuse; an older one is refused like a guess, without revoking.
pub const RETIRED_TOKENS_KEPT: usize = 16;

/// How often a refresh reads again after a concurrent change to its session.
const ROTATION_RETRIES: usize = 16;

/// The longest `User-Agent` kept with a session, in characters.
const MAX_USER_AGENT_CHARS: usize = 512;

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

/// What the edge knows of the client signing in or refreshing, kept with the session
/// so its user can recognise it. Edges pass what they have; the session keeps it
/// printable and bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client's IP address, as the edge determined it.
    pub ip: Option<String>,
}

impl ClientInfo {
    fn stamp(&self, session: &mut Session, now: DateTime<Utc>) {
        session.last_used_at = Some(now);
        session.user_agent =
            self.user_agent.as_deref().map(|ua| printable(ua).chars().take(MAX_USER_AGENT_CHARS).collect());
        session.ip = self.ip.as_deref().map(printable);
    }
}

/// One of a user's active sessions, as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ActiveSession {
    /// The session id (`DELETE /auth/sessions/{id}` revokes it).
    pub id: Uuid,
    /// When it was signed in.
    pub created_at: DateTime<Utc>,
    /// When it was last signed in or refreshed.
    pub last_used_at: DateTime<Utc>,
    /// When it ends (refreshing does not extend it).
    pub expires_at: DateTime<Utc>,
    /// The client's `User-Agent` at sign-in or the last refresh.
    pub user_agent: Option<String>,
    /// The client's IP address at sign-in or the last refresh.
    pub ip: Option<String>,
    /// Whether this is the session the request was made in.
    pub current: bool,
}

/// Why sessions were revoked, as the audit entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RevokeReason {
    /// Its user signed out of it.
    SignOut,
    /// Its user signed out of every session.
    SignOutEverywhere,
    /// Its user revoked it from the list of sessions.
    RevokedByOwner,
    /// Its user changed the password.
    PasswordChanged,
    /// The user's email changed.
    EmailChanged,
    /// An admin reset the user's password.
    PasswordReset,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::SignOut => "sign_out",
            Self::SignOutEverywhere => "sign_out_everywhere",
            Self::RevokedByOwner => "revoked_by_owner",
            Self::PasswordChanged => "password_changed",
            Self::EmailChanged => "email_changed",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// What a presented refresh token is to a session.
enum Presented {
    /// Its current token.
    Current,
    /// The token the current one replaced.
    JustRotated,
    /// An older token it had.
    Retired,
    /// No token it ever had (as far as it remembers).
    Unknown,
}

fn classify(session: &Session, hash: &str) -> Presented {
    match session.retired_hashes.iter().position(|h| h == hash) {
        _ if session.refresh_hash == hash => Presented::Current,
        Some(0) => Presented::JustRotated,
        Some(_) => Presented::Retired,
        None => Presented::Unknown,
    }
}

/// The sessions service: starts, rotates, checks, lists and revokes sessions.
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

pub(super) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(super) fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CrmError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The secret that replaces `previous` in a rotation with `nonce`.
fn next_secret(previous: &str, nonce: &str) -> String {
    let mut digest = Sha256::new();
    for part in ["crm-refresh-rotation", previous, nonce] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    hex::encode(digest.finalize())
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

fn refuse_api_keys(p: &Principal) -> Result<()> {
    match p.api_key_uuid() {
        Some(_) => Err(CrmError::Forbidden("an API key cannot manage sign-in sessions".into())),
        None => Ok(()),
    }
}

impl Sessions<'_> {
    /// Starts a session for a signed-in user (never for an API key).
    pub async fn start(&self, p: &Principal, client: &ClientInfo) -> Result<IssuedSession> {
        if p.api_key_uuid().is_some() {
            return Err(CrmError::Forbidden("an API key cannot start a session".into()));
        }
        let now = self.crm.now();
        let secret = random_secret()?;
        let mut session = Session {
            meta: Meta::new(p.tenant_id(), now),
            user_id: p.user_uuid(),
            expires_at: now + self.crm.session_ttl,
            revoked: false,
            last_used_at: None,
            user_agent: None,
            ip: None,
            refresh_hash: hash_secret(&secret),
            retired_hashes: Vec::new(),
            rotated_at: None,
            rotation_nonce: None,
        };
        client.stamp(&mut session, now);
        self.crm.sessions.insert(&session).await?;
        let refresh_token = token_for(&session, &secret);
        Ok(IssuedSession { session, refresh_token })
    }

    /// Exchanges a refresh token for a new one (the module's rules 1 to 4). Malformed,
    /// unknown, expired or revoked tokens are `Unauthenticated`; a token already used
    /// revokes the session, unless it was rotated away less than [`REFRESH_GRACE`] ago.
    pub async fn refresh(&self, token: &str, client: &ClientInfo) -> Result<IssuedSession> {
        let (tenant, id, secret) = parse_token(token).ok_or(CrmError::Unauthenticated)?;
        let presented = hash_secret(secret);
        for _ in 0..ROTATION_RETRIES {
            let before = self.active(tenant, id).await?;
            let now = self.crm.now();
            match classify(&before, &presented) {
                Presented::Current => match self.rotate(&before, secret, client, now).await {
                    // A concurrent refresh rotated it first: read again, as the grace case.
                    Err(CrmError::Conflict { .. }) => continue,
                    other => return other,
                },
                Presented::JustRotated if before.rotated_at.is_some_and(|at| now - at <= REFRESH_GRACE) => {
                    return rotated_pair(before, secret);
                }
                Presented::JustRotated | Presented::Retired => {
                    self.reused(&before).await?;
                    return Err(CrmError::Unauthenticated);
                }
                Presented::Unknown => {
                    tracing::warn!(
                        target: "crm_core::security", tenant = %tenant.0, session = %id,
                        "session.refresh_token_invalid: a refresh token with a wrong secret; the session stays"
                    );
                    return Err(CrmError::Unauthenticated);
                }
            }
        }
        Err(CrmError::Conflict { kind: EntityKind::Session, id: id.uuid() })
    }

    async fn rotate(
        &self,
        before: &Session,
        secret: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<IssuedSession> {
        let nonce = random_secret()?;
        let next = next_secret(secret, &nonce);
        let mut after = before.clone();
        after.retired_hashes = std::iter::once(&before.refresh_hash)
            .chain(&before.retired_hashes)
            .take(RETIRED_TOKENS_KEPT)
            .cloned()
            .collect();
        after.refresh_hash = hash_secret(&next);
        after.rotated_at = Some(now);
        after.rotation_nonce = Some(nonce);
        client.stamp(&mut after, now);
        after.meta.version = before.meta.version + 1;
        after.meta.updated_at = now;
        self.crm.sessions.replace(before.meta.version, &after).await?;
        let refresh_token = token_for(&after, &next);
        Ok(IssuedSession { session: after, refresh_token })
    }

    /// Revokes a session whose rotated-away token came back, and says so.
    async fn reused(&self, session: &Session) -> Result<()> {
        let (tenant, id) = (session.meta.tenant_id, session.meta.id);
        self.revoke_session(tenant, Id::from_uuid(id)).await?;
        self.crm
            .record_security_event(SecurityEvent {
                tenant,
                actor: None,
                api_key: None,
                action: "session.refresh_token_reused",
                entity_kind: EntityKind::Session,
                entity_id: id,
                details: json!({ "reason": "refresh_token_reused", "user_id": session.user_id, "revoked": true }),
                severity: Severity::Warn,
            })
            .await
    }

    /// The session if it is still active, else `Unauthenticated`.
    pub async fn active(&self, tenant: TenantId, id: Id<Session>) -> Result<Session> {
        match self.crm.sessions.get(tenant, id).await? {
            Some(session) if session.is_active(self.crm.now()) => Ok(session),
            _ => Err(CrmError::Unauthenticated),
        }
    }

    /// The principal of an access token naming `user` in session `id`: the session must
    /// be active (a revoked session's tokens stop at once) and the user's, and the user
    /// active. The principal knows its session.
    ///
    /// A principal read less than the CRM's principal-cache TTL ago is used again
    /// without reading (see [`crate::principal_cache`] for the bound on staleness).
    pub async fn authenticate(&self, tenant: TenantId, id: Id<Session>, user: Uuid) -> Result<Principal> {
        let credential = Credential::Session(tenant, id.uuid());
        let cache = &self.crm.principals;
        if let Some(principal) = cache.get(&credential, self.crm.now()).filter(|p| p.user_uuid() == user) {
            return Ok(principal);
        }
        let generation = cache.generation();
        let session = self.active(tenant, id).await?;
        if session.user_id != user {
            return Err(CrmError::Unauthenticated);
        }
        let principal = self.crm.users().principal(tenant, Id::from_uuid(user)).await?.in_session(id.uuid());
        cache.offer(generation, credential, &principal, self.crm.now(), Some(session.expires_at));
        Ok(principal)
    }

    /// Revokes a session for good; whether this call revoked it (unknown ids and
    /// revoked sessions are left as they are).
    async fn revoke_session(&self, tenant: TenantId, id: Id<Session>) -> Result<bool> {
        for _ in 0..ROTATION_RETRIES {
            let Some(before) = self.crm.sessions.get(tenant, id).await? else {
                return Ok(false);
            };
            if before.revoked {
                return Ok(false);
            }
            let mut after = Session { revoked: true, ..before.clone() };
            after.meta.version = before.meta.version + 1;
            after.meta.updated_at = self.crm.now();
            match self.crm.sessions.replace(before.meta.version, &after).await {
                Err(CrmError::Conflict { .. }) => continue,
                other => {
                    self.crm.principals.invalidate(|p| p.session_uuid() == Some(id.uuid()));
                    return other.map(|()| true);
                }
            }
        }
        Err(CrmError::Conflict { kind: EntityKind::Session, id: id.uuid() })
    }

    /// Revokes `session` on behalf of `by`, auditing it when this call revoked it.
    async fn revoke_audited(&self, by: &Principal, session: &Session, reason: RevokeReason) -> Result<bool> {
        let (tenant, id) = (session.meta.tenant_id, session.meta.id);
        if !self.revoke_session(tenant, Id::from_uuid(id)).await? {
            return Ok(false);
        }
        self.crm
            .record_security_event(SecurityEvent {
                tenant,
                actor: Some(by.user_uuid()),
                api_key: by.api_key_uuid(),
                action: "session.revoked",
                entity_kind: EntityKind::Session,
                entity_id: id,
                details: json!({ "reason": reason.as_str(), "user_id": session.user_id }),
                severity: Severity::Info,
            })
            .await?;
        Ok(true)
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

    /// One of `p`'s own sessions; another user's (or an unknown id) is `NotFound`.
    async fn own(&self, p: &Principal, id: Id<Session>) -> Result<Session> {
        match self.crm.sessions.get(p.tenant_id(), id).await? {
            Some(session) if session.user_id == p.user_uuid() => Ok(session),
            _ => Err(CrmError::NotFound { kind: EntityKind::Session, id: id.uuid() }),
        }
    }

    /// Signs `p` out of its session `id` (revokes it, if it belongs to `p`).
    pub async fn sign_out(&self, p: &Principal, id: Id<Session>) -> Result<()> {
        let session = self.own(p, id).await?;
        self.revoke_audited(p, &session, RevokeReason::SignOut).await.map(drop)
    }

    /// Revokes one of `p`'s own sessions, the current one or another; another user's
    /// session is `NotFound`.
    pub async fn revoke_own(&self, p: &Principal, id: Id<Session>) -> Result<()> {
        refuse_api_keys(p)?;
        let session = self.own(p, id).await?;
        self.revoke_audited(p, &session, RevokeReason::RevokedByOwner).await.map(drop)
    }

    /// Signs `p` out everywhere: revokes every session of its user, the current one
    /// included; returns how many were active.
    pub async fn sign_out_everywhere(&self, p: &Principal) -> Result<u64> {
        refuse_api_keys(p)?;
        self.revoke_all_of_user(p, p.user_uuid(), None, RevokeReason::SignOutEverywhere).await
    }

    /// Revokes every active session of `user` but `keep`, on behalf of `by`; returns
    /// how many it revoked.
    pub(crate) async fn revoke_all_of_user(
        &self,
        by: &Principal,
        user: Uuid,
        keep: Option<Uuid>,
        reason: RevokeReason,
    ) -> Result<u64> {
        let now = self.crm.now();
        let mut revoked = 0;
        for session in self.crm.sessions.list_for_user(by.tenant_id(), user).await? {
            if session.is_active(now) && Some(session.meta.id) != keep {
                revoked += u64::from(self.revoke_audited(by, &session, reason).await?);
            }
        }
        Ok(revoked)
    }

    /// `p`'s own active sessions, the most recently used first, marking the one `p`
    /// acts in.
    pub async fn list(&self, p: &Principal) -> Result<Vec<ActiveSession>> {
        refuse_api_keys(p)?;
        let now = self.crm.now();
        let mut active: Vec<ActiveSession> = self
            .crm
            .sessions
            .list_for_user(p.tenant_id(), p.user_uuid())
            .await?
            .into_iter()
            .filter(|s| s.is_active(now))
            .map(|s| ActiveSession {
                id: s.meta.id,
                created_at: s.meta.created_at,
                last_used_at: s.last_used_at.unwrap_or(s.meta.created_at),
                expires_at: s.expires_at,
                current: p.session_uuid() == Some(s.meta.id),
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect();
        active.sort_by(|a, b| b.last_used_at.cmp(&a.last_used_at).then(b.id.cmp(&a.id)));
        Ok(active)
    }
}

/// The pair a refresh with the just-rotated token `secret` already produced.
fn rotated_pair(session: Session, secret: &str) -> Result<IssuedSession> {
    let next = session.rotation_nonce.as_deref().map(|nonce| next_secret(secret, nonce));
    match next {
        Some(next) if hash_secret(&next) == session.refresh_hash => {
            let refresh_token = token_for(&session, &next);
            Ok(IssuedSession { session, refresh_token })
        }
        _ => Err(CrmError::Unauthenticated),
    }
}
