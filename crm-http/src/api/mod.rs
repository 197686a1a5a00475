//! The API under `/api/v1`: its operations, tags and the generated OpenAPI service.

#[macro_use]
mod crud;
mod auth;
mod resources;
mod system;

use poem_openapi::{OpenApi, OpenApiService, Tags};

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
}

/// The API's version, as served by `GET /api/v1` and in the spec.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every operation of the API.
fn operations() -> impl OpenApi {
    (auth::AuthApi, system::SystemApi, resources::all())
}

/// The OpenAPI service, to be nested at `/api/v1`.
pub fn service() -> OpenApiService<impl OpenApi, ()> {
    OpenApiService::new(operations(), "crm-rs", API_VERSION).server("/api/v1")
}
