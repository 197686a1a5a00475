//! Every resource under `/api/v1` except auth, reports and the API's own information:
//! one `resource!` declaration each (see `resource.rs`), its own operations written out
//! under `extra`. Notifications share no operation with the others and are a plain
//! `#[OpenApi]` impl.

use std::sync::Arc;

use chrono::NaiveDate;
use crm_core::{
    Id,
    access::api_keys::{ApiKey, NewApiKey},
    access::audit::{AuditFilter, AuditLog},
    access::users::{NewUser, User, UserFilter, UserPatch},
    customers::companies::{Company, CompanyFilter, CompanyPatch, NewCompany},
    customers::contacts::{Contact, ContactFilter, ContactPatch, NewContact},
    customers::deals::{Deal, DealFilter, DealPatch, DealStage, NewDeal},
    customers::leads::{ConvertLead, Lead, LeadFilter, LeadPatch, LeadStatus, NewLead},
    notifications::Notification,
    sales::credit_notes::{CreditNote, CreditNoteFilter, NewCreditNote},
    sales::delivery_notes::{DeliveryNote, DeliveryNoteFilter, NewDeliveryNote},
    sales::invoices::{Invoice, InvoiceFilter, InvoicePatch, NewInvoice},
    sales::payments::{NewPayment, Payment, PaymentFilter},
    sales::products::{NewProduct, Product, ProductCategory, ProductFilter, ProductPatch},
    sales::quotes::{NewQuote, Quote, QuoteFilter, QuotePatch},
    sales::refunds::{NewRefund, Refund, RefundFilter},
    webhooks::{
        deliveries::WebhookDelivery,
        endpoints::{NewWebhookEndpoint, WebhookEndpoint, WebhookEndpointPatch},
    },
    work::{
        closing::ProjectStatusChange,
        milestones::{Milestone, MilestoneStatus},
        progress::ProjectProgress,
        projects::{NewProject, Project, ProjectFilter, ProjectPatch, ProjectStatus},
        tasks::{NewTask, Task, TaskFilter, TaskPatch, TaskStatus},
    },
};
use poem::web::Data;
use poem_openapi::{
    OpenApi,
    param::{Header, Path, Query},
};
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    api::{
        ApiTags,
        results::{AcceptedQuote, ConvertedLead, CreatedApiKey, Deleted, MarkedRead, PasswordReset, WebhookWithSecret},
        schema::Body,
    },
    auth::Auth,
    context::AppCtx,
    error::{ApiError, BodilessError},
    input,
    output::{self, Created, Done, Listed, One, Shown},
};

type Ctx<'a> = Data<&'a Arc<AppCtx>>;

/// Paging parameters, as the list operations take them.
fn paging(
    limit: Query<Option<u32>>,
    cursor: Query<Option<String>>,
    sort: Query<Option<String>>,
) -> crm_core::PageRequest {
    input::page_request(limit.0, cursor.0, sort.0, None, None)
}

resource! {
    /// Users of the tenant.
    UsersApi at "/users", tag "ApiTags::Users", service users, record User;
    list "listUsers" "Users of the tenant.", filter UserFilter;
    get "getUser";
    create "createUser": create(NewUser);
    update "updateUser"(UserPatch);
    delete "deleteUser";
    extra {
        /// Sets a user's password (admins only, never through an API key) and revokes
        /// every session of that user.
        #[oai(path = "/:id/reset-password", method = "post", operation_id = "resetUserPassword")]
        async fn reset_password(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            body: Body<ResetPasswordRequest>,
        ) -> Result<Done<PasswordReset>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<User>(&caller, crm_core::authz::Action::Update)?;
            let input: ResetPasswordRequest = body.decode()?;
            ctx.crm.users().reset_password(&caller.principal, Id::from_uuid(id.0), &input.new_password).await?;
            output::done(&PasswordReset { reset: true })
        }
    }
}

/// An admin's new password for a user.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordRequest {
    /// The new password (8 to 1024 characters).
    #[schemars(extend("writeOnly" = true))]
    new_password: String,
}

resource! {
    /// Customer companies.
    CompaniesApi at "/companies", tag "ApiTags::Companies", service companies, record Company;
    list "listCompanies" "Companies.", filter CompanyFilter;
    get "getCompany";
    create "createCompany": create(NewCompany);
    update "updateCompany"(CompanyPatch);
    delete "deleteCompany";
}

resource! {
    /// Contacts.
    ContactsApi at "/contacts", tag "ApiTags::Contacts", service contacts, record Contact;
    list "listContacts" "Contacts.", filter ContactFilter;
    get "getContact";
    create "createContact": create(NewContact);
    update "updateContact"(ContactPatch);
    delete "deleteContact";
}

resource! {
    /// Leads and their conversion.
    LeadsApi at "/leads", tag "ApiTags::Leads", service leads, record Lead;
    list "listLeads" "Leads (`statuses` comma-separated).",
        filter LeadFilter;
    get "getLead";
    create "createLead": create(NewLead);
    update "updateLead"(LeadPatch);
    delete "deleteLead";
    set change_status "/:id/status" "changeLeadStatus" "Moves a lead along its funnel: `{\"status\": \"contacted\"}`.",
        LeadsStatusBody { status: LeadStatus };
    extra {
        /// Converts a lead into a contact, and optionally a company and a deal, in one write.
        #[oai(path = "/:id/convert", method = "post", operation_id = "convertLead")]
        async fn convert(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            /// The `ETag` of the version read.
            #[oai(name = "If-Match")]
            if_match: Header<Option<String>>,
            body: Body<ConvertLead>,
        ) -> Result<Done<ConvertedLead>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<Lead>(&caller, crm_core::authz::Action::Update)?;
            let input = body.decode_patch(if_match.0.as_deref(), ctx.versions)?;
            let done = ctx.crm.leads().convert(&caller.principal, id.0.into(), input).await?;
            output::done(&ConvertedLead {
                lead: Shown::of(&done.lead)?,
                contact: Shown::of(&done.contact)?,
                company: done.company.as_ref().map(Shown::of).transpose()?,
                deal: done.deal.as_ref().map(Shown::of).transpose()?,
            })
        }
    }
}

/// Moves a deal to a stage.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StageChange {
    /// The stage to move to.
    stage: DealStage,
    /// Why the deal was lost (for `closed_lost`).
    #[schemars(length(min = 1, max = crm_core::Validator::PARAGRAPH_MAX))]
    lost_reason: Option<String>,
    /// The version read (or send `If-Match`).
    version: Option<u64>,
}

resource! {
    /// Deals and their stages.
    DealsApi at "/deals", tag "ApiTags::Deals", service deals, record Deal;
    list "listDeals" "Deals (`stages` comma-separated).",
        filter DealFilter;
    get "getDeal";
    create "createDeal": create(NewDeal);
    update "updateDeal"(DealPatch);
    delete "deleteDeal";
    extra {
        /// Moves a deal to a stage: `{"stage": "closed_lost", "lost_reason": "price"}`.
        #[oai(path = "/:id/stage", method = "post", operation_id = "changeDealStage")]
        async fn change_stage(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            /// The `ETag` of the version read.
            #[oai(name = "If-Match")]
            if_match: Header<Option<String>>,
            body: Body<StageChange>,
        ) -> Result<One<Deal>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<Deal>(&caller, crm_core::authz::Action::Update)?;
            let input = body.decode_patch(if_match.0.as_deref(), ctx.versions)?;
            let deal = ctx
                .crm
                .deals()
                .change_stage(&caller.principal, id.0.into(), input.stage, input.lost_reason, input.version)
                .await?;
            output::one(&deal)
        }
    }
}

resource! {
    /// Quotes.
    QuotesApi at "/quotes", tag "ApiTags::Quotes", service quotes, record Quote;
    list "listQuotes" "Quotes (`statuses` comma-separated).",
        filter QuoteFilter;
    get "getQuote";
    create "createQuote": create(NewQuote);
    update "updateQuote"(QuotePatch);
    delete "deleteQuote";
    action send "/:id/send" "sendQuote" "Sends a draft quote.";
    action reject "/:id/reject" "rejectQuote" "Records the customer's refusal.";
    action expire "/:id/expire" "expireQuote" "Marks a sent quote as lapsed.";
    extra {
        /// Accepts a sent quote: it becomes an invoice draft, returned with it.
        #[oai(path = "/:id/accept", method = "post", operation_id = "acceptQuote")]
        async fn accept(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            /// The `ETag` of the version read.
            #[oai(name = "If-Match")]
            if_match: Header<Option<String>>,
        ) -> Result<Done<AcceptedQuote>, BodilessError> {
            let caller = auth.into_caller();
            let version = input::required_version(if_match.0.as_deref(), ctx.versions)?;
            let (quote, invoice) = ctx.crm.quotes().accept(&caller.principal, id.0.into(), version).await?;
            Ok(output::done(&AcceptedQuote { quote: Shown::of(&quote)?, invoice: Shown::of(&invoice)? })?)
        }
    }
}

resource! {
    /// Invoices.
    InvoicesApi at "/invoices", tag "ApiTags::Invoices", service invoices, record Invoice;
    list "listInvoices" "Invoices (`statuses` comma-separated).",
        filter InvoiceFilter;
    get "getInvoice";
    create "createInvoice": create(NewInvoice);
    update "updateInvoice"(InvoicePatch);
    delete "deleteInvoice";
    action issue "/:id/issue" "issueInvoice" "Issues a draft: it gets its number.";
    action cancel "/:id/cancel" "cancelInvoice" "Cancels an invoice.";
}

resource! {
    /// Payments.
    PaymentsApi at "/payments", tag "ApiTags::Payments", service payments, record Payment;
    list "listPayments" "Payments.", filter PaymentFilter;
    get "getPayment";
    create "recordPayment": record(NewPayment);
    action void "/:id/void" "voidPayment" "Voids a payment.";
}

resource! {
    /// Delivery notes.
    DeliveryNotesApi at "/delivery-notes", tag "ApiTags::DeliveryNotes", service delivery_notes, record DeliveryNote;
    list "listDeliveryNotes" "Delivery notes.", filter DeliveryNoteFilter;
    get "getDeliveryNote";
    create "createDeliveryNote": create(NewDeliveryNote);
    delete "deleteDeliveryNote";
    action ship "/:id/ship" "shipDeliveryNote" "Ships a note: it gets its number.";
    action deliver "/:id/deliver" "deliverDeliveryNote" "Records the delivery.";
}

/// A project's new status, and whether to close its open work with it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProjectsStatusBody {
    /// The new status.
    status: ProjectStatus,
    /// When completing or cancelling: also close open tasks (as done) and milestones
    /// (as completed). Without it, open work refuses the change (422).
    #[serde(default)]
    close_open_work: bool,
    /// The version read (or send `If-Match`).
    version: Option<u64>,
}

resource! {
    /// Credit notes: corrections of issued invoices, numbered when created; never
    /// changed or deleted.
    CreditNotesApi at "/credit-notes", tag "ApiTags::CreditNotes", service credit_notes, record CreditNote;
    list "listCreditNotes" "Credit notes.", filter CreditNoteFilter;
    get "getCreditNote";
    create "issueCreditNote": create(NewCreditNote);
}

resource! {
    /// Refunds of payments: records of their own; never changed or deleted.
    RefundsApi at "/refunds", tag "ApiTags::Refunds", service refunds, record Refund;
    list "listRefunds" "Refunds.", filter RefundFilter;
    get "getRefund";
    create "refundPayment": record(NewRefund);
}

resource! {
    /// Projects.
    ProjectsApi at "/projects", tag "ApiTags::Projects", service projects, record Project;
    list "listProjects" "Projects.", filter ProjectFilter;
    get "getProject";
    create "createProject": create(NewProject);
    update "updateProject"(ProjectPatch);
    delete "deleteProject";
    extra {
        /// Changes a project's status: `{"status": "completed"}`. Completing or
        /// cancelling a project with open tasks or milestones needs
        /// `"close_open_work": true`, which closes them in the same commit.
        #[oai(path = "/:id/status", method = "post", operation_id = "setProjectStatus")]
        async fn set_status(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            /// The `ETag` of the version read.
            #[oai(name = "If-Match")]
            if_match: Header<Option<String>>,
            body: Body<ProjectsStatusBody>,
        ) -> Result<One<Project>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<Project>(&caller, crm_core::authz::Action::Update)?;
            let input: ProjectsStatusBody = body.decode_patch(if_match.0.as_deref(), ctx.versions)?;
            let change = ProjectStatusChange { status: input.status, close_open_work: input.close_open_work };
            let changed = ctx.crm.projects().change_status(&caller.principal, id.0.into(), change, input.version).await?;
            output::one(&changed)
        }


        /// A project's task counts and progress.
        #[oai(path = "/:id/progress", method = "get", operation_id = "getProjectProgress")]
        async fn progress(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
        ) -> Result<Done<ProjectProgress>, BodilessError> {
            let caller = auth.into_caller();
            let progress = ctx.crm.projects().progress(&caller.principal, id.0.into()).await?;
            Ok(output::done(&progress)?)
        }
    }
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

resource! {
    /// Project milestones.
    MilestonesApi at "/milestones", tag "ApiTags::Milestones", service milestones, record Milestone;
    get "getMilestone";
    delete "deleteMilestone";
    set set_status "/:id/status" "setMilestoneStatus" "Changes a milestone's status.",
        MilestonesStatusBody { status: MilestoneStatus };
    extra {
        /// The milestones of one project (`project_id` is required).
        #[oai(path = "/", method = "get", operation_id = "listMilestones")]
        async fn list(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            project_id: Query<Uuid>,
            limit: Query<Option<u32>>,
            cursor: Query<Option<String>>,
            sort: Query<Option<String>>,
        ) -> Result<Listed<Milestone>, BodilessError> {
            let caller = auth.into_caller();
            let page = paging(limit, cursor, sort);
            let found = ctx.crm.milestones().list(&caller.principal, project_id.0.into(), &page).await?;
            Ok(output::page(found, &page)?)
        }

        /// Creates a milestone: `{"project_id": "…", "name": "Beta", "due_date": "2026-06-30"}`.
        #[oai(path = "/", method = "post", operation_id = "createMilestone")]
        async fn create(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            body: Body<NewMilestone>,
        ) -> Result<Created<Milestone>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<Milestone>(&caller, crm_core::authz::Action::Create)?;
            let input = body.decode()?;
            let milestone = ctx
                .crm
                .milestones()
                .create(&caller.principal, input.project_id.into(), input.name, input.due_date)
                .await?;
            output::created(&milestone)
        }
    }
}

resource! {
    /// Tasks.
    TasksApi at "/tasks", tag "ApiTags::Tasks", service tasks, record Task;
    list "listTasks" "Tasks (`statuses` comma-separated).",
        filter TaskFilter;
    get "getTask";
    create "createTask": create(NewTask);
    update "updateTask"(TaskPatch);
    delete "deleteTask";
    set set_status "/:id/status" "setTaskStatus" "Changes a task's status.", TasksStatusBody { status: TaskStatus };
    set assign "/:id/assign" "assignTask" "Assigns a task (`null` unassigns).",
        TasksAssignBody { assignee_id: Option<Id<User>> };
}

resource! {
    /// The product catalog.
    ProductsApi at "/products", tag "ApiTags::Products", service products, record Product;
    list "listProducts" "Products.", filter ProductFilter;
    get "getProduct";
    create "createProduct": create(NewProduct);
    update "updateProduct"(ProductPatch);
    delete "deleteProduct";
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

resource! {
    /// Product categories.
    CategoriesApi at "/product-categories", tag "ApiTags::ProductCategories", service product_categories,
        record ProductCategory;
    get "getProductCategory";
    delete "deleteProductCategory";
    set rename "/:id/rename" "renameProductCategory" "Renames a category: `{\"name\": \"Hardware\"}`.",
        CategoriesRenameBody { name: String };
    set move_to "/:id/move" "moveProductCategory"
        "Moves a category under another (`null`: to the top); cycles are refused.",
        CategoriesMoveBody { parent_id: Option<Id<ProductCategory>> };
    extra {
        /// Product categories under one parent (`parent_id`; the top level when absent).
        #[oai(path = "/", method = "get", operation_id = "listProductCategories")]
        async fn list(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            parent_id: Query<Option<Uuid>>,
            limit: Query<Option<u32>>,
            cursor: Query<Option<String>>,
            sort: Query<Option<String>>,
        ) -> Result<Listed<ProductCategory>, BodilessError> {
            let caller = auth.into_caller();
            let page = paging(limit, cursor, sort);
            let parent = parent_id.0.map(Id::from_uuid);
            let found = ctx.crm.product_categories().list(&caller.principal, parent, &page).await?;
            Ok(output::page(found, &page)?)
        }

        /// Creates a category: `{"name": "Hardware", "parent_id": null}`.
        #[oai(path = "/", method = "post", operation_id = "createProductCategory")]
        async fn create(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            body: Body<NewCategory>,
        ) -> Result<Created<ProductCategory>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<ProductCategory>(&caller, crm_core::authz::Action::Create)?;
            let input = body.decode()?;
            let category =
                ctx.crm.product_categories().create(&caller.principal, input.name, input.parent_id).await?;
            output::created(&category)
        }
    }
}

resource! {
    /// The audit log (read only).
    AuditLogsApi at "/audit-logs", tag "ApiTags::AuditLogs", service audit, record AuditLog;
    list "listAuditLogs" "The audit log (read only).",
        filter AuditFilter;
    get "getAuditLog";
}

resource! {
    /// API keys for integrations.
    ApiKeysApi at "/api-keys", tag "ApiTags::ApiKeys", service api_keys, record ApiKey;
    get "getApiKey";
    delete "deleteApiKey";
    action revoke "/:id/revoke" "revokeApiKey" "Revokes a key for good.";
    extra {
        /// API keys, optionally of one owner (`owner_id`).
        #[oai(path = "/", method = "get", operation_id = "listApiKeys")]
        async fn list(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            owner_id: Query<Option<Uuid>>,
            limit: Query<Option<u32>>,
            cursor: Query<Option<String>>,
            sort: Query<Option<String>>,
        ) -> Result<Listed<ApiKey>, BodilessError> {
            let caller = auth.into_caller();
            let page = paging(limit, cursor, sort);
            let owner = owner_id.0.map(Id::from_uuid);
            let found = ctx.crm.api_keys().list(&caller.principal, owner, &page).await?;
            Ok(output::page(found, &page)?)
        }

        /// Creates an API key; the response's `token` is shown this once only.
        #[oai(path = "/", method = "post", operation_id = "createApiKey")]
        async fn create(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            body: Body<NewApiKey>,
        ) -> Result<Created<CreatedApiKey>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<ApiKey>(&caller, crm_core::authz::Action::Create)?;
            let input = body.decode()?;
            let (key, token) = ctx.crm.api_keys().create(&caller.principal, input).await?;
            output::created_as(&CreatedApiKey { key: Shown::of(&key)?, token }, key.meta.version)
        }
    }
}

resource! {
    /// Webhook endpoints and their delivery logs (admins).
    WebhooksApi at "/webhooks", tag "ApiTags::Webhooks", service webhooks, record WebhookEndpoint;
    get "getWebhook";
    update "updateWebhook"(WebhookEndpointPatch);
    delete "deleteWebhook";
    extra {
        /// Webhook endpoints, optionally only the active (`active=true`) or inactive ones.
        #[oai(path = "/", method = "get", operation_id = "listWebhooks")]
        async fn list(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            active: Query<Option<bool>>,
            limit: Query<Option<u32>>,
            cursor: Query<Option<String>>,
            sort: Query<Option<String>>,
        ) -> Result<Listed<WebhookEndpoint>, BodilessError> {
            let caller = auth.into_caller();
            let page = paging(limit, cursor, sort);
            let found = ctx.crm.webhooks().list(&caller.principal, active.0, &page).await?;
            Ok(output::page(found, &page)?)
        }

        /// Creates a webhook endpoint; the response's `secret` is shown this once only.
        #[oai(path = "/", method = "post", operation_id = "createWebhook")]
        async fn create(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            body: Body<NewWebhookEndpoint>,
        ) -> Result<Created<WebhookWithSecret>, ApiError> {
            let caller = auth.into_caller();
            crate::api::resource::may::<WebhookEndpoint>(&caller, crm_core::Action::Create)?;
            let input = body.decode()?;
            let (endpoint, secret) = ctx.crm.webhooks().create(&caller.principal, input).await?;
            output::created_as(&WebhookWithSecret { endpoint: Shown::of(&endpoint)?, secret }, endpoint.meta.version)
        }

        /// Replaces the signing secret; the response's `secret` is shown this once only,
        /// and the old one stops working at once.
        #[oai(path = "/:id/rotate-secret", method = "post", operation_id = "rotateWebhookSecret")]
        async fn rotate_secret(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            /// The `ETag` of the version read.
            #[oai(name = "If-Match")]
            if_match: Header<Option<String>>,
        ) -> Result<One<WebhookWithSecret>, BodilessError> {
            let caller = auth.into_caller();
            let version = input::required_version(if_match.0.as_deref(), ctx.versions)?;
            let (endpoint, secret) = ctx.crm.webhooks().rotate_secret(&caller.principal, id.0.into(), version).await?;
            Ok(output::one_as(&WebhookWithSecret { endpoint: Shown::of(&endpoint)?, secret }, endpoint.meta.version)?)
        }

        /// The endpoint's delivery log: status, attempts, response status, latency and
        /// next attempt of each event sent to it.
        #[oai(path = "/:id/deliveries", method = "get", operation_id = "listWebhookDeliveries")]
        async fn deliveries(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            limit: Query<Option<u32>>,
            cursor: Query<Option<String>>,
            sort: Query<Option<String>>,
        ) -> Result<Listed<WebhookDelivery>, BodilessError> {
            let caller = auth.into_caller();
            let page = paging(limit, cursor, sort);
            let found = ctx.crm.webhooks().deliveries(&caller.principal, id.0.into(), &page).await?;
            Ok(output::page(found, &page)?)
        }

        /// Asks for one more attempt of a delivery, now (the endpoint must be active).
        #[oai(path = "/:id/deliveries/:delivery_id/redeliver", method = "post", operation_id = "redeliverWebhook")]
        async fn redeliver(
            &self,
            ctx: Ctx<'_>,
            auth: Auth,
            id: Path<Uuid>,
            delivery_id: Path<Uuid>,
        ) -> Result<One<WebhookDelivery>, BodilessError> {
            let caller = auth.into_caller();
            let delivery =
                ctx.crm.webhooks().redeliver(&caller.principal, id.0.into(), delivery_id.0.into()).await?;
            Ok(output::one(&delivery)?)
        }
    }
}

/// The caller's notifications.
pub(crate) struct NotificationsApi;

#[OpenApi(prefix_path = "/notifications", tag = "ApiTags::Notifications")]
impl NotificationsApi {
    /// The caller's notifications (`unread_only=true` for the unread ones).
    #[oai(path = "/", method = "get", operation_id = "listNotifications")]
    async fn list(
        &self,
        ctx: Ctx<'_>,
        auth: Auth,
        unread_only: Query<Option<bool>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        sort: Query<Option<String>>,
    ) -> Result<Listed<Notification>, BodilessError> {
        let caller = auth.into_caller();
        let page = paging(limit, cursor, sort);
        let unread = unread_only.0.unwrap_or(false);
        let found = ctx.crm.notifications().list(&caller.principal, unread, &page).await?;
        Ok(output::page(found, &page)?)
    }

    /// Marks one notification read.
    #[oai(path = "/:id/read", method = "post", operation_id = "markNotificationRead")]
    async fn mark_read(&self, ctx: Ctx<'_>, auth: Auth, id: Path<Uuid>) -> Result<One<Notification>, BodilessError> {
        let caller = auth.into_caller();
        let notification = ctx.crm.notifications().mark_read(&caller.principal, id.0.into()).await?;
        Ok(output::one(&notification)?)
    }

    /// Marks every notification of the caller read; returns how many changed.
    #[oai(path = "/read-all", method = "post", operation_id = "markAllNotificationsRead")]
    async fn mark_all_read(&self, ctx: Ctx<'_>, auth: Auth) -> Result<Done<MarkedRead>, BodilessError> {
        let caller = auth.into_caller();
        let marked = ctx.crm.notifications().mark_all_read(&caller.principal).await?;
        Ok(output::done(&MarkedRead { marked })?)
    }

    /// Deletes one of the caller's notifications.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteNotification")]
    async fn delete(&self, ctx: Ctx<'_>, auth: Auth, id: Path<Uuid>) -> Result<Done<Deleted>, BodilessError> {
        let caller = auth.into_caller();
        ctx.crm.notifications().delete(&caller.principal, id.0.into()).await?;
        Ok(output::done(&Deleted::new(id.0))?)
    }
}
