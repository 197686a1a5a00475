//! The REST server for crm-core (poem + poem-openapi) and the `crm-server` binary.
//!
//! Not implemented yet: handlers will parse requests, call crm-core services with the
//! authenticated principal, and map `crm_core::CrmError` to statuses in one place.
