//! Tenants, users, passwords and the principals they act as.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{
    access::{
        password_reset::PendingReset,
        security::{SecurityEvent, Severity, printable},
        sessions::RevokeReason,
    },
    authz::{Action, Principal, Resource, Role, access},
    crm::{Crm, Filters, PageRequest, apply_patch, retry_on_conflict},
    entity::{Entity, entity_meta},
    error::{CrmError, Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    passwords::{PasswordHashString, PasswordPolicy},
    storage::{EntityKind, Filter, ListQuery, Page, Reference},
};

/// A tenant: one organisation using the CRM. Its record is stored inside itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Common metadata; `meta.id` equals `meta.tenant_id`.
    pub meta: Meta,
    /// Display name.
    pub name: String,
}

impl Entity for Tenant {
    const KIND: EntityKind = EntityKind::Tenant;
    const RESOURCE: Resource = Resource::Users;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
    }
}

/// A person who signs in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct User {
    /// Common metadata.
    pub meta: Meta,
    /// Sign-in email; unique per tenant, compared case-insensitively.
    pub email: String,
    /// Given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: String,
    /// Family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: String,
    /// Role in the tenant.
    pub role: Role,
    /// The customer company of a `client` (required for clients, absent otherwise).
    // A `Company` id, untyped: companies sit in an area above access.
    pub company_id: Option<Uuid>,
    /// Inactive users cannot sign in or act.
    pub active: bool,
    /// The last successful sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(super) password_hash: PasswordHashString,
    /// The pending forgotten-password reset, if one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(super) reset: Option<PendingReset>,
}

impl User {
    /// `first last`.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

impl Entity for User {
    const KIND: EntityKind = EntityKind::User;
    const RESOURCE: Resource = Resource::Users;
    const OWNER_FIELD: Option<&'static str> = Some("id");
    const SECRET_FIELDS: &'static [&'static str] = &["password_hash", "reset"];
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        id: Uuid [] = |e| e.meta.id,
        email: Text [sort, search, unique] = |e| e.email.to_lowercase(),
        first_name: Text [search] = |e| e.first_name.as_str(),
        last_name: Text [sort, search] = |e| e.last_name.as_str(),
        role: Text [eq] = |e| e.role.as_str(),
        company_id: Uuid [] = |e| e.company_id,
        active: Bool [eq] = |e| e.active,
    }

    fn references(&self) -> Vec<Reference> {
        let company = self.company_id.map(|id| Reference { field: "company_id", kind: EntityKind::Company, id });
        company.into_iter().collect()
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.meta.id]
    }
    fn company(&self) -> Option<Uuid> {
        self.company_id
    }
}

impl Principal {
    /// The principal of an active user.
    pub(crate) fn for_user(user: &User) -> Self {
        Self::new(user.meta.tenant_id, user.meta.id, user.role, user.company_id)
    }

    /// The acting user (the key's owner for API keys).
    pub fn user_id(&self) -> Id<User> {
        Id::from_uuid(self.user_uuid())
    }
}

/// Input to create a user.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Sign-in email.
    pub email: String,
    /// Initial password (at least 8 characters).
    pub password: String,
    /// Given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: String,
    /// Family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: String,
    /// Role.
    pub role: Role,
    /// Customer company, required for clients.
    pub company_id: Option<Uuid>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New email.
    pub email: Option<String>,
    /// New given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: Option<String>,
    /// New family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: Option<String>,
    /// New role (admins only).
    pub role: Option<Role>,
    /// New customer company (admins only; `Some(None)` clears it).
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub company_id: Option<Option<Uuid>>,
    /// Activate or deactivate (admins only).
    pub active: Option<bool>,
}

/// A user carried over from another system with its existing password hash.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportedUser {
    /// Sign-in email.
    pub email: String,
    /// Given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: String,
    /// Family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: String,
    /// Role.
    pub role: Role,
    /// Customer company, required for clients.
    pub company_id: Option<Uuid>,
    /// Whether the user may sign in.
    pub active: bool,
    /// A bcrypt hash (`$2b$12$…`) or an argon2id PHC string, within
    /// [`ImportCeiling`](crate::passwords::ImportCeiling) (bcrypt cost ≤ 14; argon2id
    /// m ≤ 64 MiB, t ≤ 10, p ≤ 16).
    pub password_hash: String,
}

/// Filters for listing users.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserFilter {
    /// Only this role.
    pub role: Option<Role>,
    /// Only active or inactive users.
    pub active: Option<bool>,
}

/// The first tenant's data: its name and its first admin.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Bootstrap {
    /// Tenant name.
    pub tenant_name: String,
    /// Admin email.
    pub admin_email: String,
    /// Admin password.
    pub admin_password: String,
    /// Admin given name.
    pub admin_first_name: String,
    /// Admin family name.
    pub admin_last_name: String,
}

/// Users, tenants, passwords and principals.
#[derive(Clone, Copy, Debug)]
pub struct Users<'a> {
    pub(super) crm: &'a Crm,
}

impl Crm {
    /// The users service.
    pub fn users(&self) -> Users<'_> {
        Users { crm: self }
    }
}

fn validate_user_fields(v: &mut Validator, email: &str, first: &str, last: &str, role: Role, company: Option<Uuid>) {
    v.email("email", email);
    v.text("first_name", first, Validator::PERSON_NAME_MAX);
    v.text("last_name", last, Validator::PERSON_NAME_MAX);
    match role {
        Role::Client => v.check(company.is_some(), "company_id", "is required for clients"),
        _ => v.check(company.is_none(), "company_id", "is only for clients"),
    };
}

pub(super) fn validate_password(v: &mut Validator, field: &str, password: &str) {
    v.check(
        password.chars().count() >= PasswordPolicy::MIN_LENGTH && password.len() <= 1024,
        field,
        format!("must be {} to 1024 characters", PasswordPolicy::MIN_LENGTH),
    );
}

fn is_active_admin(user: &User) -> bool {
    user.role == Role::Admin && user.active
}

/// A checked admin deleted meanwhile is a concurrent change like any other: `Conflict`,
/// not a `NotFound` naming a user the caller did not ask about.
fn vanished_as_conflict(e: CrmError, checked: &[User]) -> CrmError {
    match e {
        CrmError::NotFound { kind: EntityKind::User, id } if checked.iter().any(|u| u.meta.id == id) => {
            CrmError::Conflict { kind: EntityKind::User, id }
        }
        other => other,
    }
}

/// Refuses to grant `role` unless `p` holds each of its rights at least as far: nobody
/// hands out more than it holds. This is what stops an API key, cut to its scopes, from
/// creating a user with a known password that signs in with more rights than the key
/// (for principals without a key, only admins grant roles, and they hold every right).
fn require_grantable(p: &Principal, role: Role) -> Result<()> {
    for &resource in Resource::ALL {
        for action in Action::ALL {
            if access(role, resource, action) > p.access(resource, action) {
                let action = format!("{action:?}").to_lowercase();
                return Err(CrmError::Forbidden(format!(
                    "may not grant the role {}: it may {action} {resource} further than the caller",
                    role.as_str()
                )));
            }
        }
    }
    Ok(())
}

impl Users<'_> {
    /// Creates a tenant and its first admin in one atomic write, and returns the
    /// admin's principal.
    pub async fn bootstrap(&self, input: Bootstrap) -> Result<(Tenant, User, Principal)> {
        let mut v = Validator::new();
        v.text("tenant_name", &input.tenant_name, Validator::NAME_MAX);
        validate_user_fields(
            &mut v,
            &input.admin_email,
            &input.admin_first_name,
            &input.admin_last_name,
            Role::Admin,
            None,
        );
        validate_password(&mut v, "admin_password", &input.admin_password);
        v.finish()?;
        let tenant_id = TenantId(uuid::Uuid::now_v7());
        let mut meta = self.crm.new_meta(tenant_id);
        meta.id = tenant_id.0;
        let tenant = Tenant { meta, name: input.tenant_name.trim().to_owned() };
        let admin = User {
            meta: self.crm.new_meta(tenant_id),
            email: input.admin_email,
            first_name: input.admin_first_name,
            last_name: input.admin_last_name,
            role: Role::Admin,
            company_id: None,
            active: true,
            last_login_at: None,
            password_hash: self.crm.hash_password(&input.admin_password).await?,
            reset: None,
        };
        let principal = Principal::for_user(&admin);
        let mut tx = self.crm.tx(&principal);
        tx.insert(&tenant)?;
        tx.insert(&admin)?;
        tx.commit().await?;
        Ok((tenant, admin, principal))
    }

    /// The principal of an active user, for edges that authenticated it by other
    /// means (a session or token naming the user).
    pub async fn principal(&self, tenant: TenantId, user_id: Id<User>) -> Result<Principal> {
        match self.crm.fetch(tenant, user_id).await {
            Ok(user) if user.active => Ok(Principal::for_user(&user)),
            Ok(_) | Err(CrmError::NotFound { .. }) => Err(CrmError::Unauthenticated),
            Err(e) => Err(e),
        }
    }

    /// Checks an email and password; the same error for an unknown email, a wrong
    /// password and an inactive user. Records the sign-in time; simultaneous sign-ins
    /// of one user all succeed.
    pub async fn authenticate(&self, tenant: TenantId, email: &str, password: &str) -> Result<(User, Principal)> {
        let found = self.find_by_email(tenant, email).await?;
        let inactive = found.as_ref().filter(|u| !u.active).map(|u| u.meta.id);
        let user = match found.filter(|u| u.active) {
            Some(user) if self.crm.verify_password(password, &user.password_hash).await? => user,
            Some(user) => return Err(self.sign_in_failed(tenant, email, Some(user.meta.id), "wrong_password").await),
            None => {
                self.crm.verify_password_for_nobody(password).await?;
                let reason = if inactive.is_some() { "inactive_user" } else { "unknown_email" };
                return Err(self.sign_in_failed(tenant, email, inactive, reason).await);
            }
        };
        // The bookkeeping (sign-in time, a bcrypt hash replaced) is the server's own
        // read-modify-write, so a simultaneous sign-in that wins the race makes this one
        // write again on fresh state rather than fail. A fresh state must still let the
        // user in: active, and the same hash or one the password also matches (another
        // sign-in's rehash); a concurrent password change or deactivation refuses it.
        let (id, verified) = (user.meta.id, user.password_hash.clone());
        let mut first = Some(user);
        retry_on_conflict(&[EntityKind::User], || {
            let known = first.take();
            let verified = &verified;
            async move {
                let before = match known {
                    Some(user) => user,
                    None => match self.crm.fetch::<User>(tenant, Id::from_uuid(id)).await {
                        Ok(user) if user.active => user,
                        Ok(_) | Err(CrmError::NotFound { .. }) => return Err(CrmError::Unauthenticated),
                        Err(e) => return Err(e),
                    },
                };
                if before.password_hash != *verified
                    && !self.crm.verify_password(password, &before.password_hash).await?
                {
                    return Err(CrmError::Unauthenticated);
                }
                let principal = Principal::for_user(&before);
                let mut after = before.clone();
                after.last_login_at = Some(self.crm.now());
                if self.crm.passwords.needs_rehash(&before.password_hash) {
                    after.password_hash = self.crm.hash_password(password).await?;
                }
                let mut tx = self.crm.tx(&principal);
                tx.update_as("signed_in", &before, &mut after)?;
                tx.commit().await?;
                Ok((after, principal))
            }
        })
        .await
    }

    /// Records a failed sign-in and returns the one error every failure answers (an
    /// error writing the record instead, if any). A failure naming a user is about
    /// that user; one naming no user (an unknown email) is about the tenant and keeps
    /// the email as typed, so admins see guessing, or only logged when the tenant does
    /// not exist (an unauthenticated request must not create data in a made-up tenant).
    async fn sign_in_failed(&self, tenant: TenantId, email: &str, user: Option<Uuid>, reason: &str) -> CrmError {
        let event = SecurityEvent {
            tenant,
            actor: None,
            api_key: None,
            action: "user.sign_in_failed",
            entity_kind: if user.is_some() { EntityKind::User } else { EntityKind::Tenant },
            entity_id: user.unwrap_or(tenant.0),
            details: json!({ "reason": reason, "email": printable(email) }),
            severity: Severity::Warn,
        };
        let recorded = match user {
            Some(_) => self.crm.record_security_event(event).await,
            None => self.crm.record_security_event_in_known_tenant(event).await,
        };
        recorded.err().unwrap_or(CrmError::Unauthenticated)
    }

    pub(super) async fn find_by_email(&self, tenant: TenantId, email: &str) -> Result<Option<User>> {
        let query = ListQuery { limit: 1, ..ListQuery::filtered(vec![Filter::eq("email", email.to_lowercase())]) };
        let page = self.crm.storage.list(tenant, EntityKind::User, &query).await?;
        page.items.into_iter().next().map(crate::entity::from_stored).transpose()
    }

    /// Creates a user (admins only; never with more rights than the creator holds).
    pub async fn create(&self, p: &Principal, input: NewUser) -> Result<User> {
        self.crm.authorize(p, Resource::Users, Action::Create)?;
        require_grantable(p, input.role)?;
        let mut v = Validator::new();
        validate_user_fields(&mut v, &input.email, &input.first_name, &input.last_name, input.role, input.company_id);
        validate_password(&mut v, "password", &input.password);
        v.finish()?;
        let user = User {
            meta: self.crm.new_meta(p.tenant_id()),
            email: input.email,
            first_name: input.first_name,
            last_name: input.last_name,
            role: input.role,
            company_id: input.company_id,
            active: true,
            last_login_at: None,
            password_hash: self.crm.hash_password(&input.password).await?,
            reset: None,
        };
        let mut tx = self.crm.tx(p);
        tx.insert(&user)?;
        tx.commit().await?;
        Ok(user)
    }

    /// Creates a user from another system, keeping its password hash (admins only).
    /// A bcrypt hash, or an argon2id one at other parameters than the CRM's, is
    /// replaced at the user's first sign-in; one dearer than the
    /// [`ImportCeiling`](crate::passwords::ImportCeiling) is refused.
    pub async fn import(&self, p: &Principal, input: ImportedUser) -> Result<User> {
        self.crm.authorize(p, Resource::Users, Action::Create)?;
        require_grantable(p, input.role)?;
        let mut v = Validator::new();
        validate_user_fields(&mut v, &input.email, &input.first_name, &input.last_name, input.role, input.company_id);
        let hash = PasswordHashString::parse_imported(input.password_hash);
        if let Err(refusal) = &hash {
            v.push("password_hash", refusal.clone());
        }
        v.finish()?;
        let user = User {
            meta: self.crm.new_meta(p.tenant_id()),
            email: input.email,
            first_name: input.first_name,
            last_name: input.last_name,
            role: input.role,
            company_id: input.company_id,
            active: input.active,
            last_login_at: None,
            password_hash: hash.map_err(|_| CrmError::Internal("validated hash missing".into()))?,
            reset: None,
        };
        let mut tx = self.crm.tx(p);
        tx.insert(&user)?;
        tx.commit().await?;
        Ok(user)
    }

    /// One user.
    pub async fn get(&self, p: &Principal, id: Id<User>) -> Result<User> {
        self.crm.read(p, id).await
    }

    /// A page of users.
    pub async fn list(&self, p: &Principal, filter: &UserFilter, page: &PageRequest) -> Result<Page<User>> {
        let filters = Filters::default().eq("role", filter.role.map(Role::as_str)).eq("active", filter.active).build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a user. Only admins change roles, companies and the active flag;
    /// everyone else may change only their own name and email.
    pub async fn update(&self, p: &Principal, id: Id<User>, patch: UserPatch) -> Result<User> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        let admin_only: Vec<&str> = [
            ("role", patch.role.is_some()),
            ("company_id", patch.company_id.is_some()),
            ("active", patch.active.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, sent)| sent.then_some(field))
        .collect();
        if p.role() != Role::Admin && !admin_only.is_empty() {
            return Err(CrmError::Forbidden(format!("only an admin may change {}", admin_only.join(", "))));
        }
        if let Some(role) = patch.role.filter(|role| *role != before.role) {
            if p.api_key_id().is_some() {
                return Err(CrmError::Forbidden("an API key may not change roles".into()));
            }
            require_grantable(p, role)?;
        }
        let mut after = before.clone();
        apply_patch!(patch => after { email, first_name, last_name, role, company_id, active });
        let mut v = Validator::new();
        validate_user_fields(&mut v, &after.email, &after.first_name, &after.last_name, after.role, after.company_id);
        let loses_admin = is_active_admin(&before) && !is_active_admin(&after);
        v.check(!(id == p.user_id() && loses_admin), "role", "an admin cannot demote or deactivate itself");
        let other_admin_lost = loses_admin && id != p.user_id();
        let remaining = if other_admin_lost { self.other_active_admins(p.tenant_id(), id).await? } else { Vec::new() };
        v.check(
            !other_admin_lost || !remaining.is_empty(),
            if after.role == Role::Admin { "active" } else { "role" },
            "the tenant would be left without an active admin",
        );
        v.finish()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        for admin in &remaining {
            tx.check(admin);
        }
        tx.commit().await.map_err(|e| vanished_as_conflict(e, &remaining))?;
        if before.email.to_lowercase() != after.email.to_lowercase() {
            // Sessions were signed in under the old address: end them (but the caller's).
            let sessions = self.crm.sessions();
            sessions.revoke_all_of_user(p, id.uuid(), p.session_uuid(), RevokeReason::EmailChanged).await?;
        }
        Ok(after)
    }

    /// Every active admin of the tenant but `except`, as read now. A change that takes
    /// an active admin away checks all of them in its batch: were two admins demoted,
    /// deactivated or deleted at once, each batch would find the other admin changed and
    /// only one would commit, so the tenant always keeps an active admin.
    async fn other_active_admins(&self, tenant: TenantId, except: Id<User>) -> Result<Vec<User>> {
        let mut admins = self.crm.active_admins(tenant).await?;
        admins.retain(|admin| admin.meta.id != except.uuid());
        Ok(admins)
    }

    /// Changes the principal's own password after checking the current one. Refused
    /// through an API key: a key acts for its owner within scopes, it never takes over
    /// the owner's sign-in.
    pub async fn change_password(&self, p: &Principal, current: &str, new: &str) -> Result<()> {
        if p.api_key_id().is_some() {
            return Err(CrmError::Forbidden("an API key may not change its owner's password".into()));
        }
        let before: User = self.crm.fetch(p.tenant_id(), p.user_id()).await?;
        if !self.crm.verify_password(current, &before.password_hash).await? {
            return Err(CrmError::invalid("current_password", "is not the current password"));
        }
        let mut v = Validator::new();
        validate_password(&mut v, "new_password", new);
        v.finish()?;
        let mut after = before.clone();
        after.password_hash = self.crm.hash_password(new).await?;
        let mut tx = self.crm.tx(p);
        tx.update_as("password_changed", &before, &mut after)?;
        tx.commit().await?;
        tracing::info!(
            target: "crm_core::security", tenant = %p.tenant_id().0, user = %p.user_uuid(), "user.password_changed"
        );
        // Whoever else held a session (a thief, a forgotten device) is out; this one stays.
        let sessions = self.crm.sessions();
        sessions.revoke_all_of_user(p, p.user_uuid(), p.session_uuid(), RevokeReason::PasswordChanged).await.map(drop)
    }

    /// Sets another user's password (admins only, never through an API key) and
    /// revokes every session of that user (but the caller's own current one): whoever
    /// knew the old password is out.
    pub async fn reset_password(&self, p: &Principal, id: Id<User>, new: &str) -> Result<()> {
        if p.api_key_id().is_some() {
            return Err(CrmError::Forbidden("an API key may not reset passwords".into()));
        }
        if p.role() != Role::Admin {
            return Err(CrmError::Forbidden("only an admin may reset a password".into()));
        }
        let before: User = self.crm.load_for(p, id, Action::Update, None).await?;
        let mut v = Validator::new();
        validate_password(&mut v, "new_password", new);
        v.finish()?;
        let mut after = before.clone();
        after.password_hash = self.crm.hash_password(new).await?;
        let mut tx = self.crm.tx(p);
        tx.update_as("password_reset", &before, &mut after)?;
        tx.commit().await?;
        tracing::info!(
            target: "crm_core::security", tenant = %p.tenant_id().0, user = %id, by = %p.user_uuid(), "user.password_reset"
        );
        let sessions = self.crm.sessions();
        sessions.revoke_all_of_user(p, id.uuid(), p.session_uuid(), RevokeReason::PasswordReset).await.map(drop)
    }

    /// Deletes a user (admins only; refused while records reference it, and when it is
    /// the tenant's last active admin).
    pub async fn delete(&self, p: &Principal, id: Id<User>, version: Option<u64>) -> Result<()> {
        if id == p.user_id() {
            return Err(CrmError::invalid("id", "a user cannot delete itself"));
        }
        let user: User = self.crm.load_for(p, id, Action::Delete, version).await?;
        let remaining =
            if is_active_admin(&user) { self.other_active_admins(p.tenant_id(), id).await? } else { Vec::new() };
        if is_active_admin(&user) && remaining.is_empty() {
            return Err(CrmError::invalid("id", "the tenant would be left without an active admin"));
        }
        let mut tx = self.crm.tx(p);
        tx.delete(&user)?;
        for admin in &remaining {
            tx.check(admin);
        }
        tx.commit().await.map_err(|e| vanished_as_conflict(e, &remaining))
    }
}

impl Crm {
    /// Every active admin of `tenant`, as read now.
    pub(crate) async fn active_admins(&self, tenant: TenantId) -> Result<Vec<User>> {
        self.list_all(tenant, vec![Filter::eq("role", Role::Admin.as_str()), Filter::eq("active", true)]).await
    }
}
