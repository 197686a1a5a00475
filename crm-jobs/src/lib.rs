//! # crm-jobs
//!
//! What the CRM does after a commit that needs the outside world. Today: webhook
//! deliveries ([`delivery`]) over outbound HTTP that cannot be pointed at the
//! server's own network ([`address`]). The outbox relay, SMTP and the scheduler will
//! join it; crm-core decides everything (which events, signatures, retry times) and
//! this crate only carries it out.

pub mod address;
pub mod attempts;
pub mod delivery;
pub mod mail;
mod queue;
pub mod relay;
#[cfg(feature = "testing")]
pub mod testing;

pub use attempts::AttemptWorker;
pub use delivery::{DeliveryFailure, DeliveryOptions, DeliveryOutcome, WebhookClient};
pub use mail::{EmailWorker, Mailer};
pub use relay::{Relay, RelayOptions};
