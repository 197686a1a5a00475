//! `GET /api/v1`: what this API is.

use poem_openapi::OpenApi;

use crate::{
    api::{API_VERSION, ApiTags, results::ApiInfo},
    error::BodilessError,
    output::{self, Done},
};

/// Service information.
pub(crate) struct SystemApi;

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// The API's name, version, and where its spec and docs are.
    #[oai(path = "/", method = "get", operation_id = "getApiInfo")]
    async fn info(&self) -> Result<Done<ApiInfo>, BodilessError> {
        Ok(output::done(&ApiInfo {
            name: "crm-rs",
            version: API_VERSION,
            openapi: "/api/v1/openapi.json",
            docs: "/docs",
        })?)
    }
}
