//! # crm-jobs
//!
//! What the CRM does after a commit, and what needs the outside world: the outbox
//! [`relay`] that runs each event's reactions; the workers of the job queues, which
//! send webhooks ([`attempts`], over outbound HTTP that cannot be pointed at the
//! server's own network: [`delivery`], [`address`]), send emails over SMTP ([`mail`])
//! and compute report runs ([`reports`]). crm-core decides everything (which events,
//! which jobs, signatures, retry times, who may see what); this crate carries it out.

pub mod address;
pub mod attempts;
pub mod delivery;
pub mod mail;
mod queue;
pub mod relay;
pub mod reports;
#[cfg(feature = "testing")]
pub mod testing;

pub use attempts::AttemptWorker;
pub use delivery::{DeliveryFailure, DeliveryOptions, DeliveryOutcome, WebhookClient};
pub use mail::{EmailWorker, Mailer};
pub use relay::{Relay, RelayOptions};
pub use reports::ReportWorker;

/// The job queues this crate's workers take jobs from: webhook attempts, emails and
/// report runs (what a queue-depth gauge watches).
pub const QUEUES: [&str; 3] =
    [crm_core::webhooks::attempts::WEBHOOK_ATTEMPTS, crm_core::mail::EMAILS, crm_core::reports::runs::REPORTS_QUEUE];
