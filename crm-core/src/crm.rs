//! [`Crm`]: the entry point that holds the storage and hands out services, plus the
//! machinery every service shares (authorization checks, the unit of work, paging).
//!
//! This is the kernel's top: it knows the storage, session and password contracts,
//! never a business area. Areas add their services to [`Crm`] from their own modules,
//! and the crate root assembles a [`Crm`] with the [`Journal`] that stores audit
//! entries and notifications.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::{
    authz::{Access, Action, Principal, Resource},
    entity::{Entity, from_stored, to_record},
    error::{CrmError, Result},
    events::{Assigned, EventPayload, Notified},
    fields,
    id::{Id, Meta, TenantId},
    jobs::{JobQueue, StorageJobQueue},
    journal::{AssignmentNotice, AuditFact, Journal},
    passwords::{Inline, Offload, PasswordHashString, PasswordPolicy, PasswordWork, offloaded},
    principal_cache::{DEFAULT_PRINCIPAL_CAPACITY, DEFAULT_PRINCIPAL_TTL, PrincipalCache},
    session_store::{DEFAULT_SESSION_TTL, SessionStore, StorageSessionStore},
    storage::{
        CounterUpdate, Cursor, EntityKind, FieldValue, Filter, ListQuery, OutboxEvent, Page, Sort, Storage,
        StorageError, TextSearch, WriteBatch, WriteOp,
    },
    tenant_settings::TenantSettings,
};

/// How long relayed events and finished deliveries are kept by default: a week, past
/// the three days webhook deliveries retry, so a live stream can resume a day-old
/// position and an admin can read a week of the delivery log.
pub const DEFAULT_EVENT_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// How long report runs and their results are kept unless the CRM is built with
/// another retention ([`CrmBuilder::report_retention`]).
pub const DEFAULT_REPORT_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// The CRM: cheap to clone, shareable across tasks. Every service call takes the
/// acting [`Principal`].
#[derive(Clone)]
pub struct Crm {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) passwords: PasswordPolicy,
    pub(crate) offload: Arc<dyn Offload>,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) session_ttl: chrono::Duration,
    pub(crate) journal: Journal,
    pub(crate) webhook_allow_http: bool,
    pub(crate) jobs: Arc<dyn JobQueue>,
    pub(crate) event_retention: chrono::Duration,
    pub(crate) report_retention: chrono::Duration,
    pub(crate) principals: Arc<PrincipalCache>,
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crm").field("storage", &self.storage.name()).finish_non_exhaustive()
    }
}

/// Builds a [`Crm`] with a non-default clock, password hashing cost, offload or
/// session store. Made by `Crm::builder`.
pub struct CrmBuilder {
    crm: Crm,
    jobs: Option<Arc<dyn JobQueue>>,
}

impl CrmBuilder {
    /// A builder over `storage` with the system clock, production password hashing
    /// run inline, sessions in the storage, and `journal`.
    pub(crate) fn assemble(storage: Arc<dyn Storage>, journal: Journal) -> Self {
        let sessions = Arc::new(StorageSessionStore::new(storage.clone()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self {
            jobs: None,
            crm: Crm {
                jobs: Arc::new(StorageJobQueue::new(storage.clone(), clock.clone())),
                event_retention: DEFAULT_EVENT_RETENTION,
                storage,
                clock,
                passwords: PasswordPolicy::default(),
                offload: Arc::new(Inline),
                sessions,
                session_ttl: DEFAULT_SESSION_TTL,
                journal,
                webhook_allow_http: false,
                report_retention: DEFAULT_REPORT_RETENTION,
                principals: Arc::new(PrincipalCache::new(DEFAULT_PRINCIPAL_TTL, DEFAULT_PRINCIPAL_CAPACITY)),
            },
        }
    }
    /// Runs password hashing and verification through `offload` (default: inline on
    /// the calling task). Servers pass their runtime's blocking pool, bounded.
    pub fn offload(mut self, offload: Arc<dyn Offload>) -> Self {
        self.crm.offload = offload;
        self
    }
    /// Uses this clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.crm.clock = clock;
        self
    }
    /// Uses this password hashing policy.
    pub fn passwords(mut self, policy: PasswordPolicy) -> Self {
        self.crm.passwords = policy;
        self
    }
    /// Keeps sign-in sessions in this store (default: the CRM's storage).
    pub fn session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.crm.sessions = store;
        self
    }
    /// Lets sessions live this long (default: [`crate::session_store::DEFAULT_SESSION_TTL`]).
    pub fn session_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.crm.session_ttl = ttl;
        self
    }

    /// Keeps the principals of recently authenticated sessions and API keys for `ttl`
    /// (default [`DEFAULT_PRINCIPAL_TTL`]), at most `capacity` of them, so a request
    /// does not read its session and user every time. Revocations and user changes
    /// made through this `Crm` apply at once; those made by another process sharing the
    /// storage apply within `ttl`. A zero `ttl` reads every time.
    pub fn principal_cache(mut self, ttl: std::time::Duration, capacity: usize) -> Self {
        self.crm.principals = Arc::new(PrincipalCache::new(ttl, capacity));
        self
    }

    /// Accepts `http://` webhook targets (the server's `--webhook-allow-http`, for tests
    /// and intranets); by default only `https` URLs are valid.
    pub fn webhook_allow_http(mut self, allow: bool) -> Self {
        self.crm.webhook_allow_http = allow;
        self
    }

    /// How long relayed outbox events and finished webhook deliveries are kept before
    /// the `prune` job deletes them (default [`DEFAULT_EVENT_RETENTION`]).
    pub fn event_retention(mut self, retention: chrono::Duration) -> Self {
        self.crm.event_retention = retention;
        self
    }

    /// Enqueues background jobs (emails…) on this queue; default: a
    /// [`StorageJobQueue`] on the CRM's storage and clock. A server passes the queue its
    /// workers reserve from (Redis or storage).
    pub fn jobs(mut self, jobs: Arc<dyn JobQueue>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Keeps report runs and their results this long (the server's
    /// `--report-retention`; default 24 hours).
    pub fn report_retention(mut self, retention: chrono::Duration) -> Self {
        self.crm.report_retention = retention;
        self
    }

    /// The CRM.
    pub fn build(self) -> Crm {
        let mut crm = self.crm;
        // The default queue is made here, so that it runs on the clock finally chosen.
        crm.jobs = self.jobs.unwrap_or_else(|| Arc::new(StorageJobQueue::new(crm.storage.clone(), crm.clock.clone())));
        crm
    }
}

impl Crm {
    /// The storage underneath (for readiness checks and the outbox worker).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The queue services enqueue background jobs on, after their commit.
    pub fn jobs(&self) -> &Arc<dyn JobQueue> {
        &self.jobs
    }

    /// Now, by the CRM's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today's date in the tenant's time zone, by the CRM's clock: the one source of
    /// "today" for every document date, number year, due date, validity, overdue
    /// filter and report.
    ///
    /// Reads the tenant's settings each time (one point read, only in calls that need a
    /// date) rather than caching them: several servers may share one database, and a
    /// changed zone takes effect on the next call everywhere.
    pub async fn today(&self, tenant: TenantId) -> Result<NaiveDate> {
        let now = self.now();
        Ok(self.settings_of(tenant, now).await?.time_zone.date_at(now))
    }

    /// The tenant's settings, or the defaults while none are stored.
    pub(crate) async fn settings_of(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<TenantSettings> {
        match self.storage.get(tenant, EntityKind::TenantSettings, tenant.0).await? {
            Some(stored) => from_stored(stored),
            None => Ok(TenantSettings::defaults(tenant, now)),
        }
    }

    /// Hashes a password by the CRM's policy, through its offload.
    pub(crate) async fn hash_password(&self, password: &str) -> Result<PasswordHashString> {
        let (policy, password) = (self.passwords.clone(), password.to_owned());
        offloaded(&*self.offload, PasswordWork::Hash(policy.cost()), move || policy.hash(&password)).await?
    }

    /// Checks a password against a stored hash, through the CRM's offload.
    pub(crate) async fn verify_password(&self, password: &str, hash: &PasswordHashString) -> Result<bool> {
        let (policy, password, hash) = (self.passwords.clone(), password.to_owned(), hash.clone());
        offloaded(&*self.offload, PasswordWork::Verify(hash.cost()), move || policy.verify(&password, &hash)).await
    }

    /// Spends on `password` the one verification a real account's wrong password costs,
    /// against the policy's dummy hash, for sign-ins to no account: its time does not
    /// tell that the email is unknown.
    pub(crate) async fn verify_password_for_nobody(&self, password: &str) -> Result<()> {
        let dummy = self.passwords.dummy_hash()?;
        self.verify_password(password, &dummy).await.map(|_| ())
    }

    /// Fresh metadata for a record the principal creates.
    pub(crate) fn new_meta(&self, tenant: TenantId) -> Meta {
        Meta::new(tenant, self.now())
    }

    /// Refuses the call unless the principal has some right to `action` on `resource`.
    pub(crate) fn authorize(&self, p: &Principal, resource: Resource, action: Action) -> Result<Access> {
        match p.access(resource, action) {
            Access::Denied => Err(CrmError::Forbidden(format!(
                "{} may not {} {}",
                p.role().as_str(),
                format!("{action:?}").to_lowercase(),
                resource
            ))),
            reach => Ok(reach),
        }
    }

    /// Whether a right of reach `access` covers this record.
    pub(crate) fn covers<E: Entity>(p: &Principal, access: Access, record: &E) -> bool {
        match access {
            Access::Denied => false,
            Access::Tenant => true,
            Access::Own => record.owners().contains(&p.user_uuid()),
            Access::Company => p.company_uuid().is_some_and(|c| record.company() == Some(c)),
        }
    }

    /// Loads a record of the principal's tenant, `NotFound` if absent.
    pub(crate) async fn fetch<E: Entity>(&self, tenant: TenantId, id: Id<E>) -> Result<E> {
        self.fetch_opt(tenant, id).await?.ok_or(CrmError::NotFound { kind: E::KIND, id: id.uuid() })
    }

    /// Every record of `tenant` and `E`'s kind that matches `filters`, page by page
    /// (for sets that stay small: a tenant's admins, endpoints, one endpoint's log).
    pub(crate) async fn list_all<E: Entity>(&self, tenant: TenantId, filters: Vec<Filter>) -> Result<Vec<E>> {
        let mut query = ListQuery { limit: PageRequest::MAX_LIMIT, ..ListQuery::filtered(filters) };
        let mut all = Vec::new();
        loop {
            let page = self.storage.list(tenant, E::KIND, &query).await?;
            for stored in page.items {
                all.push(from_stored(stored)?);
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Deletes up to `limit` records of `tenant` and `kind` that match `filters`, in one
    /// write, each at the version read; says how many. A record changed or deleted
    /// meanwhile fails the write, which then deletes nothing (0): the next run takes
    /// them. For purges of what expired.
    pub(crate) async fn delete_matching(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        filters: Vec<Filter>,
        limit: usize,
    ) -> Result<u64> {
        let query = ListQuery { limit, ..ListQuery::filtered(filters) };
        let found = self.storage.list(tenant, kind, &query).await?;
        let mut batch = WriteBatch::default();
        for stored in &found.items {
            batch.ops.push(WriteOp::Delete { kind, id: stored.id, expected_version: stored.version });
        }
        if batch.is_empty() {
            return Ok(0);
        }
        match self.storage.commit(tenant, batch).await {
            Ok(()) => Ok(found.items.len() as u64),
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds to `batch` a notification telling `user` about `entity` at `now`, and its
    /// `notification.created` event (what the user's live stream shows).
    pub(crate) fn notify_into<E: Entity>(
        &self,
        batch: &mut WriteBatch,
        tenant: TenantId,
        user: Uuid,
        entity: &E,
        title: String,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (entity_kind, entity_id) = (E::KIND, entity.meta().id);
        let notice =
            AssignmentNotice { meta: Meta::new(tenant, now), user, title: title.clone(), entity_kind, entity_id };
        let record = (self.journal.notice)(notice)?;
        let payload = Notified { user_id: user, title, entity_kind, entity_id };
        batch.events.push(OutboxEvent {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            name: format!("{}.{}", EntityKind::Notification, payload.action()),
            entity_kind: EntityKind::Notification,
            entity_id: record.id,
            payload: tree(&payload)?,
            occurred_at: now,
        });
        batch.ops.push(WriteOp::Insert(record));
        Ok(())
    }

    /// Loads a record of `tenant`, if it exists.
    pub(crate) async fn fetch_opt<E: Entity>(&self, tenant: TenantId, id: Id<E>) -> Result<Option<E>> {
        self.storage.get(tenant, E::KIND, id.uuid()).await?.map(from_stored).transpose()
    }

    /// Loads those of `ids` that exist in `tenant`, in one storage call, by id.
    pub(crate) async fn fetch_many<E: Entity>(&self, tenant: TenantId, ids: &[Uuid]) -> Result<HashMap<Uuid, E>> {
        let stored = self.storage.get_many(tenant, E::KIND, ids).await?;
        stored.into_iter().map(|s| Ok((s.id, from_stored(s)?))).collect()
    }

    /// Loads a record the principal may read; records it may not see are `NotFound`,
    /// so ids of other companies or tenants reveal nothing.
    pub(crate) async fn read<E: Entity>(&self, p: &Principal, id: Id<E>) -> Result<E> {
        let access = self.authorize(p, E::RESOURCE, Action::Read)?;
        let record = self.fetch(p.tenant_id(), id).await?;
        if Self::covers(p, access, &record) {
            Ok(record)
        } else {
            Err(CrmError::NotFound { kind: E::KIND, id: id.uuid() })
        }
    }

    /// Loads a record for a change: readable, the right reaches it, and still at
    /// `expected_version` when one is given.
    pub(crate) async fn load_for<E: Entity>(
        &self,
        p: &Principal,
        id: Id<E>,
        action: Action,
        expected_version: Option<u64>,
    ) -> Result<E> {
        let access = self.authorize(p, E::RESOURCE, action)?;
        let record = self.read(p, id).await?;
        if !Self::covers(p, access, &record) {
            return Err(CrmError::Forbidden(format!(
                "{} may only {action:?} its own {}",
                p.role().as_str(),
                E::RESOURCE
            )));
        }
        if expected_version.is_some_and(|v| v != record.meta().version) {
            return Err(CrmError::Conflict { kind: E::KIND, id: id.uuid() });
        }
        Ok(record)
    }

    /// Lists records the principal may read: the read right's reach becomes a filter.
    pub(crate) async fn list<E: Entity>(
        &self,
        p: &Principal,
        mut filters: Vec<Filter>,
        page: &PageRequest,
    ) -> Result<Page<E>> {
        match self.authorize(p, E::RESOURCE, Action::Read)? {
            // `authorize` has already refused `Denied`.
            Access::Tenant | Access::Denied => {}
            Access::Own => match E::OWNER_FIELD {
                Some(field) => filters.push(Filter::eq(field, p.user_uuid())),
                None => return Err(CrmError::Forbidden(format!("{} may not list {}", p.role().as_str(), E::RESOURCE))),
            },
            Access::Company => filters.push(Filter::eq("company_id", p.company_uuid())),
        }
        let query = page.to_query::<E>(filters)?;
        let stored = self.storage.list(p.tenant_id(), E::KIND, &query).await?;
        stored.try_map(from_stored)
    }

    /// Deletes a record the principal may delete (refused while others reference it).
    pub(crate) async fn delete<E: Entity>(
        &self,
        p: &Principal,
        id: Id<E>,
        expected_version: Option<u64>,
    ) -> Result<()> {
        let record: E = self.load_for(p, id, Action::Delete, expected_version).await?;
        let mut tx = self.tx(p);
        tx.delete(&record)?;
        tx.commit().await
    }

    /// A unit of work acting as `p`.
    pub(crate) fn tx<'a>(&'a self, p: &'a Principal) -> Tx<'a> {
        Tx { crm: self, principal: p, batch: WriteBatch::default(), now: self.now() }
    }
}

/// Paging, order and search of a listing, as a caller asks for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// The `next_cursor` token of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to [`PageRequest::MAX_LIMIT`]; default [`PageRequest::DEFAULT_LIMIT`].
    pub limit: Option<usize>,
    /// A sortable field of the entity; default: creation order.
    pub sort: Option<String>,
    /// Reverse the order.
    pub descending: bool,
    /// Case-insensitive text search over the entity's searchable fields.
    pub search: Option<String>,
    /// Also count all matching rows.
    pub with_total: bool,
}

impl PageRequest {
    /// Rows per page when none is asked for.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The most rows one page may hold.
    pub const MAX_LIMIT: usize = 500;

    /// The first page of `limit` rows.
    pub fn first(limit: usize) -> Self {
        Self { limit: Some(limit), ..Self::default() }
    }

    /// The page after one that returned `next`.
    pub fn after(&self, next: &Cursor) -> Self {
        Self { cursor: Some(next.encode()), ..self.clone() }
    }

    /// Validates against entity `E` and builds the storage query.
    pub(crate) fn to_query<E: Entity>(&self, filters: Vec<Filter>) -> Result<ListQuery> {
        let mut v = crate::error::Validator::new();
        let limit = self.limit.unwrap_or(Self::DEFAULT_LIMIT);
        v.check((1..=Self::MAX_LIMIT).contains(&limit), "limit", format!("must be between 1 and {}", Self::MAX_LIMIT));
        let sort_field = match self.sort.as_deref() {
            None | Some("id") => None,
            Some(s) => match fields::sortable(E::FIELDS).find(|f| *f == s) {
                Some(f) => Some(f),
                None => {
                    let names: Vec<&str> = fields::sortable(E::FIELDS).collect();
                    v.push("sort", format!("must be one of: id, {}", names.join(", ")));
                    None
                }
            },
        };
        let after = match self.cursor.as_deref() {
            None => None,
            Some(token) => {
                // A cursor of another order (or a crafted one) would compare values of
                // another type with the sort column: refused here, never a storage error.
                let cursor = Cursor::decode(token).filter(|c| match sort_field {
                    None => c.value == FieldValue::Null,
                    Some(name) => E::FIELDS.iter().any(|f| f.name == name && f.ty.admits(&c.value)),
                });
                v.check(cursor.is_some(), "cursor", "is not a cursor returned by this listing");
                cursor
            }
        };
        let search = match self.search.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(term) => {
                let searched = fields::searchable(E::FIELDS);
                v.check(!searched.is_empty(), "search", "this listing has no text search");
                v.check(term.chars().count() <= 200, "search", "must be at most 200 characters");
                Some(TextSearch { fields: searched, term: term.to_lowercase() })
            }
        };
        v.finish()?;
        Ok(ListQuery {
            filters,
            search,
            sort: Sort { field: sort_field, descending: self.descending },
            after,
            limit,
            with_total: self.with_total,
        })
    }
}

/// Everything one service call writes: records, their audit entries, notifications,
/// counters and outbox events, committed in one atomic batch.
pub(crate) struct Tx<'a> {
    crm: &'a Crm,
    principal: &'a Principal,
    batch: WriteBatch,
    now: DateTime<Utc>,
}

impl Tx<'_> {
    /// The instant the unit of work stamps its records with.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Creates a record (audited as `<kind>.created`).
    pub(crate) fn insert<E: Entity>(&mut self, entity: &E) -> Result<()> {
        let record = to_record(entity)?;
        self.audit::<E>(entity.meta().id, "created", json!({ "after": redact::<E>(&tree(entity)?) }))?;
        self.batch.ops.push(WriteOp::Insert(record));
        Ok(())
    }

    /// Writes `after` over `before` (audited with the changed fields as `<kind>.<action>`).
    /// Stamps `after` with the next version and the unit's time.
    pub(crate) fn update_as<E: Entity>(&mut self, action: &str, before: &E, after: &mut E) -> Result<()> {
        let update = stamp_update(before, after, self.now)?;
        let WriteOp::Update { record, .. } = &update else { unreachable!("stamp_update makes updates") };
        let changes = diff(&redact::<E>(&tree(before)?), &redact::<E>(&tree(&*after)?));
        self.audit::<E>(record.id, action, json!({ "changes": changes }))?;
        self.batch.ops.push(update);
        Ok(())
    }

    /// [`Tx::update_as`] audited as `<kind>.updated`.
    pub(crate) fn update<E: Entity>(&mut self, before: &E, after: &mut E) -> Result<()> {
        self.update_as("updated", before, after)
    }

    /// Deletes a record (audited as `<kind>.deleted` with its last state).
    pub(crate) fn delete<E: Entity>(&mut self, entity: &E) -> Result<()> {
        self.audit::<E>(entity.meta().id, "deleted", json!({ "before": redact::<E>(&tree(entity)?) }))?;
        let meta = entity.meta();
        self.batch.ops.push(WriteOp::Delete { kind: E::KIND, id: meta.id, expected_version: meta.version });
        Ok(())
    }

    /// Fails the commit unless `entity` is still at the version read.
    pub(crate) fn check<E: Entity>(&mut self, entity: &E) {
        self.batch.ops.push(WriteOp::Check { kind: E::KIND, id: entity.meta().id, version: entity.meta().version });
    }

    /// Advances a counter read as `expected` to `new`.
    pub(crate) fn counter(&mut self, key: String, expected: u64, new: u64) {
        self.batch.counters.push(CounterUpdate { key, expected, new });
    }

    /// Records a domain event about `entity` in the outbox, named `<kind>.<action>`
    /// after the payload's action.
    pub(crate) fn event<E: Entity>(&mut self, entity: &E, payload: &impl EventPayload) -> Result<()> {
        let name = format!("{}.{}", E::KIND, payload.action());
        let payload = tree(payload)?;
        self.batch.events.push(OutboxEvent {
            id: Uuid::now_v7(),
            tenant_id: self.principal.tenant_id(),
            name,
            entity_kind: E::KIND,
            entity_id: entity.meta().id,
            payload,
            occurred_at: self.now,
        });
        Ok(())
    }

    /// Tells `user` that `entity` was assigned to them, unless they assigned it themselves.
    pub(crate) fn notify_assigned<E: Entity>(&mut self, user: Uuid, entity: &E, title: String) -> Result<()> {
        if user == self.principal.user_uuid() {
            return Ok(());
        }
        self.notify(user, entity, title)?;
        self.event(entity, &Assigned { user_id: user })
    }

    /// Tells `user` about `entity` with a notification.
    pub(crate) fn notify<E: Entity>(&mut self, user: Uuid, entity: &E, title: String) -> Result<()> {
        self.crm.notify_into(&mut self.batch, self.principal.tenant_id(), user, entity, title, self.now)
    }

    fn audit<E: Entity>(&mut self, entity_id: Uuid, action: &str, changes: Value) -> Result<()> {
        if matches!(E::KIND, EntityKind::AuditLog | EntityKind::Notification) {
            return Ok(());
        }
        let fact = AuditFact {
            meta: Meta::new(self.principal.tenant_id(), self.now),
            actor: Some(self.principal.user_uuid()).filter(|user| !user.is_nil()),
            api_key: self.principal.api_key_uuid(),
            action: format!("{}.{action}", E::KIND),
            entity_kind: E::KIND,
            entity_id,
            changes,
        };
        self.batch.ops.push(WriteOp::Insert((self.crm.journal.audit)(fact)?));
        Ok(())
    }

    /// Commits everything at once. A batch that changes users or API keys drops their
    /// cached principals.
    pub(crate) async fn commit(self) -> Result<()> {
        let (mut users, mut keys) = (Vec::new(), Vec::new());
        for op in &self.batch.ops {
            let (kind, id) = match op {
                WriteOp::Insert(record) | WriteOp::Update { record, .. } => (record.kind, record.id),
                WriteOp::Delete { kind, id, .. } => (*kind, *id),
                WriteOp::Check { .. } => continue,
            };
            match kind {
                EntityKind::User => users.push(id),
                EntityKind::ApiKey => keys.push(id),
                _ => {}
            }
        }
        let committed = self.crm.storage.commit(self.principal.tenant_id(), self.batch).await;
        if !users.is_empty() || !keys.is_empty() {
            self.crm
                .principals
                .invalidate(|p| users.contains(&p.user_uuid()) || p.api_key_uuid().is_some_and(|k| keys.contains(&k)));
        }
        Ok(committed?)
    }
}

/// The write of `after` over `before`: stamps `after` with the next version and `now`,
/// and names the version read. What the core writes without a principal (a worker's
/// bookkeeping, which is not audited) uses it directly; everything else goes through
/// [`Tx::update_as`].
pub(crate) fn stamp_update<E: Entity>(before: &E, after: &mut E, now: DateTime<Utc>) -> Result<WriteOp> {
    let expected_version = before.meta().version;
    let meta = after.meta_mut();
    meta.version = expected_version + 1;
    meta.updated_at = now;
    Ok(WriteOp::Update { record: to_record(after)?, expected_version })
}

/// A value as a JSON tree, for audit entries and event payloads (an entity is
/// serialized directly, not re-parsed from its record's text).
fn tree(value: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| CrmError::Internal(e.to_string()))
}

/// A JSON object without the entity's secret fields and without its metadata.
fn redact<E: Entity>(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "meta" && !E::SECRET_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `{field: {from, to}}` for every top-level field that differs.
fn diff(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let (b, a) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let mut out = Map::new();
    for key in b.keys().chain(a.keys().filter(|k| !b.contains_key(*k))) {
        let (from, to) = (b.get(key).unwrap_or(&Value::Null), a.get(key).unwrap_or(&Value::Null));
        if from != to {
            out.insert(key.clone(), json!({ "from": from, "to": to }));
        }
    }
    Value::Object(out)
}

/// How many records a scheduled job reads per page.
pub(crate) const JOB_PAGE: usize = 100;

/// `None` for a result that failed because its record moved meanwhile (changed,
/// decided, deleted): for jobs that act on many records and retry on their next run.
pub(crate) fn unless_moved<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(CrmError::Conflict { .. } | CrmError::InvalidTransition { .. } | CrmError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many times a server-side read-modify-write (payments, numbering) is retried
/// when a concurrent writer wins the race.
const CONFLICT_RETRIES: usize = 256;

/// Runs `attempt` again while it fails with a version conflict on one of `racing`
/// (record kinds, or [`EntityKind::Tenant`] for document counters), yielding in between
/// so the winner can finish. For decisions the server takes from fresh state (payments
/// against a balance, the next document number); a conflict on anything else, such as
/// a stale version the caller sent, is returned at once.
pub(crate) async fn retry_on_conflict<T, F, Fut>(racing: &[EntityKind], mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(CrmError::Conflict { kind, .. }) if racing.contains(&kind) && tries < CONFLICT_RETRIES => {
                tries += 1;
                YieldNow(false).await;
            }
            other => return other,
        }
    }
}

/// Yields to the executor once (runtime-agnostic).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Copies every field a patch sets (`Some`) onto a record; absent fields stay.
macro_rules! apply_patch {
    ($patch:expr => $target:ident { $($field:ident),* $(,)? }) => {{
        let patch = $patch;
        $( if let Some(value) = patch.$field { $target.$field = value; } )*
    }};
}
pub(crate) use apply_patch;

/// Builds a listing's filters from optional criteria: a criterion left out adds no
/// filter (unlike `Filter::eq(field, None)`, which matches absent values).
#[derive(Debug, Default)]
pub(crate) struct Filters(Vec<Filter>);

impl Filters {
    /// `field = value`, when a value is given.
    pub(crate) fn eq<V: Into<FieldValue>>(mut self, field: &'static str, value: Option<V>) -> Self {
        self.0.extend(value.map(|v| Filter::eq(field, v)));
        self
    }

    /// `field IN values`, when any are given.
    pub(crate) fn any_of<V: Into<FieldValue> + Copy>(mut self, field: &'static str, values: &[V]) -> Self {
        if !values.is_empty() {
            self.0.push(Filter::one_of(field, values.iter().map(|v| (*v).into())));
        }
        self
    }

    /// `from <= field < to`, each bound when given.
    pub(crate) fn range<V: Into<FieldValue>>(mut self, field: &'static str, from: Option<V>, to: Option<V>) -> Self {
        self.0.extend(from.map(|v| Filter::gte(field, v)));
        self.0.extend(to.map(|v| Filter::lt(field, v)));
        self
    }

    /// The filters.
    pub(crate) fn build(self) -> Vec<Filter> {
        self.0
    }
}
