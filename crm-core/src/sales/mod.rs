//! Sales: the product catalog, document lines, quotes, invoices, payments against
//! invoices, and delivery notes. Quotes sit above invoices: accepting one drafts one.

pub mod delivery_notes;
pub mod invoices;
pub mod lines;
pub mod payments;
pub mod products;
pub mod quotes;
