//! API keys for integrations. A key acts as its owner, cut to its scopes. The secret is
//! shown once at creation; only its SHA-256 hash is stored, found by a public prefix.
//!
//! Token format: `crm_<tenant id, 32 hex>_<prefix, 16 hex>_<secret, 64 hex>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use serde_json::json;

use crate::{
    access::{
        security::{SecurityEvent, Severity},
        users::User,
    },
    authz::{Action, ApiScope, ApiScopeList, Principal, Resource},
    crm::{Crm, PageRequest},
    entity::{Entity, entity_meta, from_stored, reference},
    error::{CrmError, Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    principal_cache::Credential,
    storage::{EntityKind, Filter, ListQuery, Page, Reference},
};

/// An API key. Its secret hash is private and never leaves the core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiKey {
    /// Common metadata.
    pub meta: Meta,
    /// What it is for.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// The user it acts as.
    pub owner_id: Id<User>,
    /// What it may do (never more than its owner).
    pub scopes: ApiScopeList,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revoked keys never work again.
    pub revoked: bool,
    /// The public part of the token that finds the key.
    pub prefix: String,
    #[cfg_attr(feature = "schema", schemars(skip))]
    secret_hash: String,
}

impl Entity for ApiKey {
    const KIND: EntityKind = EntityKind::ApiKey;
    const RESOURCE: Resource = Resource::ApiKeys;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    const SECRET_FIELDS: &'static [&'static str] = &["secret_hash"];
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        name: Text [sort] = |e| e.name.as_str(),
        owner_id: Uuid [] = |e| e.owner_id,
        prefix: Text [unique] = |e| e.prefix.as_str(),
        revoked: Bool [] = |e| e.revoked,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("owner_id", self.owner_id)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
}

impl Principal {
    /// The API key in use, if any.
    pub fn api_key_id(&self) -> Option<Id<ApiKey>> {
        self.api_key_uuid().map(Id::from_uuid)
    }
}

/// Input to create an API key.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What it is for.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// The user it acts as; default: the creator.
    pub owner_id: Option<Id<User>>,
    /// What it may do.
    pub scopes: Vec<ApiScope>,
    /// When it stops working (in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// The API keys service (admins only).
#[derive(Clone, Copy, Debug)]
pub struct ApiKeys<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The API keys service.
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { crm: self }
    }
}

fn random_hex<const N: usize>() -> Result<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CrmError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Splits a token into its tenant and prefix; `None` for anything not shaped like one.
fn parse_token(token: &str) -> Option<(TenantId, &str)> {
    let mut parts = token.strip_prefix("crm_")?.split('_');
    let (tenant, prefix, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let shaped = tenant.len() == 32
        && prefix.len() == 16
        && secret.len() == 64
        && parts.next().is_none()
        && [prefix, secret].iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()));
    let tenant = uuid::Uuid::try_parse(tenant).ok()?;
    shaped.then_some((TenantId(tenant), prefix))
}

impl ApiKeys<'_> {
    /// Creates a key and returns it with its token: the only time the token is shown.
    pub async fn create(&self, p: &Principal, input: NewApiKey) -> Result<(ApiKey, String)> {
        self.crm.authorize(p, Resource::ApiKeys, Action::Create)?;
        let mut v = Validator::new();
        v.text("name", &input.name, Validator::NAME_MAX);
        v.check(!input.scopes.is_empty(), "scopes", "at least one scope is required");
        v.check(input.expires_at.is_none_or(|t| t > self.crm.now()), "expires_at", "must be in the future");
        v.finish()?;
        self.require_within_key(p, &input).await?;
        let owner_id = input.owner_id.unwrap_or(p.user_id());
        let owner: User = self.crm.read(p, owner_id).await?;
        if !owner.active {
            return Err(CrmError::invalid("owner_id", "is not an active user"));
        }
        let prefix = random_hex::<8>()?;
        let token = format!("crm_{}_{prefix}_{}", p.tenant_id().0.simple(), random_hex::<32>()?);
        let key = ApiKey {
            meta: self.crm.new_meta(p.tenant_id()),
            name: input.name,
            owner_id,
            scopes: ApiScopeList(input.scopes),
            expires_at: input.expires_at,
            revoked: false,
            prefix,
            secret_hash: hash_token(&token),
        };
        let mut tx = self.crm.tx(p);
        tx.insert(&key)?;
        tx.commit().await?;
        Ok((key, token))
    }

    /// Refuses a key that could do more, or for longer, than the key `p` acts through
    /// (if any): every scope must be included in one of its scopes, and the expiry must
    /// be no later than its own. Otherwise a key could mint a wider one and escape its
    /// own limits.
    async fn require_within_key(&self, p: &Principal, input: &NewApiKey) -> Result<()> {
        let Some(key_id) = p.api_key_id() else {
            return Ok(());
        };
        let key: ApiKey = self.crm.fetch(p.tenant_id(), key_id).await?;
        if let Some(wider) = input.scopes.iter().find(|s| !key.scopes.0.iter().any(|own| own.includes(s))) {
            return Err(CrmError::Forbidden(format!("an API key may not create a key with the wider scope {wider}")));
        }
        if let Some(own) = key.expires_at
            && input.expires_at.is_none_or(|t| t > own)
        {
            return Err(CrmError::Forbidden(format!(
                "an API key may not create a key that outlives it (it expires at {own})"
            )));
        }
        Ok(())
    }

    /// The principal of a token: its owner, cut to its scopes. Malformed, unknown,
    /// wrong, revoked or expired tokens and inactive owners are all `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let Some((tenant, prefix)) = parse_token(token) else {
            tracing::warn!(target: "crm_core::security", "api_key.authentication_failed: a malformed API key");
            return Err(CrmError::Unauthenticated);
        };
        let digest = hash_token(token);
        let credential = Credential::ApiKey(digest.clone());
        let cache = &self.crm.principals;
        if let Some(principal) = cache.get(&credential, self.crm.now()) {
            return Ok(principal);
        }
        let generation = cache.generation();
        let query = ListQuery { limit: 1, ..ListQuery::filtered(vec![Filter::eq("prefix", prefix)]) };
        let page = self.crm.storage.list(tenant, EntityKind::ApiKey, &query).await?;
        let Some(stored) = page.items.into_iter().next() else {
            return Err(self.failed(tenant, None, "unknown_key").await);
        };
        let key: ApiKey = from_stored(stored)?;
        let refusal = if key.secret_hash != digest {
            Some("wrong_secret")
        } else if key.revoked {
            Some("revoked")
        } else if key.expires_at.is_some_and(|t| t <= self.crm.now()) {
            Some("expired")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(self.failed(tenant, Some(&key), reason).await);
        }
        let owner: User = match self.crm.fetch(tenant, key.owner_id).await {
            Ok(owner) if owner.active => owner,
            Ok(_) | Err(CrmError::NotFound { .. }) => {
                return Err(self.failed(tenant, Some(&key), "owner_inactive").await);
            }
            Err(e) => return Err(e),
        };
        let principal = Principal::for_user(&owner).through_api_key(key.meta.id, key.scopes.0);
        cache.offer(generation, credential, &principal, self.crm.now(), key.expires_at);
        Ok(principal)
    }

    /// Records a refused key and returns the one error every refusal answers (an error
    /// writing the record instead, if any). A refusal of a known key is about it; one
    /// of an unknown prefix is about the tenant, if it exists (else only logged).
    async fn failed(&self, tenant: TenantId, key: Option<&ApiKey>, reason: &str) -> CrmError {
        let event = SecurityEvent {
            tenant,
            actor: None,
            api_key: key.map(|k| k.meta.id),
            action: "api_key.authentication_failed",
            entity_kind: if key.is_some() { EntityKind::ApiKey } else { EntityKind::Tenant },
            entity_id: key.map_or(tenant.0, |k| k.meta.id),
            details: json!({ "reason": reason }),
            severity: Severity::Warn,
        };
        let recorded = match key {
            Some(_) => self.crm.record_security_event(event).await,
            None => self.crm.record_security_event_in_known_tenant(event).await,
        };
        recorded.err().unwrap_or(CrmError::Unauthenticated)
    }

    /// One key.
    pub async fn get(&self, p: &Principal, id: Id<ApiKey>) -> Result<ApiKey> {
        self.crm.read(p, id).await
    }

    /// A page of keys, optionally of one owner.
    pub async fn list(&self, p: &Principal, owner: Option<Id<User>>, page: &PageRequest) -> Result<Page<ApiKey>> {
        let filters = owner.map(|o| Filter::eq("owner_id", o)).into_iter().collect();
        self.crm.list(p, filters, page).await
    }

    /// Revokes a key for good.
    pub async fn revoke(&self, p: &Principal, id: Id<ApiKey>, version: Option<u64>) -> Result<ApiKey> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = ApiKey { revoked: true, ..before.clone() };
        let mut tx = self.crm.tx(p);
        tx.update_as("revoked", &before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a key.
    pub async fn delete(&self, p: &Principal, id: Id<ApiKey>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
