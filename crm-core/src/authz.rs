//! Authorization: principals, the one permission matrix, and API-key scopes.
//!
//! [`access`] is the whole matrix: role × resource × action → how far the right reaches
//! ([`Access`]). Services ask it before every read and write; nothing else decides.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::id::TenantId;

/// A user's role within its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant; alone manages users, API keys and the audit log.
    Admin,
    /// All CRM, sales and project records; team reports; assigns tasks.
    Manager,
    /// Creates records; edits what it owns or is assigned.
    User,
    /// A customer's user: reads its own company's records only.
    Client,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::User, Role::Client];

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::User => "user",
            Self::Client => "client",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown role `{s}`"))
    }
}

macro_rules! resources {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// What the permission matrix governs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum Resource {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant,
            )*
        }

        impl Resource {
            /// Every resource, in matrix order.
            pub const ALL: &'static [Resource] = &[$(Resource::$variant),*];

            /// The resource's name in scopes and tables (`delivery_notes`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Resource::$variant => $name,)*
                }
            }
        }
    };
}

resources! {
    Users => "users",
    Companies => "companies",
    Contacts => "contacts",
    Leads => "leads",
    Deals => "deals",
    Quotes => "quotes",
    Invoices => "invoices",
    Payments => "payments",
    DeliveryNotes => "delivery_notes",
    CreditNotes => "credit_notes",
    Projects => "projects",
    Milestones => "milestones",
    Tasks => "tasks",
    Products => "products",
    ProductCategories => "product_categories",
    Notifications => "notifications",
    ApiKeys => "api_keys",
    AuditLogs => "audit_logs",
    Reports => "reports",
    Settings => "settings",
    Webhooks => "webhooks",
}

impl FromStr for Resource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown resource `{s}`"))
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a principal does to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Get and list.
    Read,
    /// Create.
    Create,
    /// Change, including state transitions.
    Update,
    /// Delete.
    Delete,
}

impl Action {
    /// Every action, in matrix order (R, C, U, D).
    pub const ALL: [Action; 4] = [Action::Read, Action::Create, Action::Update, Action::Delete];

    /// Whether the action changes data (needs a `:write` API-key scope).
    pub const fn is_write(self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// How far a right reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Not at all.
    Denied,
    /// Records the principal owns or is assigned (for users: itself).
    Own,
    /// Records of the principal's own customer company.
    Company,
    /// Every record of the tenant.
    Tenant,
}

/// The permission matrix. One function, one place: see the README for it as a table.
pub const fn access(role: Role, resource: Resource, action: Action) -> Access {
    use Access::{Company, Denied, Own, Tenant};
    use Action::{Create, Delete, Read, Update};
    use Resource as R;
    match (role, resource) {
        // Personal inboxes: read, mark read and delete one's own; only the domain creates them.
        (_, R::Notifications) => match action {
            Create => Denied,
            _ => Own,
        },
        // Computed; nobody writes them.
        (Role::Admin | Role::Manager, R::Reports) => match action {
            Read => Tenant,
            _ => Denied,
        },
        (_, R::Reports) => Denied,
        // Append-only, written by the services themselves.
        (Role::Admin, R::AuditLogs) => match action {
            Read => Tenant,
            _ => Denied,
        },
        // Everyone's dates depend on the tenant's settings; only admins change them.
        (Role::Admin, R::Settings) => match action {
            Read | Update => Tenant,
            _ => Denied,
        },
        (_, R::Settings) => match action {
            Read => Tenant,
            _ => Denied,
        },
        (Role::Admin, _) => Tenant,
        (_, R::AuditLogs | R::ApiKeys | R::Webhooks) => Denied,
        // Everyone may read and edit their own profile (not its role); managers see the team.
        (Role::Manager, R::Users) => match action {
            Read => Tenant,
            Update => Own,
            _ => Denied,
        },
        (_, R::Users) => match action {
            Read | Update => Own,
            _ => Denied,
        },
        (Role::Manager, _) => Tenant,
        (Role::User, R::Products | R::ProductCategories) => match action {
            Read => Tenant,
            _ => Denied,
        },
        (Role::User, _) => match action {
            Read | Create => Tenant,
            Update | Delete => Own,
        },
        (
            Role::Client,
            R::Companies
            | R::Contacts
            | R::Quotes
            | R::Invoices
            | R::Payments
            | R::DeliveryNotes
            | R::CreditNotes
            | R::Projects
            | R::Tasks,
        ) => match action {
            Read => Company,
            _ => Denied,
        },
        (Role::Client, _) => Denied,
    }
}

/// One API-key scope: read or write one resource, or every resource (`*`). Read and
/// written as its text form (`contacts:read`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ApiScope {
    /// The resource; `None` for all of them.
    pub resource: Option<Resource>,
    /// `write` grants create, update and delete as well as read.
    pub write: bool,
}

impl ApiScope {
    /// Whether the scope allows `action` on `resource`.
    pub fn allows(&self, resource: Resource, action: Action) -> bool {
        self.resource.is_none_or(|r| r == resource) && (self.write || !action.is_write())
    }

    /// Whether everything `other` allows, this scope allows too.
    pub fn includes(&self, other: &ApiScope) -> bool {
        (self.resource.is_none() || self.resource == other.resource) && (self.write || !other.write)
    }
}

impl FromStr for ApiScope {
    type Err = String;
    /// `contacts:read`, `deals:write`, `*:read`, `*:write`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (resource, level) =
            s.split_once(':').ok_or_else(|| format!("scope `{s}` must look like `contacts:read`"))?;
        let resource = if resource == "*" { None } else { Some(resource.parse()?) };
        let write = match level {
            "read" => false,
            "write" => true,
            _ => return Err(format!("scope `{s}` must end in `:read` or `:write`")),
        };
        Ok(Self { resource, write })
    }
}

impl fmt::Display for ApiScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = self.resource.map_or("*", Resource::as_str);
        write!(f, "{resource}:{}", if self.write { "write" } else { "read" })
    }
}

impl Serialize for ApiScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for ApiScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ApiScopeList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}
impl<'de> Deserialize<'de> for ApiScopeList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        raw.iter().map(|s| s.parse()).collect::<Result<_, _>>().map(Self).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for ApiScope {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ApiScope".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`<resource>:read`, `<resource>:write`, `*:read` or `*:write`.",
        })
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for ApiScopeList {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ApiScopeList".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Vec::<ApiScope>::json_schema(generator)
    }
}

/// A list of scopes, stored as their text forms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiScopeList(pub Vec<ApiScope>);

/// Who is acting: a user, or an API key acting for its owner within its scopes.
///
/// Built by the core from stored users (`Users::principal`) or keys
/// (`ApiKeys::authenticate`), never from caller-supplied roles. The kernel holds the
/// ids untyped; the access and customer areas add the typed accessors (`user_id`,
/// `api_key_id`, `company_id`), since the types they name live there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    tenant_id: TenantId,
    user: Uuid,
    role: Role,
    company: Option<Uuid>,
    api_key: Option<(Uuid, Vec<ApiScope>)>,
    session: Option<Uuid>,
}

impl Principal {
    /// The principal of user `user` with `role` (and, for clients, its `company`).
    pub(crate) fn new(tenant_id: TenantId, user: Uuid, role: Role, company: Option<Uuid>) -> Self {
        Self { tenant_id, user, role, company, api_key: None, session: None }
    }

    /// The CRM itself acting in `tenant` (scheduled jobs): an admin's reach, no user
    /// (the nil id, which no user has; its audit entries name no actor).
    pub(crate) fn system(tenant_id: TenantId) -> Self {
        Self::new(tenant_id, Uuid::nil(), Role::Admin, None)
    }

    /// The same user acting through API key `key`, within `scopes`.
    pub(crate) fn through_api_key(self, key: Uuid, scopes: Vec<ApiScope>) -> Self {
        Self { api_key: Some((key, scopes)), ..self }
    }

    /// The same user acting in sign-in session `session` (a `Session` id, untyped: the
    /// kernel's session contract is not needed to name it).
    pub(crate) fn in_session(self, session: Uuid) -> Self {
        Self { session: Some(session), ..self }
    }

    /// The sign-in session it acts in, if it authenticated with one (never for API keys).
    pub fn session_uuid(&self) -> Option<Uuid> {
        self.session
    }

    /// The tenant it acts in.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    /// The acting user's role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The acting user's id (the key's owner for API keys).
    pub fn user_uuid(&self) -> Uuid {
        self.user
    }
    /// The customer company of a client, as an id.
    pub fn company_uuid(&self) -> Option<Uuid> {
        self.company
    }
    /// The id of the API key in use, if any.
    pub fn api_key_uuid(&self) -> Option<Uuid> {
        self.api_key.as_ref().map(|(id, _)| *id)
    }

    /// The reach of this principal's right: the role's matrix cell, cut to nothing
    /// when an API key's scopes do not cover it.
    pub fn access(&self, resource: Resource, action: Action) -> Access {
        let by_role = access(self.role, resource, action);
        match &self.api_key {
            Some((_, scopes)) if !scopes.iter().any(|s| s.allows(resource, action)) => Access::Denied,
            _ => by_role,
        }
    }
}
