//! The forgotten-password flow: a user who cannot sign in asks for a reset link by
//! email, and sets a new password with the token it carries.
//!
//! - The request answers the same whether the email is known or not (the edge also
//!   pads its answer to the same time), so it tells nobody who has an account.
//! - The token is `crp_<tenant>_<user>_<secret>`; only the secret's SHA-256 is stored,
//!   on the user's record, with its expiry ([`RESET_TTL`]). A new request replaces it, so
//!   only the latest link works; using it clears it, so it works once.
//! - The reset sets the password by the password policy, clears the token in the same
//!   commit, then revokes every session of the user (sessions live in the
//!   [`SessionStore`](crate::session_store::SessionStore), which may be another system
//!   than the storage, so that is a second step, as for every password reset).
//! - Every refusal of a token (malformed, unknown, used, superseded, expired, user
//!   deactivated) is the one validation error on `token`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    sessions::{RevokeReason, hash_secret, random_secret},
    users::{User, Users, validate_password},
};
use crate::{
    authz::Principal,
    crm::retry_on_conflict,
    error::{CrmError, Result, Validator},
    id::{Id, TenantId},
    mail::Email,
    storage::EntityKind,
};

/// How long a reset link works.
pub const RESET_TTL: chrono::Duration = chrono::Duration::minutes(30);

/// What every refused token gets, whatever the reason.
const INVALID_TOKEN: &str = "is invalid or expired: ask for a new password reset link";

/// A reset asked for and not used yet: the hash of its token's secret and its expiry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingReset {
    secret_hash: String,
    expires_at: DateTime<Utc>,
}

impl fmt::Debug for PendingReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingReset").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl Users<'_> {
    /// Starts a password reset for the active user with `email` in `tenant`: stores a
    /// new token (the previous one stops working) and enqueues the email with the link
    /// `<link_base>/reset-password?token=…`. An unknown or inactive email does nothing
    /// and answers the same.
    pub async fn forgot_password(&self, tenant: TenantId, email: &str, link_base: &str) -> Result<()> {
        let Some((user, token)) = retry_on_conflict(&[EntityKind::User], || self.store_reset(tenant, email)).await?
        else {
            return Ok(());
        };
        let link = format!("{}/reset-password?token={token}", link_base.trim_end_matches('/'));
        let paragraphs = [
            format!("Hello {},", user.first_name),
            format!(
                "someone asked to reset the password of your account. To choose a new one, open {link} within {} minutes.",
                RESET_TTL.num_minutes()
            ),
            "If it was not you, ignore this email: your password stays as it is.".to_owned(),
        ];
        let message = Email::plain(user.email, "Reset your password", &paragraphs);
        self.crm.jobs().enqueue(message.job()?).await.map(drop)
    }

    async fn store_reset(&self, tenant: TenantId, email: &str) -> Result<Option<(User, String)>> {
        let Some(before) = self.find_by_email(tenant, email).await?.filter(|u| u.active) else { return Ok(None) };
        let secret = random_secret()?;
        let mut after = before.clone();
        let principal = Principal::for_user(&before);
        let mut tx = self.crm.tx(&principal);
        after.reset = Some(PendingReset { secret_hash: hash_secret(&secret), expires_at: tx.now() + RESET_TTL });
        tx.update_as("password_reset_requested", &before, &mut after)?;
        tx.commit().await?;
        let token = format!("crp_{}_{}_{secret}", tenant.0.simple(), before.meta.id.simple());
        Ok(Some((after, token)))
    }

    /// Sets the password of the user a reset `token` belongs to, once: the token is
    /// cleared in the same commit, then every session of the user is revoked.
    pub async fn reset_password_with_token(&self, token: &str, new_password: &str) -> Result<()> {
        let mut v = Validator::new();
        validate_password(&mut v, "new_password", new_password);
        let parsed = parse_token(token);
        v.check(parsed.is_some(), "token", INVALID_TOKEN);
        v.finish()?;
        let Some((tenant, id, secret)) = parsed else { return Err(invalid_token()) };
        let before: User = match self.crm.fetch(tenant, id).await {
            Err(CrmError::NotFound { .. }) => return Err(invalid_token()),
            found => found?,
        };
        let now = self.crm.now();
        let pending = before.reset.as_ref().filter(|r| r.expires_at > now && r.secret_hash == hash_secret(secret));
        if !before.active || pending.is_none() {
            return Err(invalid_token());
        }
        let mut after = before.clone();
        after.password_hash = self.crm.hash_password(new_password).await?;
        after.reset = None;
        let principal = Principal::for_user(&before);
        let mut tx = self.crm.tx(&principal);
        tx.update_as("password_reset", &before, &mut after)?;
        // A concurrent use of the same token won the race: this one is a second use.
        tx.commit().await.map_err(|e| if matches!(e, CrmError::Conflict { .. }) { invalid_token() } else { e })?;
        tracing::info!(target: "crm_core::security", tenant = %tenant.0, user = %id, "user.password_reset_by_token");
        let sessions = self.crm.sessions();
        sessions.revoke_all_of_user(&principal, id.uuid(), None, RevokeReason::PasswordReset).await.map(drop)
    }
}

fn invalid_token() -> CrmError {
    CrmError::invalid("token", INVALID_TOKEN)
}

/// Splits a reset token into tenant, user and secret; `None` for anything else.
fn parse_token(token: &str) -> Option<(TenantId, Id<User>, &str)> {
    let mut parts = token.strip_prefix("crp_")?.split('_');
    let (tenant, user, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let shaped = tenant.len() == 32 && user.len() == 32 && secret.len() == 64 && parts.next().is_none();
    let (tenant, user) = (Uuid::try_parse(tenant).ok()?, Uuid::try_parse(user).ok()?);
    shaped.then_some((TenantId(tenant), Id::from_uuid(user), secret))
}
