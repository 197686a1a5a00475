//! Sales: the product catalog, document lines, quotes, invoices, payments against
//! invoices and their refunds, credit notes, and delivery notes. Quotes sit above
//! invoices: accepting one drafts one.

pub mod credit_notes;
pub mod delivery_notes;
pub mod invoices;
pub mod lines;
pub(crate) mod numbering;
pub mod payments;
pub mod products;
pub mod quotes;
pub mod refunds;
