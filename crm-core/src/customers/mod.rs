//! Customers: the companies the business sells to, their contacts, leads in the
//! funnel, and deals in the pipeline. Leads sit on top: converting one creates a
//! company, a contact and a deal.

pub mod companies;
pub mod contacts;
pub mod deals;
pub mod leads;
pub(crate) mod links;
