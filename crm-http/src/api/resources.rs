//! Every resource under `/api/v1`, declared from the shared operations in `crud.rs`;
//! the few operations with inputs of their own are written out below.

use std::sync::Arc;

use chrono::NaiveDate;
use crm_core::{
    Id,
    access::api_keys::{ApiKey, NewApiKey},
    access::audit::AuditFilter,
    access::users::{NewUser, User, UserFilter, UserPatch},
    customers::companies::{CompanyFilter, CompanyPatch, NewCompany},
    customers::contacts::{ContactFilter, ContactPatch, NewContact},
    customers::deals::{Deal, DealFilter, DealPatch, DealStage, NewDeal},
    customers::leads::{ConvertLead, LeadFilter, LeadPatch, LeadStatus, NewLead},
    notifications::Notification,
    sales::delivery_notes::{DeliveryNoteFilter, NewDeliveryNote},
    sales::invoices::{InvoiceFilter, InvoicePatch, NewInvoice},
    sales::payments::{NewPayment, PaymentFilter},
    sales::products::{NewProduct, ProductCategory, ProductFilter, ProductPatch},
    sales::quotes::{NewQuote, QuoteFilter, QuotePatch},
    work::{
        milestones::{Milestone, MilestoneStatus},
        progress::ProjectProgress,
        projects::{NewProject, ProjectFilter, ProjectPatch, ProjectStatus},
        tasks::{NewTask, TaskFilter, TaskPatch, TaskStatus},
    },
};
use poem::web::Data;
use poem_openapi::{
    OpenApi,
    param::{Path, Query},
    payload::Json,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    api::{
        ApiTags,
        schema::{self, Body},
    },
    auth::Auth,
    context::AppCtx,
    error::ApiError,
    input,
    output::{self, Created, Fetched},
};

list_op!(
    UsersList,
    "/users",
    "ApiTags::Users",
    "Users of the tenant. Filters: `role`, `active`.",
    users,
    UserFilter,
    [role, active]
);
get_op!(UsersGet, "/users/:id", "ApiTags::Users", users);
create_op!(UsersCreate, "/users", "ApiTags::Users", users, create, NewUser);
update_op!(UsersUpdate, "/users/:id", "ApiTags::Users", users, UserPatch);
delete_op!(UsersDelete, "/users/:id", "ApiTags::Users", users);

list_op!(
    CompaniesList,
    "/companies",
    "ApiTags::Companies",
    "Companies. Filters: `owner_id`, `industry`.",
    companies,
    CompanyFilter,
    [owner_id, industry]
);
get_op!(CompaniesGet, "/companies/:id", "ApiTags::Companies", companies);
create_op!(CompaniesCreate, "/companies", "ApiTags::Companies", companies, create, NewCompany);
update_op!(CompaniesUpdate, "/companies/:id", "ApiTags::Companies", companies, CompanyPatch);
delete_op!(CompaniesDelete, "/companies/:id", "ApiTags::Companies", companies);

list_op!(
    ContactsList,
    "/contacts",
    "ApiTags::Contacts",
    "Contacts. Filters: `company_id`, `owner_id`, `email`, `created_from`, `created_to`.",
    contacts,
    ContactFilter,
    [company_id, owner_id, email, created_from, created_to]
);
get_op!(ContactsGet, "/contacts/:id", "ApiTags::Contacts", contacts);
create_op!(ContactsCreate, "/contacts", "ApiTags::Contacts", contacts, create, NewContact);
update_op!(ContactsUpdate, "/contacts/:id", "ApiTags::Contacts", contacts, ContactPatch);
delete_op!(ContactsDelete, "/contacts/:id", "ApiTags::Contacts", contacts);

list_op!(
    LeadsList,
    "/leads",
    "ApiTags::Leads",
    "Leads. Filters: `statuses` (comma-separated), `source`, `owner_id`, `min_score`, `created_from`, `created_to`.",
    leads,
    LeadFilter,
    [statuses, source, owner_id, min_score, created_from, created_to]
);
get_op!(LeadsGet, "/leads/:id", "ApiTags::Leads", leads);
create_op!(LeadsCreate, "/leads", "ApiTags::Leads", leads, create, NewLead);
update_op!(LeadsUpdate, "/leads/:id", "ApiTags::Leads", leads, LeadPatch);
delete_op!(LeadsDelete, "/leads/:id", "ApiTags::Leads", leads);
set_op!(
    LeadsStatus,
    "/leads/:id/status",
    "ApiTags::Leads",
    "Moves a lead along its funnel: `{\"status\": \"contacted\"}`.",
    leads,
    change_status,
    status: LeadStatus
);

list_op!(
    DealsList,
    "/deals",
    "ApiTags::Deals",
    "Deals. Filters: `stages` (comma-separated), `owner_id`, `company_id`, `contact_id`, `close_from`, `close_to`.",
    deals,
    DealFilter,
    [stages, owner_id, company_id, contact_id, close_from, close_to]
);
get_op!(DealsGet, "/deals/:id", "ApiTags::Deals", deals);
create_op!(DealsCreate, "/deals", "ApiTags::Deals", deals, create, NewDeal);
update_op!(DealsUpdate, "/deals/:id", "ApiTags::Deals", deals, DealPatch);
delete_op!(DealsDelete, "/deals/:id", "ApiTags::Deals", deals);

list_op!(
    QuotesList,
    "/quotes",
    "ApiTags::Quotes",
    "Quotes. Filters: `statuses`, `company_id`, `deal_id`, `owner_id`, `valid_from`, `valid_to`.",
    quotes,
    QuoteFilter,
    [statuses, company_id, deal_id, owner_id, valid_from, valid_to]
);
get_op!(QuotesGet, "/quotes/:id", "ApiTags::Quotes", quotes);
create_op!(QuotesCreate, "/quotes", "ApiTags::Quotes", quotes, create, NewQuote);
update_op!(QuotesUpdate, "/quotes/:id", "ApiTags::Quotes", quotes, QuotePatch);
delete_op!(QuotesDelete, "/quotes/:id", "ApiTags::Quotes", quotes);
action_op!(QuotesSend, "/quotes/:id/send", "ApiTags::Quotes", "Sends a draft quote.", quotes, send);
action_op!(QuotesReject, "/quotes/:id/reject", "ApiTags::Quotes", "Records the customer's refusal.", quotes, reject);

list_op!(
    InvoicesList,
    "/invoices",
    "ApiTags::Invoices",
    "Invoices. Filters: `statuses`, `company_id`, `owner_id`, `overdue`, `issued_from`, `issued_to`, `due_from`, `due_to`.",
    invoices,
    InvoiceFilter,
    [statuses, company_id, owner_id, overdue, issued_from, issued_to, due_from, due_to]
);
get_op!(InvoicesGet, "/invoices/:id", "ApiTags::Invoices", invoices);
create_op!(InvoicesCreate, "/invoices", "ApiTags::Invoices", invoices, create, NewInvoice);
update_op!(InvoicesUpdate, "/invoices/:id", "ApiTags::Invoices", invoices, InvoicePatch);
delete_op!(InvoicesDelete, "/invoices/:id", "ApiTags::Invoices", invoices);
action_op!(
    InvoicesIssue,
    "/invoices/:id/issue",
    "ApiTags::Invoices",
    "Issues a draft: it gets its number.",
    invoices,
    issue
);
action_op!(InvoicesCancel, "/invoices/:id/cancel", "ApiTags::Invoices", "Cancels an invoice.", invoices, cancel);

list_op!(
    PaymentsList,
    "/payments",
    "ApiTags::Payments",
    "Payments. Filters: `invoice_id`, `company_id`, `status`, `paid_from`, `paid_to`.",
    payments,
    PaymentFilter,
    [invoice_id, company_id, status, paid_from, paid_to]
);
get_op!(PaymentsGet, "/payments/:id", "ApiTags::Payments", payments);
create_op!(PaymentsCreate, "/payments", "ApiTags::Payments", payments, record, NewPayment);
action_op!(PaymentsVoid, "/payments/:id/void", "ApiTags::Payments", "Voids a payment.", payments, void);

list_op!(
    DeliveryNotesList,
    "/delivery-notes",
    "ApiTags::DeliveryNotes",
    "Delivery notes. Filters: `invoice_id`, `company_id`, `status`.",
    delivery_notes,
    DeliveryNoteFilter,
    [invoice_id, company_id, status]
);
get_op!(DeliveryNotesGet, "/delivery-notes/:id", "ApiTags::DeliveryNotes", delivery_notes);
create_op!(DeliveryNotesCreate, "/delivery-notes", "ApiTags::DeliveryNotes", delivery_notes, create, NewDeliveryNote);
delete_op!(DeliveryNotesDelete, "/delivery-notes/:id", "ApiTags::DeliveryNotes", delivery_notes);
action_op!(
    DeliveryNotesShip,
    "/delivery-notes/:id/ship",
    "ApiTags::DeliveryNotes",
    "Ships a note.",
    delivery_notes,
    ship
);
action_op!(
    DeliveryNotesDeliver,
    "/delivery-notes/:id/deliver",
    "ApiTags::DeliveryNotes",
    "Records the delivery.",
    delivery_notes,
    deliver
);

list_op!(
    ProjectsList,
    "/projects",
    "ApiTags::Projects",
    "Projects. Filters: `company_id`, `status`, `manager_id`.",
    projects,
    ProjectFilter,
    [company_id, status, manager_id]
);
get_op!(ProjectsGet, "/projects/:id", "ApiTags::Projects", projects);
create_op!(ProjectsCreate, "/projects", "ApiTags::Projects", projects, create, NewProject);
update_op!(ProjectsUpdate, "/projects/:id", "ApiTags::Projects", projects, ProjectPatch);
delete_op!(ProjectsDelete, "/projects/:id", "ApiTags::Projects", projects);
set_op!(
    ProjectsStatus,
    "/projects/:id/status",
    "ApiTags::Projects",
    "Changes a project's status: `{\"status\": \"active\"}`.",
    projects,
    set_status,
    status: ProjectStatus
);

get_op!(MilestonesGet, "/milestones/:id", "ApiTags::Milestones", milestones);
delete_op!(MilestonesDelete, "/milestones/:id", "ApiTags::Milestones", milestones);
set_op!(
    MilestonesStatus,
    "/milestones/:id/status",
    "ApiTags::Milestones",
    "Changes a milestone's status.",
    milestones,
    set_status,
    status: MilestoneStatus
);

list_op!(
    TasksList,
    "/tasks",
    "ApiTags::Tasks",
    "Tasks. Filters: `project_id`, `milestone_id`, `assignee_id`, `statuses`, `due_from`, `due_to`.",
    tasks,
    TaskFilter,
    [project_id, milestone_id, assignee_id, statuses, due_from, due_to]
);
get_op!(TasksGet, "/tasks/:id", "ApiTags::Tasks", tasks);
create_op!(TasksCreate, "/tasks", "ApiTags::Tasks", tasks, create, NewTask);
update_op!(TasksUpdate, "/tasks/:id", "ApiTags::Tasks", tasks, TaskPatch);
delete_op!(TasksDelete, "/tasks/:id", "ApiTags::Tasks", tasks);
set_op!(TasksStatus, "/tasks/:id/status", "ApiTags::Tasks", "Changes a task's status.", tasks, set_status, status: TaskStatus);
set_op!(
    TasksAssign,
    "/tasks/:id/assign",
    "ApiTags::Tasks",
    "Assigns a task (`null` unassigns).",
    tasks,
    assign,
    assignee_id: Option<Id<User>>
);

list_op!(
    ProductsList,
    "/products",
    "ApiTags::Products",
    "Products. Filters: `category_id`, `active`.",
    products,
    ProductFilter,
    [category_id, active]
);
get_op!(ProductsGet, "/products/:id", "ApiTags::Products", products);
create_op!(ProductsCreate, "/products", "ApiTags::Products", products, create, NewProduct);
update_op!(ProductsUpdate, "/products/:id", "ApiTags::Products", products, ProductPatch);
delete_op!(ProductsDelete, "/products/:id", "ApiTags::Products", products);

get_op!(CategoriesGet, "/product-categories/:id", "ApiTags::ProductCategories", product_categories);
delete_op!(CategoriesDelete, "/product-categories/:id", "ApiTags::ProductCategories", product_categories);
set_op!(
    CategoriesRename,
    "/product-categories/:id/rename",
    "ApiTags::ProductCategories",
    "Renames a category: `{\"name\": \"Hardware\"}`.",
    product_categories,
    rename,
    name: String
);
set_op!(
    CategoriesMove,
    "/product-categories/:id/move",
    "ApiTags::ProductCategories",
    "Moves a category under another (`null`: to the top); cycles are refused.",
    product_categories,
    move_to,
    parent_id: Option<Id<ProductCategory>>
);

list_op!(
    AuditLogsList,
    "/audit-logs",
    "ApiTags::AuditLogs",
    "The audit log (read only). Filters: `actor_id`, `entity_kind`, `entity_id`, `from`, `to`.",
    audit,
    AuditFilter,
    [actor_id, entity_kind, entity_id, from, to]
);
get_op!(AuditLogsGet, "/audit-logs/:id", "ApiTags::AuditLogs", audit);

get_op!(ApiKeysGet, "/api-keys/:id", "ApiTags::ApiKeys", api_keys);
delete_op!(ApiKeysDelete, "/api-keys/:id", "ApiTags::ApiKeys", api_keys);
action_op!(ApiKeysRevoke, "/api-keys/:id/revoke", "ApiTags::ApiKeys", "Revokes a key for good.", api_keys, revoke);

type Ctx<'a> = Data<&'a Arc<AppCtx>>;

/// Moves a deal to a stage.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StageChange {
    /// The stage to move to.
    stage: DealStage,
    /// Why the deal was lost (for `closed_lost`).
    lost_reason: Option<String>,
    /// The version read (or send `If-Match`).
    version: Option<u64>,
}

/// Input to create a milestone.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewMilestone {
    /// The project it belongs to.
    project_id: Uuid,
    /// Name.
    name: String,
    /// When it is due.
    due_date: Option<NaiveDate>,
}

/// Input to create a product category.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewCategory {
    /// Name.
    name: String,
    /// The parent category; the top level when absent or `null`.
    parent_id: Option<Id<ProductCategory>>,
}

/// Paging parameters, as the list operations take them.
fn paging(
    limit: Query<Option<u32>>,
    cursor: Query<Option<String>>,
    sort: Query<Option<String>>,
) -> crm_core::PageRequest {
    input::page_request(limit.0, cursor.0, sort.0, None, None)
}

/// Operations whose inputs are their own.
pub(crate) struct Specific;

#[OpenApi]
impl Specific {
    /// Converts a lead into a contact, and optionally a company and a deal, in one write.
    #[oai(path = "/leads/:id/convert", method = "post", tag = "ApiTags::Leads")]
    async fn convert_lead(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: poem_openapi::param::Header<Option<String>>,
        body: Json<Body<ConvertLead>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let input = body.0.decode_patch(if_match.0.as_deref())?;
        let done = ctx.crm.leads().convert(&caller.principal, id.0.into(), input).await?;
        let part = |r: Option<Value>| r.unwrap_or(Value::Null);
        Ok(output::data(json!({
            "lead": output::record_json(&done.lead)?.0,
            "contact": output::record_json(&done.contact)?.0,
            "company": part(done.company.as_ref().map(output::record_json).transpose()?.map(|(v, _)| v)),
            "deal": part(done.deal.as_ref().map(output::record_json).transpose()?.map(|(v, _)| v)),
        })))
    }

    /// Moves a deal to a stage: `{"stage": "closed_lost", "lost_reason": "price"}`.
    #[oai(path = "/deals/:id/stage", method = "post", tag = "ApiTags::Deals")]
    async fn deal_stage(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: poem_openapi::param::Header<Option<String>>,
        body: Json<Body<StageChange>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let input = body.0.decode_patch(if_match.0.as_deref())?;
        let deal = ctx
            .crm
            .deals()
            .change_stage(&caller.principal, id.0.into(), input.stage, input.lost_reason, input.version)
            .await?;
        output::one(&deal)
    }

    /// Accepts a sent quote: it becomes an invoice draft, returned with it.
    #[oai(path = "/quotes/:id/accept", method = "post", tag = "ApiTags::Quotes")]
    async fn accept_quote(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: poem_openapi::param::Header<Option<String>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let version = input::version_from_if_match(if_match.0.as_deref())?;
        let (quote, invoice) = ctx.crm.quotes().accept(&caller.principal, id.0.into(), version).await?;
        Ok(output::data(json!({
            "quote": output::record_json(&quote)?.0,
            "invoice": output::record_json(&invoice)?.0,
        })))
    }

    /// A project's task counts and progress.
    #[oai(path = "/projects/:id/progress", method = "get", tag = "ApiTags::Projects")]
    async fn project_progress(&self, ctx: Ctx<'_>, auth: Auth, id: Path<Uuid>) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let progress = ctx.crm.projects().progress(&caller.principal, id.0.into()).await?;
        Ok(output::data(output::value(&progress)?))
    }

    /// The milestones of one project (`project_id` is required).
    #[oai(path = "/milestones", method = "get", tag = "ApiTags::Milestones")]
    async fn list_milestones(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        project_id: Query<Uuid>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        sort: Query<Option<String>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let page = paging(limit, cursor, sort);
        let found = ctx.crm.milestones().list(&caller.principal, project_id.0.into(), &page).await?;
        output::page(found, &page)
    }

    /// Creates a milestone: `{"project_id": "…", "name": "Beta", "due_date": "2026-06-30"}`.
    #[oai(path = "/milestones", method = "post", tag = "ApiTags::Milestones")]
    async fn create_milestone(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        body: Json<Body<NewMilestone>>,
    ) -> Result<Created, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let input = body.0.decode()?;
        let milestone =
            ctx.crm.milestones().create(&caller.principal, input.project_id.into(), input.name, input.due_date).await?;
        output::created(&milestone)
    }

    /// Product categories under one parent (`parent_id`; the top level when absent).
    #[oai(path = "/product-categories", method = "get", tag = "ApiTags::ProductCategories")]
    async fn list_categories(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        parent_id: Query<Option<Uuid>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        sort: Query<Option<String>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let page = paging(limit, cursor, sort);
        let parent = parent_id.0.map(Id::from_uuid);
        let found = ctx.crm.product_categories().list(&caller.principal, parent, &page).await?;
        output::page(found, &page)
    }

    /// Creates a category: `{"name": "Hardware", "parent_id": null}`.
    #[oai(path = "/product-categories", method = "post", tag = "ApiTags::ProductCategories")]
    async fn create_category(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        body: Json<Body<NewCategory>>,
    ) -> Result<Created, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let input = body.0.decode()?;
        let category = ctx.crm.product_categories().create(&caller.principal, input.name, input.parent_id).await?;
        output::created(&category)
    }

    /// The caller's notifications (`unread_only=true` for the unread ones).
    #[oai(path = "/notifications", method = "get", tag = "ApiTags::Notifications")]
    async fn list_notifications(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        unread_only: Query<Option<bool>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        sort: Query<Option<String>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let page = paging(limit, cursor, sort);
        let unread = unread_only.0.unwrap_or(false);
        let found = ctx.crm.notifications().list(&caller.principal, unread, &page).await?;
        output::page(found, &page)
    }

    /// Marks one notification read.
    #[oai(path = "/notifications/:id/read", method = "post", tag = "ApiTags::Notifications")]
    async fn mark_read(&self, ctx: Ctx<'_>, auth: Auth, id: Path<Uuid>) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let notification = ctx.crm.notifications().mark_read(&caller.principal, id.0.into()).await?;
        output::one(&notification)
    }

    /// Marks every notification of the caller read; returns how many changed.
    #[oai(path = "/notifications/read-all", method = "post", tag = "ApiTags::Notifications")]
    async fn mark_all_read(&self, ctx: Ctx<'_>, auth: Auth) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let marked = ctx.crm.notifications().mark_all_read(&caller.principal).await?;
        Ok(output::data(json!({ "marked": marked })))
    }

    /// Deletes one of the caller's notifications.
    #[oai(path = "/notifications/:id", method = "delete", tag = "ApiTags::Notifications")]
    async fn delete_notification(&self, ctx: Ctx<'_>, auth: Auth, id: Path<Uuid>) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        ctx.crm.notifications().delete(&caller.principal, id.0.into()).await?;
        Ok(output::data(json!({ "id": id.0, "deleted": true })))
    }

    /// API keys, optionally of one owner (`owner_id`).
    #[oai(path = "/api-keys", method = "get", tag = "ApiTags::ApiKeys")]
    async fn list_api_keys(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        owner_id: Query<Option<Uuid>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        sort: Query<Option<String>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let page = paging(limit, cursor, sort);
        let owner = owner_id.0.map(Id::from_uuid);
        let found = ctx.crm.api_keys().list(&caller.principal, owner, &page).await?;
        output::page(found, &page)
    }

    /// Creates an API key; the response's `token` is shown this once only.
    #[oai(path = "/api-keys", method = "post", tag = "ApiTags::ApiKeys")]
    async fn create_api_key(&self, ctx: Ctx<'_>, auth: Auth, body: Json<Body<NewApiKey>>) -> Result<Created, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let input = body.0.decode()?;
        let (key, token) = ctx.crm.api_keys().create(&caller.principal, input).await?;
        let (mut data, version) = output::record_json(&key)?;
        if let Value::Object(map) = &mut data {
            map.insert("token".into(), Value::String(token));
        }
        Ok(output::created_value(data, version))
    }

    /// A report: `pipeline`, `win-rate`, `revenue-by-month`, `invoice-aging`,
    /// `overdue-totals`, `lead-conversion` or `top-products`. Date ranges as `from`
    /// and `to` (`YYYY-MM-DD`); `limit` for top products.
    #[oai(path = "/reports/:name", method = "get", tag = "ApiTags::Reports")]
    async fn report(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        name: Path<String>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
        limit: Query<Option<u32>>,
    ) -> Result<Fetched, ApiError> {
        let caller = ctx.caller(&auth).await?;
        let p = &caller.principal;
        let reports = ctx.crm.reports();
        let range = || -> Result<(NaiveDate, NaiveDate), ApiError> {
            match (from.0, to.0) {
                (Some(f), Some(t)) => Ok((f, t)),
                (None, _) => Err(ApiError::invalid("from", "is required for this report")),
                (_, None) => Err(ApiError::invalid("to", "is required for this report")),
            }
        };
        let data = match name.0.as_str() {
            "pipeline" => output::value(&reports.pipeline(p).await?)?,
            "win-rate" => output::value(&reports.win_rate(p, from.0, to.0).await?)?,
            "revenue-by-month" => {
                let (f, t) = range()?;
                output::value(&reports.revenue_by_month(p, f, t).await?)?
            }
            "invoice-aging" => output::value(&reports.invoice_aging(p).await?)?,
            "overdue-totals" => output::value(&reports.overdue_totals(p).await?)?,
            "lead-conversion" => output::value(&reports.lead_conversion(p).await?)?,
            "top-products" => {
                let (f, t) = range()?;
                let n = limit.0.unwrap_or(10) as usize;
                output::value(&reports.top_products(p, f, t, n).await?)?
            }
            _ => {
                return Err(ApiError::not_found("unknown report; see the operation's description for the names"));
            }
        };
        Ok(output::data(data))
    }
}

/// Every resource operation, grouped for `OpenApiService` (tuples of at most 16).
pub(crate) fn all() -> impl OpenApi {
    (
        (UsersList, UsersGet, UsersCreate, UsersUpdate, UsersDelete),
        (CompaniesList, CompaniesGet, CompaniesCreate, CompaniesUpdate, CompaniesDelete),
        (ContactsList, ContactsGet, ContactsCreate, ContactsUpdate, ContactsDelete),
        (LeadsList, LeadsGet, LeadsCreate, LeadsUpdate, LeadsDelete, LeadsStatus),
        (DealsList, DealsGet, DealsCreate, DealsUpdate, DealsDelete),
        (QuotesList, QuotesGet, QuotesCreate, QuotesUpdate, QuotesDelete, QuotesSend, QuotesReject),
        (InvoicesList, InvoicesGet, InvoicesCreate, InvoicesUpdate, InvoicesDelete, InvoicesIssue, InvoicesCancel),
        (PaymentsList, PaymentsGet, PaymentsCreate, PaymentsVoid),
        (
            DeliveryNotesList,
            DeliveryNotesGet,
            DeliveryNotesCreate,
            DeliveryNotesDelete,
            DeliveryNotesShip,
            DeliveryNotesDeliver,
        ),
        (ProjectsList, ProjectsGet, ProjectsCreate, ProjectsUpdate, ProjectsDelete, ProjectsStatus),
        (MilestonesGet, MilestonesDelete, MilestonesStatus),
        (TasksList, TasksGet, TasksCreate, TasksUpdate, TasksDelete, TasksStatus, TasksAssign),
        (ProductsList, ProductsGet, ProductsCreate, ProductsUpdate, ProductsDelete),
        (CategoriesGet, CategoriesDelete, CategoriesRename, CategoriesMove),
        (AuditLogsList, AuditLogsGet, ApiKeysGet, ApiKeysDelete, ApiKeysRevoke),
        TypedSpecific,
    )
}

/// [`Specific`], its responses' `data` described where it is a record or a page.
struct TypedSpecific;

/// The operations of [`Specific`] whose `data` is one record (`One`) or a page (`Page`).
macro_rules! specific_data {
    ($($path:literal $method:ident => $data:ty, $shape:ident;)*) => {
        impl OpenApi for TypedSpecific {
            fn meta() -> Vec<poem_openapi::registry::MetaApi> {
                let apis = Specific::meta();
                $(
                    let envelope = schema::envelope_name::<$data>(schema::Data::$shape);
                    let apis = schema::with_data_at(apis, $path, &poem::http::Method::$method, &envelope);
                )*
                apis
            }
            fn register(registry: &mut poem_openapi::registry::Registry) {
                Specific::register(registry);
                $(schema::register_envelope::<$data>(registry, schema::Data::$shape);)*
            }
            fn add_routes(
                self,
                route_table: &mut std::collections::HashMap<
                    String,
                    std::collections::HashMap<poem::http::Method, poem::endpoint::BoxEndpoint<'static>>,
                >,
            ) {
                Specific.add_routes(route_table);
            }
        }
    };
}

specific_data! {
    "/deals/{id}/stage" POST => Deal, One;
    "/projects/{id}/progress" GET => ProjectProgress, One;
    "/milestones" GET => Milestone, Page;
    "/milestones" POST => Milestone, One;
    "/product-categories" GET => ProductCategory, Page;
    "/product-categories" POST => ProductCategory, One;
    "/notifications" GET => Notification, Page;
    "/notifications/{id}/read" POST => Notification, One;
    "/api-keys" GET => ApiKey, Page;
}
