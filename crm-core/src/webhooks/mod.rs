//! Webhooks: what the core decides about telling other systems what happened. The
//! event catalogue (names and payload types), Standard Webhooks signatures and their
//! verification, the retry schedule, the endpoints (admins) and the delivery log.
//! Sending is I/O and lives in `crm-jobs`.

pub mod attempts;
pub mod catalogue;
pub mod deliveries;
pub mod endpoints;
pub mod message;
pub mod schedule;
pub mod signing;
