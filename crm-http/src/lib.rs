//! The REST server for crm-core (poem + poem-openapi) and the `crm-server` binary.
//!
//! The crate translates and nothing more: handlers authenticate the caller, parse the
//! request, call one crm-core service with the caller's principal, and present the
//! result. Every business rule and permission lives in crm-core; every error becomes a
//! status in one place ([`error`]).

pub mod api;
pub mod app;
pub mod auth;
pub mod backends;
pub mod config;
pub mod context;
pub mod csrf;
pub mod edge;
pub mod error;
pub mod idempotency;
pub mod input;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod offload;
pub mod output;
pub mod proxies;
pub mod request;
pub mod server;
pub mod storage_url;
pub mod traces;
pub mod workers;

pub use crate::{
    app::{AppOptions, build},
    context::AppCtx,
    error::ApiError,
};
