//! What operations answer besides records and pages: each a type whose JSON Schema is
//! the `data` of the operation's response in the spec, and whose serialization is that
//! `data`, so the two cannot drift apart.

use chrono::{DateTime, Utc};
use crm_core::{
    Id, TenantId, access::api_keys::ApiKey, access::sessions::ActiveSession, access::users::User, authz::Role,
    customers::companies::Company, customers::contacts::Contact, customers::deals::Deal, customers::leads::Lead,
    sales::invoices::Invoice, sales::quotes::Quote, session_store::Session, webhooks::endpoints::WebhookEndpoint,
};
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

use crate::output::Shown;

/// What this API is and where its spec and docs are.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ApiInfo {
    /// `crm-rs`.
    pub name: &'static str,
    /// The API's version.
    pub version: &'static str,
    /// Where the OpenAPI spec is.
    pub openapi: &'static str,
    /// Where the interactive docs are.
    pub docs: &'static str,
}

/// The tokens of a session, also set as HttpOnly cookies.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionTokens {
    /// The access token (a JWT), sent as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token stays valid.
    pub expires_in: i64,
    /// The refresh token; each works once (presenting a used one revokes the session).
    pub refresh_token: String,
    /// When the refresh token, and the session, expire.
    pub refresh_expires_at: DateTime<Utc>,
    /// The session, as `GET /auth/me` names it.
    pub session_id: Uuid,
    /// The session's CSRF token, also set as the readable `__Host-crm_csrf` cookie: a
    /// browser app sends it as `X-CSRF-Token` on every write made with the cookies.
    pub csrf_token: String,
}

/// A new session and the user it signed in.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SignedIn {
    /// The session's tokens.
    #[serde(flatten)]
    pub tokens: SessionTokens,
    /// The user.
    pub user: Shown<User>,
}

/// Who is calling.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CurrentCaller {
    /// The user (for an API key: its owner).
    pub user: Shown<User>,
    /// The user's role.
    pub role: Role,
    /// The tenant the caller acts in.
    pub tenant_id: TenantId,
    /// The API key in use; `null` for a signed-in session.
    pub api_key_id: Option<Id<ApiKey>>,
    /// The session of an access token; `null` for an API key.
    pub session_id: Option<Id<Session>>,
}

/// The session is over.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SignedOut {
    /// Always `true`.
    pub signed_out: bool,
}

/// Every session of the caller is over.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SignedOutEverywhere {
    /// How many sessions were active and are now revoked (the current one included).
    pub revoked: u64,
}

/// The caller's active sessions.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionList {
    /// The most recently used first; `current` marks the one of this request.
    pub sessions: Vec<ActiveSession>,
}

/// A session was revoked.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionRevoked {
    /// The session's id.
    pub id: Uuid,
    /// Always `true`.
    pub revoked: bool,
}

/// A user's password was set by an admin.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PasswordReset {
    /// Always `true`: every session of the user was revoked too.
    pub reset: bool,
}

/// A password reset was asked for (the answer is the same whether the email has an
/// account or not).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ResetRequested {
    /// Always `true`.
    pub accepted: bool,
}

/// The password was changed.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PasswordChanged {
    /// Always `true`.
    pub changed: bool,
}

/// A record is gone.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Deleted {
    /// The deleted record's id.
    pub id: Uuid,
    /// Always `true`.
    pub deleted: bool,
}

impl Deleted {
    /// The record `id` was deleted.
    pub(crate) fn new(id: Uuid) -> Self {
        Self { id, deleted: true }
    }
}

/// Notifications marked read.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MarkedRead {
    /// How many were unread and are now read.
    pub marked: usize,
}

/// A converted lead and what the conversion created or joined, written in one batch.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ConvertedLead {
    /// The lead, now `converted`.
    pub lead: Shown<Lead>,
    /// The new contact.
    pub contact: Shown<Contact>,
    /// The company the contact joined (new or existing); `null` for a standalone contact.
    pub company: Option<Shown<Company>>,
    /// The new deal, when one was asked for.
    pub deal: Option<Shown<Deal>>,
}

/// An accepted quote and the invoice draft made from it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AcceptedQuote {
    /// The quote, now `accepted`.
    pub quote: Shown<Quote>,
    /// The new invoice draft.
    pub invoice: Shown<Invoice>,
}

/// A new API key and its token.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    pub key: Shown<ApiKey>,
    /// The token to send as `X-API-Key` (or as a bearer token): shown this once only.
    pub token: String,
}

/// A new webhook endpoint and its signing secret.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Shown<WebhookEndpoint>,
    /// The Standard Webhooks signing secret (`whsec_…`): shown this once only (at
    /// creation and at each rotation).
    pub secret: String,
}
