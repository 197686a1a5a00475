//! Every conformance case, by name: each takes a fresh, empty storage and panics (with
//! a message naming what broke) when the storage misbehaves. The cases live in
//! modules along their seams; this module gathers them for `conformance_suite!`.

pub use super::{flows::*, listing::*, outbox::*, records::*, services::*, support::company};
