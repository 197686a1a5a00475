//! What every handler shares: the CRM, token keys, limits and cookie policy, and the
//! one way a request's credentials become a [`Caller`].

use std::sync::Arc;

use crm_core::{
    Crm, Id, TenantId,
    rate_limit::{RateDecision, RateLimiter},
};

use crate::{
    auth::{Caller, CookiePolicy, Credential, TokenKeys},
    error::ApiError,
    input::Versions,
    limits::Limits,
    live::LiveHub,
    request,
};

/// The server's shared state.
#[derive(Debug)]
pub struct AppCtx {
    /// The CRM.
    pub crm: Crm,
    /// Access-token keys.
    pub tokens: TokenKeys,
    /// Rate limits.
    pub limits: Limits,
    /// How session cookies are set.
    pub cookies: CookiePolicy,
    /// The tenant a sign-in without `tenant_id` goes to (the one the server bootstrapped).
    pub default_tenant: Option<TenantId>,
    /// Whether updates, deletes and state changes must send `If-Match`.
    pub versions: Versions,
    /// Where users reach the CRM, for links in emails (no trailing slash).
    pub public_url: String,
    /// The live event stream's fan-out.
    pub live: Arc<LiveHub>,
}

/// Counts one request against `limiter`; 429 when over. The decision reaches the
/// response's `RateLimit-*` headers when it is the tightest of the request.
pub async fn limit(limiter: &dyn RateLimiter, key: &str) -> Result<(), ApiError> {
    obey(limiter.check(key).await?)
}

/// Records a limit's decision for the response's `RateLimit-*` headers; 429 when it
/// refuses.
pub fn obey(decision: RateDecision) -> Result<(), ApiError> {
    request::record_limit(decision);
    if decision.allowed { Ok(()) } else { Err(ApiError::too_many_requests(decision.retry_after_secs())) }
}

impl AppCtx {
    /// Authenticates a request's credentials and counts it against the caller's limit
    /// (run by the [`crate::auth::Auth`] extractor, before anything else is parsed).
    pub async fn caller(&self, credential: Credential<'_>) -> Result<Caller, ApiError> {
        let caller = match credential {
            Credential::None => return Err(ApiError::unauthorized()),
            Credential::ApiKey(token) => {
                Caller { principal: self.crm.api_keys().authenticate(token).await?, session: None }
            }
            Credential::AccessToken(token) => {
                let claims = self.tokens.verify(token).ok_or_else(ApiError::unauthorized)?;
                let session = Id::from_uuid(claims.sid);
                // Every request reads the session: a revoked one's tokens stop at once.
                let principal = self.crm.sessions().authenticate(TenantId(claims.tid), session, claims.sub).await?;
                Caller { principal, session: Some(session) }
            }
        };
        request::set_current_user(caller.principal.user_id().to_string());
        let key = match caller.principal.api_key_id() {
            Some(key) => format!("key:{key}"),
            None => format!("user:{}", caller.principal.user_id()),
        };
        limit(self.limits.per_user.as_ref(), &key).await?;
        Ok(caller)
    }
}
