//! `/reports/{name}`: the core's reports, each described in the spec.
//!
//! The core's report rows (`crm_core::reports`) carry no JSON Schema yet (they lack
//! the `schema` feature's derive that records and inputs have), so their shapes are
//! written here once, in [`rows`], as schema-only mirrors. A test holds every mirror to
//! what the core serializes (`openapi::every_response_is_what_its_spec_says`). Once the
//! core derives `JsonSchema` on them, `rows` goes and [`Report`] names the core's types.

use std::{collections::HashMap, sync::Arc};

use chrono::NaiveDate;
use crm_core::{money::Currency, reports};
use poem::web::Data;
use poem_openapi::{
    OpenApi,
    param::{Path, Query},
};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Serialize;

use crate::{
    api::ApiTags,
    auth::Auth,
    context::AppCtx,
    error::{ApiError, BodilessError},
    output::{self, Done},
};

/// The rows of a report, by the report's name.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Report {
    /// `pipeline`: open and closed deals per stage and currency.
    Pipeline(#[schemars(with = "Vec<rows::PipelineStage>")] Vec<reports::PipelineStage>),
    /// `win-rate`: won and lost deals.
    WinRate(#[schemars(with = "rows::WinRate")] reports::WinRate),
    /// `revenue-by-month`: payments received per month and currency.
    RevenueByMonth(#[schemars(with = "Vec<rows::MonthlyRevenue>")] Vec<reports::MonthlyRevenue>),
    /// `invoice-aging`: open invoices by days past due, per currency.
    InvoiceAging(#[schemars(with = "Vec<rows::AgingBucket>")] Vec<reports::AgingBucket>),
    /// `overdue-totals`: the overdue balance (a decimal string) by currency code.
    OverdueTotals(#[schemars(with = "HashMap<String, String>")] HashMap<Currency, Decimal>),
    /// `lead-conversion`: leads and conversions per source.
    LeadConversion(#[schemars(with = "Vec<rows::SourceConversion>")] Vec<reports::SourceConversion>),
    /// `top-products`: the best-selling products per currency.
    TopProducts(#[schemars(with = "Vec<rows::ProductSales>")] Vec<reports::ProductSales>),
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
        let p = &caller.principal;
        let reports = ctx.crm.reports();
        let range = || -> Result<(NaiveDate, NaiveDate), ApiError> {
            match (from.0, to.0) {
                (Some(f), Some(t)) => Ok((f, t)),
                (None, _) => Err(ApiError::invalid("from", "is required for this report")),
                (_, None) => Err(ApiError::invalid("to", "is required for this report")),
            }
        };
        let report = match name.0.as_str() {
            "pipeline" => Report::Pipeline(reports.pipeline(p).await?),
            "win-rate" => Report::WinRate(reports.win_rate(p, from.0, to.0).await?),
            "revenue-by-month" => {
                let (f, t) = range()?;
                Report::RevenueByMonth(reports.revenue_by_month(p, f, t).await?)
            }
            "invoice-aging" => Report::InvoiceAging(reports.invoice_aging(p).await?),
            "overdue-totals" => Report::OverdueTotals(reports.overdue_totals(p).await?),
            "lead-conversion" => Report::LeadConversion(reports.lead_conversion(p).await?),
            "top-products" => {
                let (f, t) = range()?;
                let n = limit.0.unwrap_or(10) as usize;
                Report::TopProducts(reports.top_products(p, f, t, n).await?)
            }
            _ => {
                return Err(ApiError::not_found("unknown report; see the operation's description for the names").into());
            }
        };
        Ok(output::done(&report)?)
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
