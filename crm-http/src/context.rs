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
    metrics, request,
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
    let decision = limiter.check(key).await?;
    metrics::rate_limit(key, decision.allowed);
    obey(decision)
}

/// Records a limit's decision for the response's `RateLimit-*` headers; 429 when it
/// refuses.
pub fn obey(decision: RateDecision) -> Result<(), ApiError> {
    request::record_limit(decision);
    if decision.allowed { Ok(()) } else { Err(ApiError::too_many_requests(decision.retry_after_secs())) }
}

impl AppCtx {
    /// The caller of an access token: its session must be active (the core's principal
    /// cache bounds how long another server's revocation takes to apply here).
    async fn session_caller(&self, token: &str) -> Result<Caller, ApiError> {
        let claims = self.tokens.verify(token).ok_or_else(ApiError::unauthorized)?;
        let session = Id::from_uuid(claims.sid);
        let principal = self.crm.sessions().authenticate(TenantId(claims.tid), session, claims.sub).await?;
        Ok(Caller { principal, session: Some(session) })
    }

    /// Authenticates a request's credentials and counts it against the caller's limit
    /// (run by the [`crate::auth::Auth`] extractor, before anything else is parsed).
    pub async fn caller(&self, credential: Credential<'_>) -> Result<Caller, ApiError> {
        let (kind, caller) = match credential {
            Credential::None => ("none", Err(ApiError::unauthorized())),
            Credential::ApiKey(token) => {
                let principal = self.crm.api_keys().authenticate(token).await;
                ("api_key", principal.map(|principal| Caller { principal, session: None }).map_err(ApiError::from))
            }
            Credential::AccessToken(token) => ("session", self.session_caller(token).await),
        };
        metrics::authentication(kind, caller.is_ok());
        let caller = caller?;
        request::set_current_user(caller.principal.user_id().to_string());
        let key = match caller.principal.api_key_id() {
            Some(key) => format!("key:{key}"),
            None => format!("user:{}", caller.principal.user_id()),
        };
        limit(self.limits.per_user.as_ref(), &key).await?;
        Ok(caller)
    }
}
