//! Access: who may act and what they did. Tenants and users, sign-in sessions, API
//! keys, and the audit log. The lowest business area: every other one names users.

pub mod api_keys;
pub mod audit;
pub mod password_reset;
pub(crate) mod security;
pub mod sessions;
pub mod settings;
pub mod users;
