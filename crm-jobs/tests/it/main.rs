//! crm-jobs' integration tests: one binary, one module per concern.

// Test code may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod address;
mod delivery;
mod mail;
mod relay;
