//! # crm-core
//!
//! The whole CRM domain with no network, database or HTTP: entities, the business
//! rules in one service per area, the permission matrix, the storage contract every
//! adapter implements, and a complete in-memory storage.
//!
//! ```no_run
//! # async fn demo() -> crm_core::Result<()> {
//! use crm_core::{Crm, storage::memory::MemoryStorage, users::Bootstrap, companies::NewCompany};
//!
//! let crm = Crm::new(MemoryStorage::shared());
//! let (_tenant, _admin, admin) = crm
//!     .users()
//!     .bootstrap(Bootstrap {
//!         tenant_name: "Acme".into(),
//!         admin_email: "admin@acme.test".into(),
//!         admin_password: "correct horse battery".into(),
//!         admin_first_name: "Ada".into(),
//!         admin_last_name: "Admin".into(),
//!     })
//!     .await?;
//! let company = crm.companies().create(&admin, NewCompany { name: "Globex".into(), ..Default::default() }).await?;
//! # let _ = company; Ok(()) }
//! ```
//!
//! Every mutating call validates its input, checks the principal's rights, and commits
//! its records, audit entries, notifications and outbox events in one atomic batch.

pub mod api_keys;
pub mod audit;
pub mod authz;
pub mod companies;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod contacts;
mod crm;
pub mod deals;
pub mod delivery_notes;
pub mod entity;
mod error;
mod id;
mod input;
pub mod invoices;
pub mod leads;
pub mod money;
pub mod notifications;
pub mod payments;
pub mod products;
pub mod projects;
pub mod quotes;
pub mod rate_limit;
pub mod reports;
pub mod sessions;
pub mod state;
pub mod storage;
pub mod users;

pub use crate::{
    authz::{Access, Action, Principal, Resource, Role},
    crm::{Clock, Crm, CrmBuilder, ManualClock, PageRequest, SystemClock},
    error::{CrmError, FieldError, Result, ValidationErrors, Validator},
    id::{Id, Meta, TenantId},
    state::StateMachine,
    storage::Page,
};

/// The README's code blocks, compiled as doc tests so the quickstart cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
