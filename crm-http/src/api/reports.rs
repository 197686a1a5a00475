//! `/reports/{name}`: the core's reports, each described in the spec.
//!
//! The core's report rows (`crm_core::reports`) carry no JSON Schema yet (they lack
//! the `schema` feature's derive that records and inputs have), so their shapes are
//! written here once, in [`rows`], as schema-only mirrors. A test holds every mirror to
//! what the core serializes (`openapi::every_response_is_what_its_spec_says`). Once the
//! core derives `JsonSchema` on them, `rows` goes and [`Report`] names the core's types.

use std::{collections::HashMap, sync::Arc};

use chrono::NaiveDate;
use crm_core::{
    Id,
    reports::{
        ReportName, ReportParams,
        runs::{ReportFormat, ReportRun},
    },
};
use poem::{IntoResponse, Response, web::Data};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry},
    types::Type,
};
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    api::{ApiTags, schema, schema::Body},
    auth::Auth,
    context::AppCtx,
    error::{ApiError, BodilessError},
    output::{self, Created, Done, One},
};

// The spec's view of the core's `ReportOutput`: schema only, the response is written
// from the core's value.
/// The rows of a report, by the report's name.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum Report {
    /// `pipeline`: open and closed deals per stage and currency.
    Pipeline(Vec<rows::PipelineStage>),
    /// `win-rate`: won and lost deals.
    WinRate(rows::WinRate),
    /// `revenue-by-month`: payments received per month and currency.
    RevenueByMonth(Vec<rows::MonthlyRevenue>),
    /// `invoice-aging`: open invoices by days past due, per currency.
    InvoiceAging(Vec<rows::AgingBucket>),
    /// `overdue-totals`: the overdue balance (a decimal string) by currency code.
    OverdueTotals(HashMap<String, String>),
    /// `lead-conversion`: leads and conversions per source.
    LeadConversion(Vec<rows::SourceConversion>),
    /// `top-products`: the best-selling products per currency.
    TopProducts(Vec<rows::ProductSales>),
}

/// Reports.
pub(crate) struct ReportsApi;

#[OpenApi(prefix_path = "/reports", tag = "ApiTags::Reports")]
impl ReportsApi {
    /// A report: `pipeline`, `win-rate`, `revenue-by-month`, `invoice-aging`,
    /// `overdue-totals`, `lead-conversion` or `top-products`. Date ranges as `from`
    /// and `to` (`YYYY-MM-DD`); `limit` for top products.
    #[oai(path = "/:name", method = "get", operation_id = "getReport")]
    async fn report(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        name: Path<String>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
        limit: Query<Option<u32>>,
    ) -> Result<Done<Report>, BodilessError> {
        let caller = auth.into_caller();
        let params = ReportParams { from: from.0, to: to.0, limit: limit.0 };
        let report = ctx.crm.reports().compute(&caller.principal, report_name(&name.0)?, &params).await?;
        Ok(output::done_as::<Report, _>(&report)?)
    }

    /// Requests a run of a report, computed by a worker: for long reports and exports.
    /// The same rights and parameters as `GET /reports/{name}`; `format` is `json`
    /// (default) or `csv`. The run is visible to whoever requested it, until it expires
    /// (`expires_at`).
    #[oai(path = "/:name/runs", method = "post", operation_id = "requestReportRun")]
    async fn request_run(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        name: Path<String>,
        body: Body<NewReportRun>,
    ) -> Result<Created<ReportRun>, ApiError> {
        let caller = auth.into_caller();
        let report = report_name(&name.0)?;
        let input: NewReportRun = body.decode()?;
        let format = input.format.unwrap_or(ReportFormat::Json);
        let run = ctx.crm.report_runs().request(&caller.principal, report, input.params, format).await?;
        output::created(&run)
    }

    /// A report run the caller requested: its status (`queued`, `running`, `done`,
    /// `failed`) and, once done, its result.
    #[oai(path = "/runs/:id", method = "get", operation_id = "getReportRun")]
    async fn get_run(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<One<ReportRun>, BodilessError> {
        let caller = auth.into_caller();
        let run = ctx.crm.report_runs().get(&caller.principal, Id::from_uuid(id.0)).await?;
        Ok(output::one(&run)?)
    }

    /// The result of a done run, as a file of its format (`application/json` or
    /// `text/csv`); a run not done yet is a 422 on `status`.
    #[oai(path = "/runs/:id/result", method = "get", operation_id = "getReportRunResult")]
    async fn run_result(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<ReportFile, BodilessError> {
        let caller = auth.into_caller();
        let (format, content) = ctx.crm.report_runs().result(&caller.principal, Id::from_uuid(id.0)).await?;
        Ok(ReportFile { format, content })
    }
}

/// A report run's input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewReportRun {
    /// The report's parameters (`from`, `to`, `limit`), as for `GET /reports/{name}`.
    #[serde(default)]
    params: ReportParams,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<ReportFormat>,
}

/// The report a path names, or a 404 listing none of the names' secrets.
fn report_name(name: &str) -> Result<ReportName, ApiError> {
    name.parse().map_err(|_| ApiError::not_found("unknown report; see the operation's description for the names"))
}

/// A done run's result, served as a file of its format.
pub(crate) struct ReportFile {
    format: ReportFormat,
    content: String,
}

impl ApiResponse for ReportFile {
    fn meta() -> MetaResponses {
        let media = |content_type, schema| MetaMediaType { content_type, schema };
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The result: the report's rows as JSON, or CSV with a header line.",
                status: Some(200),
                status_range: None,
                content: vec![
                    media("application/json", MetaSchemaRef::Reference(Report::schema_name().into_owned())),
                    media("text/csv", String::schema_ref()),
                ],
                headers: Vec::new(),
            }],
        }
    }

    fn register(registry: &mut Registry) {
        schema::register_serialized::<Report>(registry);
    }
}

impl IntoResponse for ReportFile {
    fn into_response(self) -> Response {
        self.content.with_content_type(self.format.content_type()).into_response()
    }
}

/// The shapes of the core's report rows, for the spec only (never built). Money and
/// percentages are decimal strings, as the core serializes `Decimal`.
#[allow(dead_code)]
mod rows {
    use chrono::NaiveDate;
    use crm_core::{
        Id, customers::deals::DealStage, customers::leads::LeadSource, money::Currency, sales::products::Product,
    };
    use schemars::JsonSchema;

    /// One stage of the pipeline in one currency.
    #[derive(JsonSchema)]
    pub(crate) struct PipelineStage {
        /// The stage.
        stage: DealStage,
        /// The currency of the sums.
        currency: Currency,
        /// Deals in the stage.
        deals: u64,
        /// Σ amount.
        #[schemars(with = "crm_core::money::DecimalText")]
        value: String,
        /// Σ amount × probability.
        #[schemars(with = "crm_core::money::DecimalText")]
        weighted_value: String,
    }

    /// Won and lost deals, and the share won.
    #[derive(JsonSchema)]
    pub(crate) struct WinRate {
        /// Deals closed as won.
        won: u64,
        /// Deals closed as lost.
        lost: u64,
        /// `won / (won + lost)` in percent, two decimals; `null` before any deal closed.
        #[schemars(with = "Option<crm_core::money::DecimalText>")]
        percent: Option<String>,
    }

    /// Money received in one month and currency: payments less refunds.
    #[derive(JsonSchema)]
    pub(crate) struct MonthlyRevenue {
        /// The first day of the month.
        month: NaiveDate,
        /// The currency.
        currency: Currency,
        /// Σ completed payments − `refunded`; negative in a month that refunded more
        /// than it received.
        #[schemars(with = "crm_core::money::DecimalText")]
        amount: String,
        /// How many payments.
        payments: u64,
        /// Σ refunds paid back in the month (of payments of any month).
        refunded: String,
    }

    /// Open invoices by how long they are overdue, per currency.
    #[derive(JsonSchema)]
    pub(crate) struct AgingBucket {
        /// `current`, `1-30`, `31-60`, `61-90` or `90+` days past due.
        bucket: String,
        /// The currency.
        currency: Currency,
        /// Open invoices in the bucket.
        invoices: u64,
        /// Σ balance due.
        #[schemars(with = "crm_core::money::DecimalText")]
        balance_due: String,
    }

    /// How the leads of one source fared.
    #[derive(JsonSchema)]
    pub(crate) struct SourceConversion {
        /// The source.
        source: LeadSource,
        /// Leads from it.
        leads: u64,
        /// Of which converted.
        converted: u64,
        /// `converted / leads` in percent, two decimals.
        #[schemars(with = "crm_core::money::DecimalText")]
        percent: String,
    }

    /// What one product sold on issued invoices, in one currency.
    #[derive(JsonSchema)]
    pub(crate) struct ProductSales {
        /// The product.
        product_id: Id<Product>,
        /// The currency.
        currency: Currency,
        /// Σ quantity.
        #[schemars(with = "crm_core::money::DecimalText")]
        quantity: String,
        /// Σ net line amounts (after discount, before tax).
        #[schemars(with = "crm_core::money::DecimalText")]
        revenue: String,
    }
}
