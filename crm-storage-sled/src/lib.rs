//! Embedded, durable storage for crm-core on [sled](https://docs.rs/sled/0.34): the
//! server's default storage.
//!
//! [`SledStorage`] implements the whole [`crm_core::storage::Storage`] contract and runs
//! the core's conformance suite. Every entity kind has its own records, index, sorted
//! index and uniques trees; listings walk an index, never the whole kind, when a filter
//! or sort has one (an equality filter with a sort walks the pair's sorted index). A commit checks the batch with [`crm_core::storage::check_batch`] and writes
//! every tree it touches in one sled transaction, which sled recovers all-or-nothing
//! after a crash; with the default [`Durability::Flush`] it is on disk before `commit`
//! returns. Commits of one tenant run one at a time; tenants never wait for each other.
//!
//! Every sled call runs on tokio's blocking pool, never on a runtime worker: the
//! storage must be used inside a tokio runtime.
//!
//! A record's value holds its version, its JSON document and the index data it was
//! written with (so an update removes exactly the index entries it replaces); keys are
//! binary and order-preserving. The data directory records a format version
//! ([`FORMAT_VERSION`]; an older one is migrated at open, a newer one refused);
//! [`SledStorage::export`] and [`SledStorage::import`] move a whole store through a
//! portable JSON-lines file.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use crm_core::Crm;
//! use crm_storage_sled::SledStorage;
//!
//! let storage = SledStorage::open("./crm-data")?;
//! let crm = Crm::new(Arc::new(storage));
//! # let _ = crm; Ok(()) }
//! ```

mod commit;
mod dump;
mod entry;
mod flusher;
mod keys;
mod listing;
mod locks;
mod migrate;
mod names;
mod open;
mod outbox;
mod shared;
mod store;

pub use dump::{DUMP_FORMAT, DumpError, DumpStats};
pub use open::{Durability, FORMAT_VERSION, OpenError, SledOptions};
pub use store::SledStorage;
