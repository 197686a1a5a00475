//! The API under `/api/v1`: its operations, tags and the generated OpenAPI service.

#[macro_use]
mod crud;
mod auth;
mod resources;
pub(crate) mod schema;
mod system;

use std::collections::HashMap;

use poem::{endpoint::BoxEndpoint, http::Method};
use poem_openapi::{
    OpenApi, OpenApiService, Tags,
    registry::{MetaApi, MetaOperationParam, MetaParamIn, MetaPath, Registry},
    types::Type,
};

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

/// Operations declared apart (one API struct per operation) but sharing a path are
/// one path item in the spec: without this, the spec would list `/contacts` once per
/// method and keep only the last.
struct MergedPaths<T>(T);

impl<T: OpenApi> OpenApi for MergedPaths<T> {
    fn meta() -> Vec<MetaApi> {
        let mut paths: Vec<MetaPath> = Vec::new();
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            match paths.iter_mut().find(|p| p.path == path.path) {
                Some(existing) => existing.operations.extend(path.operations),
                None => paths.push(path),
            }
        }
        vec![MetaApi { paths }]
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}

/// Documents a listing's filters as optional query parameters (the handler reads them
/// from the query string into the core's filter type, which refuses unknown names).
pub(crate) fn with_filters(mut apis: Vec<MetaApi>, names: &[&str]) -> Vec<MetaApi> {
    let operations = apis.iter_mut().flat_map(|a| a.paths.iter_mut()).flat_map(|p| p.operations.iter_mut());
    for operation in operations {
        operation.params.extend(names.iter().map(|name| MetaOperationParam {
            name: (*name).to_owned(),
            schema: String::schema_ref(),
            in_type: MetaParamIn::Query,
            description: Some("Filter (ids as UUIDs, dates as YYYY-MM-DD, lists comma-separated).".into()),
            required: false,
            deprecated: false,
            explode: true,
            style: None,
        }));
    }
    apis
}

/// Every operation of the API.
fn operations() -> impl OpenApi {
    MergedPaths((auth::AuthApi, system::SystemApi, resources::all()))
}

/// The OpenAPI service, to be nested at `/api/v1`.
pub fn service() -> OpenApiService<impl OpenApi, ()> {
    OpenApiService::new(operations(), "crm-rs", API_VERSION).server("/api/v1")
}
