//! Reports, computed through the storage contract: grouped aggregates where the storage
//! can sum (pipeline, win rate, revenue, aging, lead conversion, project progress), and
//! a bounded walk over invoices for product rankings. [`Reports::compute`] runs one by
//! name ([`ReportName`], [`ReportParams`]): what the HTTP edge's `GET /reports/{name}`
//! and a report run ([`runs`]) both call. [`csv`] writes a report's rows as CSV.

pub mod csv;
pub mod runs;

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    authz::{Action, Principal, Resource},
    crm::Crm,
    customers::deals::{Deal, DealStage},
    customers::leads::{Lead, LeadSource, LeadStatus},
    entity::{Entity, from_stored},
    error::{CrmError, Result},
    id::Id,
    money::{Currency, checked_sum},
    sales::invoices::{Invoice, InvoiceStatus},
    sales::payments::{Payment, PaymentStatus},
    sales::products::Product,
    sales::refunds::Refund,
    storage::{AggregateQuery, AggregateRow, FieldValue, Filter, GroupKey, ListQuery},
    work::{progress::ProjectProgress, projects::Project},
};

/// One stage of the pipeline in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PipelineStage {
    /// The stage.
    pub stage: DealStage,
    /// The currency of the sums.
    pub currency: Currency,
    /// Deals in the stage.
    pub deals: u64,
    /// Σ amount.
    pub value: Decimal,
    /// Σ amount × probability.
    pub weighted_value: Decimal,
}

/// Won and lost deals, and the share won.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WinRate {
    /// Deals closed as won.
    pub won: u64,
    /// Deals closed as lost.
    pub lost: u64,
    /// `won / (won + lost)` in percent, two decimals; `None` before any deal closed.
    pub percent: Option<Decimal>,
}

/// Money received in one month and currency: payments less refunds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonthlyRevenue {
    /// The first day of the month.
    pub month: NaiveDate,
    /// The currency.
    pub currency: Currency,
    /// Σ completed payments − `refunded`; negative in a month that refunded more than
    /// it received.
    pub amount: Decimal,
    /// How many payments.
    pub payments: u64,
    /// Σ refunds paid back in the month (of payments of any month).
    pub refunded: Decimal,
}

/// Open invoices by how long they are overdue, per currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgingBucket {
    /// `current`, `1-30`, `31-60`, `61-90` or `90+` days past due.
    pub bucket: &'static str,
    /// The currency.
    pub currency: Currency,
    /// Open invoices in the bucket.
    pub invoices: u64,
    /// Σ balance due.
    pub balance_due: Decimal,
}

/// How the leads of one source fared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceConversion {
    /// The source.
    pub source: LeadSource,
    /// Leads from it.
    pub leads: u64,
    /// Of which converted.
    pub converted: u64,
    /// `converted / leads` in percent, two decimals.
    pub percent: Decimal,
}

/// What one product sold on issued invoices, in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProductSales {
    /// The product.
    pub product_id: Id<Product>,
    /// The currency.
    pub currency: Currency,
    /// Σ quantity.
    pub quantity: Decimal,
    /// Σ net line amounts (after discount, before tax).
    pub revenue: Decimal,
}

crate::state::text_enum! {
    /// The reports one can run by name.
    ReportName {
        /// Open deals per stage and currency ([`Reports::pipeline`]).
        Pipeline = "pipeline",
        /// Won and lost deals ([`Reports::win_rate`]).
        WinRate = "win-rate",
        /// Money received per month ([`Reports::revenue_by_month`]; `from` and `to` required).
        RevenueByMonth = "revenue-by-month",
        /// Open invoices by days past due ([`Reports::invoice_aging`]).
        InvoiceAging = "invoice-aging",
        /// The overdue balance per currency ([`Reports::overdue_totals`]).
        OverdueTotals = "overdue-totals",
        /// Leads and conversions per source ([`Reports::lead_conversion`]).
        LeadConversion = "lead-conversion",
        /// Best-selling products ([`Reports::top_products`]; `from` and `to` required).
        TopProducts = "top-products",
    }
}

/// What a report by name takes; each report reads what it needs and ignores the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReportParams {
    /// The first day of the range (`win-rate`, `revenue-by-month`, `top-products`).
    pub from: Option<NaiveDate>,
    /// The day after the range.
    pub to: Option<NaiveDate>,
    /// The most rows (`top-products`; default [`DEFAULT_TOP_PRODUCTS`]).
    pub limit: Option<u32>,
}

/// The rows `top-products` returns unless `limit` says otherwise.
pub const DEFAULT_TOP_PRODUCTS: u32 = 10;

/// The most rows `top-products` returns.
pub const MAX_TOP_PRODUCTS: u32 = 1000;

impl ReportParams {
    /// The range a report requires, or which end is missing.
    fn range(&self) -> Result<(NaiveDate, NaiveDate)> {
        match (self.from, self.to) {
            (Some(from), Some(to)) => Ok((from, to)),
            (None, _) => Err(CrmError::invalid("from", "is required for this report")),
            (_, None) => Err(CrmError::invalid("to", "is required for this report")),
        }
    }

    /// Checks what `name` needs of the parameters, naming the bad field.
    pub fn validate(&self, name: ReportName) -> Result<()> {
        if matches!(name, ReportName::RevenueByMonth | ReportName::TopProducts) {
            self.range()?;
        }
        match self.limit {
            Some(limit) if !(1..=MAX_TOP_PRODUCTS).contains(&limit) => {
                Err(CrmError::invalid("limit", format!("must be between 1 and {MAX_TOP_PRODUCTS}")))
            }
            _ => Ok(()),
        }
    }
}

/// The rows of one report, by the report's name (JSON: the rows alone).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReportOutput {
    /// `pipeline`.
    Pipeline(Vec<PipelineStage>),
    /// `win-rate`.
    WinRate(WinRate),
    /// `revenue-by-month`.
    RevenueByMonth(Vec<MonthlyRevenue>),
    /// `invoice-aging`.
    InvoiceAging(Vec<AgingBucket>),
    /// `overdue-totals`: the overdue balance by currency.
    OverdueTotals(HashMap<Currency, Decimal>),
    /// `lead-conversion`.
    LeadConversion(Vec<SourceConversion>),
    /// `top-products`.
    TopProducts(Vec<ProductSales>),
}

/// Reports (admins and managers).
#[derive(Clone, Copy, Debug)]
pub struct Reports<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The reports service.
    pub fn reports(&self) -> Reports<'_> {
        Reports { crm: self }
    }
}

/// The most invoices [`Reports::top_products`] reads for one report.
const TOP_PRODUCTS_SCAN_LIMIT: usize = 100_000;

fn percent(part: u64, whole: u64) -> Option<Decimal> {
    (whole > 0).then(|| (Decimal::from(part) * Decimal::ONE_HUNDRED / Decimal::from(whole)).round_dp(2))
}

fn parse_key<T: std::str::FromStr>(value: &FieldValue) -> Result<T> {
    match value {
        FieldValue::Text(t) => t.parse().map_err(|_| CrmError::Internal(format!("unexpected report key `{t}`"))),
        other => Err(CrmError::Internal(format!("unexpected report key {other:?}"))),
    }
}

impl Reports<'_> {
    /// Whether `p` may run `name` with `params`: the parameters it needs are valid and
    /// the principal has the right. The one decision before computing a report, now or
    /// as a run.
    pub fn check(&self, p: &Principal, name: ReportName, params: &ReportParams) -> Result<()> {
        self.crm.authorize(p, Resource::Reports, Action::Read)?;
        params.validate(name)
    }

    /// Computes report `name` as `p`.
    pub async fn compute(&self, p: &Principal, name: ReportName, params: &ReportParams) -> Result<ReportOutput> {
        self.check(p, name, params)?;
        Ok(match name {
            ReportName::Pipeline => ReportOutput::Pipeline(self.pipeline(p).await?),
            ReportName::WinRate => ReportOutput::WinRate(self.win_rate(p, params.from, params.to).await?),
            ReportName::RevenueByMonth => {
                let (from, to) = params.range()?;
                ReportOutput::RevenueByMonth(self.revenue_by_month(p, from, to).await?)
            }
            ReportName::InvoiceAging => ReportOutput::InvoiceAging(self.invoice_aging(p).await?),
            ReportName::OverdueTotals => ReportOutput::OverdueTotals(self.overdue_totals(p).await?),
            ReportName::LeadConversion => ReportOutput::LeadConversion(self.lead_conversion(p).await?),
            ReportName::TopProducts => {
                let (from, to) = params.range()?;
                let limit = params.limit.unwrap_or(DEFAULT_TOP_PRODUCTS) as usize;
                ReportOutput::TopProducts(self.top_products(p, from, to, limit).await?)
            }
        })
    }

    async fn aggregate<E: Entity>(&self, p: &Principal, query: AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.crm.authorize(p, Resource::Reports, Action::Read)?;
        Ok(self.crm.storage.aggregate(p.tenant_id(), E::KIND, &query).await?)
    }

    /// Open deals by stage and currency, with value and weighted value.
    pub async fn pipeline(&self, p: &Principal) -> Result<Vec<PipelineStage>> {
        let open = DealStage::ALL.iter().filter(|s| !s.is_closed()).map(|s| (*s).into());
        let query = AggregateQuery {
            filters: vec![Filter::one_of("stage", open)],
            group_by: vec![GroupKey::Field("stage"), GroupKey::Field("currency")],
            sums: vec!["amount", "weighted_amount"],
        };
        self.aggregate::<Deal>(p, query)
            .await?
            .iter()
            .map(|r| {
                Ok(PipelineStage {
                    stage: parse_key(&r.key[0])?,
                    currency: parse_key(&r.key[1])?,
                    deals: r.count,
                    value: r.sums[0],
                    weighted_value: r.sums[1],
                })
            })
            .collect()
    }

    /// Won versus lost deals, optionally only those closed in `[from, to)`, days of the
    /// tenant's time zone.
    pub async fn win_rate(&self, p: &Principal, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<WinRate> {
        let mut filters = vec![Filter::one_of("stage", [DealStage::ClosedWon.into(), DealStage::ClosedLost.into()])];
        if from.is_some() || to.is_some() {
            let zone = self.crm.settings_of(p.tenant_id(), self.crm.now()).await?.time_zone;
            filters.extend(from.map(|day| Filter::gte("closed_at", zone.start_of(day))));
            filters.extend(to.map(|day| Filter::lt("closed_at", zone.start_of(day))));
        }
        let query = AggregateQuery { filters, group_by: vec![GroupKey::Field("stage")], sums: vec![] };
        let rows = self.aggregate::<Deal>(p, query).await?;
        let count = |stage: DealStage| rows.iter().find(|r| r.key[0] == stage.into()).map_or(0, |r| r.count);
        let (won, lost) = (count(DealStage::ClosedWon), count(DealStage::ClosedLost));
        Ok(WinRate { won, lost, percent: percent(won, won + lost) })
    }

    /// Money received per month and currency in `[from, to)`: completed payments by
    /// `paid_on`, less refunds by `refunded_on` (a payment voided is not counted at all;
    /// a payment refunded counts when received and is taken back when refunded).
    pub async fn revenue_by_month(&self, p: &Principal, from: NaiveDate, to: NaiveDate) -> Result<Vec<MonthlyRevenue>> {
        let payments =
            self.monthly_sums::<Payment>(p, "paid_on", Some(Filter::eq("status", PaymentStatus::Completed)), from, to);
        let refunds = self.monthly_sums::<Refund>(p, "refunded_on", None, from, to);
        let mut months: BTreeMap<(NaiveDate, String), MonthlyRevenue> = BTreeMap::new();
        for (month, currency, amount, count) in payments.await? {
            let row = MonthlyRevenue { month, currency, amount, payments: count, refunded: Decimal::ZERO };
            months.insert((month, currency.as_str().to_owned()), row);
        }
        for (month, currency, refunded, _) in refunds.await? {
            let row = months.entry((month, currency.as_str().to_owned())).or_insert(MonthlyRevenue {
                month,
                currency,
                amount: Decimal::ZERO,
                payments: 0,
                refunded: Decimal::ZERO,
            });
            row.refunded = refunded;
            row.amount = row
                .amount
                .checked_sub(refunded)
                .ok_or_else(|| CrmError::Internal("the month's revenue less refunds overflows a decimal".into()))?;
        }
        Ok(months.into_values().collect())
    }

    /// Σ `amount` and counts of `E` per month of `date_field` and currency, in `[from, to)`.
    async fn monthly_sums<E: Entity>(
        &self,
        p: &Principal,
        date_field: &'static str,
        filter: Option<Filter>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Currency, Decimal, u64)>> {
        let mut filters = vec![Filter::gte(date_field, from), Filter::lt(date_field, to)];
        filters.extend(filter);
        let query = AggregateQuery {
            filters,
            group_by: vec![GroupKey::Month(date_field), GroupKey::Field("currency")],
            sums: vec!["amount"],
        };
        self.aggregate::<E>(p, query)
            .await?
            .iter()
            .map(|r| {
                let FieldValue::Date(month) = r.key[0] else {
                    return Err(CrmError::Internal("revenue month is not a date".into()));
                };
                Ok((month, parse_key(&r.key[1])?, r.sums[0], r.count))
            })
            .collect()
    }

    /// Open (issued or partially paid) invoices by days past due, per currency.
    pub async fn invoice_aging(&self, p: &Principal) -> Result<Vec<AgingBucket>> {
        let today = self.crm.today(p.tenant_id()).await?;
        let day = |n: i64| today - Duration::days(n);
        // (label, due on or after, due before)
        let buckets: [(&'static str, Option<NaiveDate>, Option<NaiveDate>); 5] = [
            ("current", Some(today), None),
            ("1-30", Some(day(30)), Some(today)),
            ("31-60", Some(day(60)), Some(day(30))),
            ("61-90", Some(day(90)), Some(day(60))),
            ("90+", None, Some(day(90))),
        ];
        let mut out = Vec::new();
        for (bucket, from, to) in buckets {
            let mut filters =
                vec![Filter::one_of("status", [InvoiceStatus::Issued.into(), InvoiceStatus::PartiallyPaid.into()])];
            filters.extend(from.map(|d| Filter::gte("due_date", d)));
            filters.extend(to.map(|d| Filter::lt("due_date", d)));
            let query =
                AggregateQuery { filters, group_by: vec![GroupKey::Field("currency")], sums: vec!["balance_due"] };
            for r in self.aggregate::<Invoice>(p, query).await? {
                out.push(AgingBucket {
                    bucket,
                    currency: parse_key(&r.key[0])?,
                    invoices: r.count,
                    balance_due: r.sums[0],
                });
            }
        }
        Ok(out)
    }

    /// The total balance of overdue invoices per currency.
    pub async fn overdue_totals(&self, p: &Principal) -> Result<HashMap<Currency, Decimal>> {
        let mut totals = HashMap::new();
        for b in self.invoice_aging(p).await?.into_iter().filter(|b| b.bucket != "current") {
            let total = totals.entry(b.currency).or_insert(Decimal::ZERO);
            *total = checked_sum(*total, b.balance_due, "overdue balances")?;
        }
        Ok(totals)
    }

    /// Leads and conversions per source.
    pub async fn lead_conversion(&self, p: &Principal) -> Result<Vec<SourceConversion>> {
        let query = AggregateQuery {
            filters: vec![],
            group_by: vec![GroupKey::Field("source"), GroupKey::Field("status")],
            sums: vec![],
        };
        let mut per_source: Vec<SourceConversion> = Vec::new();
        for r in self.aggregate::<Lead>(p, query).await? {
            let source: LeadSource = parse_key(&r.key[0])?;
            let converted = if parse_key::<LeadStatus>(&r.key[1])? == LeadStatus::Converted { r.count } else { 0 };
            match per_source.iter_mut().find(|s| s.source == source) {
                Some(s) => {
                    s.leads += r.count;
                    s.converted += converted;
                }
                None => per_source.push(SourceConversion { source, leads: r.count, converted, percent: Decimal::ZERO }),
            }
        }
        for s in &mut per_source {
            s.percent = percent(s.converted, s.leads).unwrap_or(Decimal::ZERO);
        }
        Ok(per_source)
    }

    /// Task counts by status and the share done, for one project.
    pub async fn project_progress(&self, p: &Principal, project: Id<Project>) -> Result<ProjectProgress> {
        self.crm.authorize(p, Resource::Reports, Action::Read)?;
        self.crm.projects().progress(p, project).await
    }

    /// The best-selling products on issued, partially paid or paid invoices issued in
    /// `[from, to)`, by net revenue, per currency; at most `limit` rows.
    pub async fn top_products(
        &self,
        p: &Principal,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
    ) -> Result<Vec<ProductSales>> {
        self.crm.authorize(p, Resource::Reports, Action::Read)?;
        let statuses = [InvoiceStatus::Issued, InvoiceStatus::PartiallyPaid, InvoiceStatus::Paid].map(Into::into);
        let mut query = ListQuery {
            limit: crate::crm::PageRequest::MAX_LIMIT,
            ..ListQuery::filtered(vec![
                Filter::one_of("status", statuses),
                Filter::gte("issue_date", from),
                Filter::lt("issue_date", to),
            ])
        };
        let mut sales: HashMap<(Id<Product>, Currency), (Decimal, Decimal)> = HashMap::new();
        let mut scanned = 0;
        loop {
            let page = self.crm.storage.list(p.tenant_id(), Invoice::KIND, &query).await?;
            scanned += page.items.len();
            for stored in page.items {
                let invoice: Invoice = from_stored(stored)?;
                for line in &invoice.lines {
                    if let Some(product) = line.product_id {
                        let entry = sales.entry((product, invoice.currency)).or_default();
                        entry.0 = checked_sum(entry.0, line.quantity, "quantities sold")?;
                        entry.1 = checked_sum(entry.1, line.net, "revenue")?;
                    }
                }
            }
            match page.next {
                Some(next) if scanned < TOP_PRODUCTS_SCAN_LIMIT => query.after = Some(next),
                _ => break,
            }
        }
        let mut rows: Vec<ProductSales> = sales
            .into_iter()
            .map(|((product_id, currency), (quantity, revenue))| ProductSales {
                product_id,
                currency,
                quantity,
                revenue,
            })
            .collect();
        rows.sort_by(|a, b| b.revenue.cmp(&a.revenue).then(a.product_id.cmp(&b.product_id)));
        rows.truncate(limit);
        Ok(rows)
    }
}
