//! `GET /api/v1`: what this API is.

use poem_openapi::OpenApi;
use serde_json::json;

use crate::{
    api::{API_VERSION, ApiTags},
    error::ApiError,
    output::{self, Fetched},
};

/// Service information.
pub(crate) struct SystemApi;

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// The API's name, version, and where its spec and docs are.
    #[oai(path = "/", method = "get")]
    async fn info(&self) -> Result<Fetched, ApiError> {
        Ok(output::data(json!({
            "name": "crm-rs",
            "version": API_VERSION,
            "openapi": "/api/v1/openapi.json",
            "docs": "/docs",
        })))
    }
}
