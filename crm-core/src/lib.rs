//! # crm-core
//!
//! The whole CRM domain with no network, database or HTTP: entities, the business
//! rules in one service per area, the permission matrix, the storage contract every
//! adapter implements, and a complete in-memory storage.
//!
//! ```no_run
//! # async fn demo() -> crm_core::Result<()> {
//! use crm_core::{Crm, access::users::Bootstrap, customers::companies::NewCompany, storage::memory::MemoryStorage};
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

// The kernel: no module here imports a business area (held by tests/it/invariants.rs).
pub mod authz;
mod clock;
mod crm;
pub mod entity;
mod error;
pub mod events;
pub mod fields;
mod id;
pub mod idempotency;
mod input;
pub mod jobs;
mod journal;
pub mod leases;
mod live;
pub mod mail;
pub mod money;
pub mod passwords;
pub mod principal_cache;
pub mod rate_limit;
pub mod session_store;
pub mod state;
pub mod storage;
pub mod tenant_settings;

// The business areas, each above the kernel and the areas listed before it.
pub mod access;
pub mod customers;
pub mod emails;
pub mod notifications;
pub mod reports;
pub mod sales;
pub mod webhooks;
pub mod work;

// The assembly of a `Crm` from the kernel and the areas, and the jobs that span them.
mod assembly;
pub mod schedule;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use crate::{
    assembly::fields_of,
    authz::{Access, Action, Principal, Resource, Role},
    crm::{
        Clock, Crm, CrmBuilder, DEFAULT_EVENT_RETENTION, DEFAULT_REPORT_RETENTION, ManualClock, PageRequest,
        SystemClock,
    },
    error::{CrmError, FieldError, Result, ValidationErrors, Validator},
    id::{Id, Meta, TenantId},
    state::StateMachine,
    storage::Page,
};

/// The README's code blocks, compiled as doc tests so the quickstart cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
