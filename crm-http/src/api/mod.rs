//! The API under `/api/v1`: one API struct per resource, composed into the
//! generated OpenAPI service.
//!
//! A resource is one `#[OpenApi]` impl holding all of its operations, declared with
//! `resource!` (`resource.rs`) when it shares operations with others (`resources.rs`),
//! or written out (`auth.rs`, `reports.rs`, `system.rs`, notifications). Each
//! operation's success response names the type of its `data` (`output::One<Contact>`,
//! `output::Done<ConvertedLead>`…), whose JSON Schema the spec shows (`schema.rs`).

#[macro_use]
pub(crate) mod resource;
mod auth;
mod events;
mod reports;
mod resources;
pub(crate) mod results;
pub(crate) mod schema;
mod settings;
mod spec;
mod system;

pub use self::spec::{IF_MATCH_PATTERN, document, generated, swagger_page};

use poem_openapi::{OpenApi, OpenApiService, Tags};

use self::resource::Filtered;

/// The groups of operations in the spec.
#[derive(Tags)]
pub(crate) enum ApiTags {
    /// Sign-in, tokens and sessions.
    Auth,
    /// Version and service information.
    System,
    /// Users of the tenant.
    Users,
    /// Customer companies.
    Companies,
    /// Contacts.
    Contacts,
    /// Leads and their conversion.
    Leads,
    /// Deals and their stages.
    Deals,
    /// Quotes.
    Quotes,
    /// Invoices.
    Invoices,
    /// Payments.
    Payments,
    /// Delivery notes.
    DeliveryNotes,
    /// Credit notes: corrections of issued invoices.
    CreditNotes,
    /// Refunds of payments.
    Refunds,
    /// Projects.
    Projects,
    /// Project milestones.
    Milestones,
    /// Tasks.
    Tasks,
    /// The product catalog.
    Products,
    /// Product categories.
    ProductCategories,
    /// The caller's notifications.
    Notifications,
    /// API keys for integrations.
    ApiKeys,
    /// The audit log.
    AuditLogs,
    /// Reports.
    Reports,
    /// The tenant's settings.
    Settings,
    /// Webhook endpoints and their delivery logs.
    Webhooks,
    /// The live event stream.
    Events,
}

/// The API's version, as served by `GET /api/v1` and in the spec.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Composes any number of API structs into one `OpenApi`, as nested pairs.
///
/// poem-openapi implements `OpenApi` for tuples of at most 16 members; a flat tuple of
/// every resource stops compiling, with an opaque error, at the 17th. Pairs nest
/// without limit (`tests/it/composition.rs` composes 40).
#[macro_export]
macro_rules! compose_apis {
    ($only:expr $(,)?) => {
        $only
    };
    ($first:expr, $($rest:expr),+ $(,)?) => {
        ($first, $crate::compose_apis!($($rest),+))
    };
}

/// Every operation of the API: one API struct per resource.
fn operations() -> impl OpenApi {
    compose_apis!(
        auth::AuthApi,
        system::SystemApi,
        Filtered(resources::UsersApi),
        Filtered(resources::CompaniesApi),
        Filtered(resources::ContactsApi),
        Filtered(resources::LeadsApi),
        Filtered(resources::DealsApi),
        Filtered(resources::QuotesApi),
        Filtered(resources::InvoicesApi),
        Filtered(resources::PaymentsApi),
        Filtered(resources::DeliveryNotesApi),
        Filtered(resources::CreditNotesApi),
        Filtered(resources::RefundsApi),
        Filtered(resources::ProjectsApi),
        resources::MilestonesApi,
        Filtered(resources::TasksApi),
        Filtered(resources::ProductsApi),
        resources::CategoriesApi,
        resources::NotificationsApi,
        resources::ApiKeysApi,
        Filtered(resources::AuditLogsApi),
        reports::ReportsApi,
        settings::SettingsApi,
        resources::WebhooksApi,
        events::EventsApi,
    )
}

/// The OpenAPI service, to be nested at `/api/v1`. Its own `spec()` lacks what
/// [`document`] adds: serve and publish [`document`].
pub fn service() -> OpenApiService<impl OpenApi, ()> {
    OpenApiService::new(operations(), "crm-rs", API_VERSION).server("/api/v1")
}
