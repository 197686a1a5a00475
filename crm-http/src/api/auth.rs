//! `/auth`: sign-in, token refresh with rotation, sign-out (of one session or all), the
//! caller's sessions, the caller, and password change.

use std::sync::Arc;

use crm_core::{
    Id, TenantId,
    access::sessions::{ClientInfo, IssuedSession},
    rate_limit::sign_in::SignInAttempt,
};
use poem::{Request, http::header::USER_AGENT, web::Data, web::cookie::CookieJar};
use poem_openapi::{OpenApi, param::Path};
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    api::{
        ApiTags,
        results::{
            CurrentCaller, PasswordChanged, ResetRequested, SessionList, SessionRevoked, SessionTokens, SignedIn,
            SignedOut, SignedOutEverywhere,
        },
        schema::Body,
    },
    auth::{ACCESS_TTL, Auth},
    context::{AppCtx, obey},
    edge,
    error::{ApiError, BodilessError},
    output::{self, Done, Shown},
    request,
};

// The bodies are read like every other (`Body::decode`): a missing, unknown or
// wrong-typed field is a 422 naming it, never coerced.

/// Sign-in input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// The tenant; default: the tenant this server bootstrapped.
    tenant_id: Option<Uuid>,
    /// Sign-in email.
    email: String,
    /// Password.
    #[schemars(extend("writeOnly" = true))]
    password: String,
}

/// Refresh input: the refresh token, unless the refresh cookie carries it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token from sign-in or the previous refresh.
    #[serde(default)]
    #[schemars(extend("writeOnly" = true))]
    refresh_token: Option<String>,
}

/// Password change input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    /// The current password.
    #[schemars(extend("writeOnly" = true))]
    current_password: String,
    /// The new password (8 to 1024 characters).
    #[schemars(extend("writeOnly" = true))]
    new_password: String,
}

/// Password-reset request input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgotPasswordRequest {
    /// The tenant; default: the tenant this server bootstrapped.
    tenant_id: Option<Uuid>,
    /// The account's sign-in email.
    email: String,
}

/// Password reset input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordRequest {
    /// The token from the reset email's link.
    #[schemars(extend("writeOnly" = true))]
    token: String,
    /// The new password (8 to 1024 characters).
    #[schemars(extend("writeOnly" = true))]
    new_password: String,
}

/// `/auth` operations.
pub(crate) struct AuthApi;

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Signs in; returns an access token (15 minutes) and a refresh token (7 days), also
    /// set as HttpOnly cookies. An unknown email and a wrong password get the same 401.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        req: &Request,
        cookies: &CookieJar,
        body: Body<LoginRequest>,
    ) -> Result<Done<SignedIn>, ApiError> {
        let arrived = std::time::Instant::now();
        let body: LoginRequest = body.decode()?;
        let tenant = body.tenant_id.map(TenantId).or(ctx.default_tenant);
        let tenant = tenant.ok_or_else(|| ApiError::invalid("tenant_id", "is required on this server"))?;
        let attempt = SignInAttempt::new(tenant, &body.email, edge::client_ip(req));
        obey(ctx.limits.sign_in.admit(&attempt).await?)?;
        let outcome = ctx.crm.users().authenticate(tenant, &body.email, &body.password).await;
        if let Err(e) = ctx.limits.sign_in.settle(&attempt, &outcome).await {
            // The attempt stays charged as a failure: the safe side.
            tracing::warn!(error = %e, "settling a sign-in attempt failed");
        }
        if outcome.is_err() {
            tokio::time::sleep(ctx.limits.sign_in.policy().hold_refusal(arrived.elapsed())).await;
        }
        let (user, principal) = outcome?;
        request::set_current_user(user.meta.id.to_string());
        let issued = ctx.crm.sessions().start(&principal, &client_of(req)).await?;
        let tokens = sign_in(&ctx, &issued, cookies)?;
        output::done(&SignedIn { tokens, user: Shown::of(&user)? })
    }

    /// Exchanges a refresh token (body or cookie) for new tokens. Each refresh token
    /// works once: presenting a used one revokes the whole session, except within 30
    /// seconds of its rotation, when it gets the same new refresh token again (two tabs
    /// or a retry refreshing at once). A token with a wrong secret is refused and the
    /// session left alone.
    #[oai(path = "/refresh", method = "post", operation_id = "refreshToken")]
    async fn refresh(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        req: &Request,
        cookies: &CookieJar,
        body: Body<RefreshRequest>,
    ) -> Result<Done<SessionTokens>, ApiError> {
        let body: RefreshRequest = body.decode()?;
        let token =
            body.refresh_token.or_else(|| cookies.get(ctx.cookies.refresh_name()).map(|c| c.value_str().to_owned()));
        let token = token.ok_or_else(ApiError::unauthorized)?;
        let issued = ctx.crm.sessions().refresh(&token, &client_of(req)).await?;
        request::set_current_user(issued.session.user_id.to_string());
        let tenant = issued.session.meta.tenant_id;
        // The user may have been deactivated since signing in.
        ctx.crm.users().principal(tenant, Id::from_uuid(issued.session.user_id)).await?;
        output::done(&sign_in(&ctx, &issued, cookies)?)
    }

    /// Signs out: revokes the session and clears the cookies.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        cookies: &CookieJar,
    ) -> Result<Done<SignedOut>, BodilessError> {
        let caller = auth.into_caller();
        let session = caller.session.ok_or_else(|| ApiError::bad_request("API keys have no session to end"))?;
        ctx.crm.sessions().sign_out(&caller.principal, session).await?;
        clear(&ctx, cookies);
        Ok(output::done(&SignedOut { signed_out: true })?)
    }

    /// Signs out everywhere: revokes every session of the caller, this one included,
    /// and clears the cookies. Not for API keys (403).
    #[oai(path = "/logout-all", method = "post", operation_id = "logoutAll")]
    async fn logout_all(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        cookies: &CookieJar,
    ) -> Result<Done<SignedOutEverywhere>, BodilessError> {
        let caller = auth.into_caller();
        let revoked = ctx.crm.sessions().sign_out_everywhere(&caller.principal).await?;
        clear(&ctx, cookies);
        Ok(output::done(&SignedOutEverywhere { revoked })?)
    }

    /// The caller's active sessions: when each was signed in and last refreshed, from
    /// which user agent and IP, and which one is this request's. Not for API keys (403).
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn sessions(&self, ctx: Data<&Arc<AppCtx>>, auth: Auth) -> Result<Done<SessionList>, BodilessError> {
        let caller = auth.into_caller();
        let sessions = ctx.crm.sessions().list(&caller.principal).await?;
        Ok(output::done(&SessionList { sessions })?)
    }

    /// Revokes one of the caller's own sessions (its access tokens stop at once);
    /// another user's session id is 404. Revoking the current one also clears the
    /// cookies. Not for API keys (403).
    #[oai(path = "/sessions/:id", method = "delete", operation_id = "revokeSession")]
    async fn revoke_session(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        id: Path<Uuid>,
        cookies: &CookieJar,
    ) -> Result<Done<SessionRevoked>, BodilessError> {
        let caller = auth.into_caller();
        ctx.crm.sessions().revoke_own(&caller.principal, Id::from_uuid(id.0)).await?;
        if caller.session.is_some_and(|current| current.uuid() == id.0) {
            clear(&ctx, cookies);
        }
        Ok(output::done(&SessionRevoked { id: id.0, revoked: true })?)
    }

    /// The caller: its user record, role, tenant and the API key in use.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, ctx: Data<&Arc<AppCtx>>, auth: Auth) -> Result<Done<CurrentCaller>, BodilessError> {
        let caller = auth.into_caller();
        let p = &caller.principal;
        let user = ctx.crm.users().get(p, p.user_id()).await?;
        Ok(output::done(&CurrentCaller {
            user: Shown::of(&user)?,
            role: p.role(),
            tenant_id: p.tenant_id(),
            api_key_id: p.api_key_id(),
            session_id: caller.session,
        })?)
    }

    /// Asks for a password reset: if an active account has this email, it is sent a
    /// link that works once within 30 minutes (a new request replaces the link). The
    /// answer is the same, and as fast, for every email: the work happens after it.
    #[oai(path = "/forgot-password", method = "post", operation_id = "forgotPassword")]
    async fn forgot_password(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        body: Body<ForgotPasswordRequest>,
    ) -> Result<Done<ResetRequested>, ApiError> {
        let body: ForgotPasswordRequest = body.decode()?;
        let tenant = body.tenant_id.map(TenantId).or(ctx.default_tenant);
        let tenant = tenant.ok_or_else(|| ApiError::invalid("tenant_id", "is required on this server"))?;
        let (crm, link_base) = (ctx.crm.clone(), ctx.public_url.clone());
        // Detached, so that neither the answer's content nor its timing tells whether
        // the email has an account.
        tokio::spawn(async move {
            if let Err(e) = crm.users().forgot_password(tenant, &body.email, &link_base).await {
                tracing::warn!(error = %e, "a password reset request failed");
            }
        });
        output::done(&ResetRequested { accepted: true })
    }

    /// Sets a new password with the token of a reset email, once; every session of
    /// the account is revoked. A used, expired, superseded or unknown token is a 422
    /// on `token`.
    #[oai(path = "/reset-password", method = "post", operation_id = "resetPassword")]
    async fn reset_password(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        body: Body<ResetPasswordRequest>,
    ) -> Result<Done<PasswordChanged>, ApiError> {
        let body: ResetPasswordRequest = body.decode()?;
        ctx.crm.users().reset_password_with_token(&body.token, &body.new_password).await?;
        output::done(&PasswordChanged { changed: true })
    }

    /// Changes the caller's own password after checking the current one, and revokes
    /// every other session of the caller (this one stays).
    #[oai(path = "/change-password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        body: Body<ChangePasswordRequest>,
    ) -> Result<Done<PasswordChanged>, ApiError> {
        let caller = auth.into_caller();
        let input: ChangePasswordRequest = body.decode()?;
        ctx.crm.users().change_password(&caller.principal, &input.current_password, &input.new_password).await?;
        output::done(&PasswordChanged { changed: true })
    }
}

/// What the request tells of its client, for the session's record: the `User-Agent`
/// and the client IP as [`edge::client_ip`] determines it.
fn client_of(req: &Request) -> ClientInfo {
    ClientInfo {
        user_agent: req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        ip: edge::client_ip(req).map(|ip| ip.to_string()),
    }
}

/// Deletes the session cookies.
fn clear(ctx: &AppCtx, cookies: &CookieJar) {
    for cookie in ctx.cookies.cleared() {
        cookies.add(cookie);
    }
}

/// Issues the access token of a session, sets the cookies (access, refresh, CSRF), and
/// returns the tokens.
fn sign_in(ctx: &AppCtx, issued: &IssuedSession, cookies: &CookieJar) -> Result<SessionTokens, ApiError> {
    let now = ctx.crm.now();
    let access = ctx.tokens.issue(&issued.session)?;
    let csrf_token = ctx.tokens.csrf_token(issued.session.meta.id);
    cookies.add(ctx.cookies.access(access.clone()));
    cookies.add(ctx.cookies.refresh(issued.refresh_token.clone(), issued.session.expires_at, now));
    cookies.add(ctx.cookies.csrf(csrf_token.clone(), issued.session.expires_at, now));
    Ok(SessionTokens {
        access_token: access,
        token_type: "Bearer",
        expires_in: ACCESS_TTL.num_seconds(),
        refresh_token: issued.refresh_token.clone(),
        refresh_expires_at: issued.session.expires_at,
        session_id: issued.session.meta.id,
        csrf_token,
    })
}
