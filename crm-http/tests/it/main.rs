//! crm-http's integration tests: one binary, one module per concern. Everything runs
//! through poem's test client over in-memory storage, except `binary`, which starts
//! the real `crm-server` on a free port of 127.0.0.1, and `ts_client`, which generates
//! a TypeScript client from the spec and type-checks a program with it (Node.js, npm).

// Test code may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod after_commit;
mod auth;
mod binary;
mod composition;
mod connections;
mod documents;
mod endpoints;
mod errors;
mod idempotency;
mod live;
mod matrix;
mod metrics;
mod openapi;
mod outage;
mod report_runs;
mod resources;
mod responsiveness;
mod rules;
mod sessions;
mod sign_in;
mod support;
mod tenants;
mod traces;
mod ts_client;
mod two_instances;
mod webhooks;
mod workers;
