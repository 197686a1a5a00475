//! Document numbers: `<PREFIX>-<year>-<6 digits>`, gapless per tenant, series and year.
//!
//! A number is taken from a per-tenant counter (`<series>:<year>`) that moves in the same
//! atomic write as the document that gets it: the write fails whole if another writer
//! moved the counter first (a conflict on [`EntityKind::Tenant`](crate::storage::EntityKind)),
//! so callers run under `retry_on_conflict(&[EntityKind::Tenant], …)` and no number is
//! ever skipped or given twice. Documents take their number at the step after which they
//! can no longer be deleted, which is what keeps each series gapless.

use chrono::{Datelike, NaiveDate};

use crate::{
    crm::{Crm, Tx},
    error::Result,
    id::TenantId,
};

/// A series of document numbers, each counted on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Series {
    /// `INV-…`, at issue.
    Invoice,
    /// `QUO-…`, when sent.
    Quote,
    /// `DN-…`, when shipped.
    DeliveryNote,
    /// `CN-…`, when issued (created).
    CreditNote,
}

impl Series {
    const fn prefix(self) -> &'static str {
        match self {
            Self::Invoice => "INV",
            Self::Quote => "QUO",
            Self::DeliveryNote => "DN",
            Self::CreditNote => "CN",
        }
    }

    /// The counter's name, without the year (`invoice` counts in `invoice:2026`).
    const fn counter(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Quote => "quote",
            Self::DeliveryNote => "delivery_note",
            Self::CreditNote => "credit_note",
        }
    }
}

/// The next number of a series, read but not yet taken: [`NextNumber::take`] adds the
/// counter's move to the unit of work that stores the numbered document.
#[derive(Debug)]
pub(crate) struct NextNumber {
    /// The document's date: the tenant's today.
    pub date: NaiveDate,
    /// The formatted number, `INV-2026-000001`.
    pub number: String,
    key: String,
    last: u64,
}

impl NextNumber {
    /// Reads the tenant's counter for `series` in the current year.
    pub(crate) async fn read(crm: &Crm, tenant: TenantId, series: Series) -> Result<Self> {
        let date = crm.today(tenant).await?;
        let key = format!("{}:{}", series.counter(), date.year());
        let last = crm.storage.counter(tenant, &key).await?;
        let number = format!("{}-{}-{:06}", series.prefix(), date.year(), last + 1);
        Ok(Self { date, number, key, last })
    }

    /// Moves the counter in `tx`: the commit fails with a tenant conflict if another
    /// writer took this number first.
    pub(crate) fn take(self, tx: &mut Tx<'_>) -> String {
        tx.counter(self.key, self.last, self.last + 1);
        self.number
    }
}
