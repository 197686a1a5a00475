//! A report's rows as CSV (RFC 4180, a header line first), written by the `csv` crate
//! so quoting is never hand-made. A report that is one value (`win-rate`) is one row;
//! `overdue-totals` is one row per currency, sorted by code.

use rust_decimal::Decimal;
use serde::Serialize;

use super::ReportOutput;
use crate::error::{CrmError, Result};

/// One currency's overdue balance, as a CSV row.
#[derive(Serialize)]
struct OverdueRow<'a> {
    currency: &'a str,
    balance_due: Decimal,
}

/// The report as CSV text.
pub fn to_csv(output: &ReportOutput) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    match output {
        ReportOutput::Pipeline(rows) => write_rows(&mut writer, rows)?,
        ReportOutput::WinRate(row) => write_rows(&mut writer, std::slice::from_ref(row))?,
        ReportOutput::RevenueByMonth(rows) => write_rows(&mut writer, rows)?,
        ReportOutput::InvoiceAging(rows) => write_rows(&mut writer, rows)?,
        ReportOutput::OverdueTotals(totals) => {
            let mut rows: Vec<OverdueRow> =
                totals.iter().map(|(c, total)| OverdueRow { currency: c.as_str(), balance_due: *total }).collect();
            rows.sort_by_key(|r| r.currency);
            write_rows(&mut writer, &rows)?
        }
        ReportOutput::LeadConversion(rows) => write_rows(&mut writer, rows)?,
        ReportOutput::TopProducts(rows) => write_rows(&mut writer, rows)?,
    }
    let bytes = writer.into_inner().map_err(|e| csv_error(e.error()))?;
    String::from_utf8(bytes).map_err(|e| CrmError::Internal(format!("report CSV is not UTF-8: {e}")))
}

fn write_rows<T: Serialize>(writer: &mut csv::Writer<Vec<u8>>, rows: &[T]) -> Result<()> {
    rows.iter().try_for_each(|row| writer.serialize(row).map_err(|e| csv_error(&e)))
}

fn csv_error(e: &dyn std::fmt::Display) -> CrmError {
    CrmError::Internal(format!("cannot write the report as CSV: {e}"))
}
