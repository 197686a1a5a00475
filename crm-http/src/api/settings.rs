//! `/settings`: the tenant's settings (its time zone). Everyone in the tenant reads
//! them; admins change them. The core decides both (`crm_core::access::settings`).

use std::sync::Arc;

use crm_core::{access::settings::SettingsPatch, authz::Action, tenant_settings::TenantSettings};
use poem::web::Data;
use poem_openapi::{OpenApi, param::Header};

use crate::{
    api::{ApiTags, resource::may, schema::Body},
    auth::Auth,
    context::AppCtx,
    error::{ApiError, BodilessError},
    output::{self, One},
};

/// The tenant's settings.
pub(crate) struct SettingsApi;

#[OpenApi(prefix_path = "/settings", tag = "ApiTags::Settings")]
impl SettingsApi {
    /// The tenant's settings; the defaults (`UTC`, version 0) until an admin changes them.
    #[oai(path = "/", method = "get", operation_id = "getSettings")]
    async fn get(&self, ctx: Data<&Arc<AppCtx>>, auth: Auth) -> Result<One<TenantSettings>, BodilessError> {
        let caller = auth.into_caller();
        let settings = ctx.crm.settings().get(&caller.principal).await?;
        Ok(output::one(&settings)?)
    }

    /// Changes the tenant's settings (admins): `{"time_zone": "Europe/Belgrade"}`. Dates
    /// of documents (issue, due, validity, overdue, aging, payments) follow the zone
    /// from the next request; an unknown zone name is a 422 naming `time_zone`.
    #[oai(path = "/", method = "patch", operation_id = "updateSettings")]
    async fn update(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        /// The `ETag` of the version read.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Body<SettingsPatch>,
    ) -> Result<One<TenantSettings>, ApiError> {
        let caller = auth.into_caller();
        may::<TenantSettings>(&caller, Action::Update)?;
        let patch: SettingsPatch = body.decode_patch(if_match.0.as_deref(), ctx.versions)?;
        let settings = ctx.crm.settings().update(&caller.principal, patch).await?;
        output::one(&settings)
    }
}
