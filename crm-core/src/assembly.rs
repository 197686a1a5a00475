//! How a [`Crm`] is put together: the kernel's unit of work, with the access area's
//! audit log and the notifications area storing what it journals. The one module that
//! sees both the kernel and the areas it wires in.

use std::sync::Arc;

use crate::{
    access::audit::AuditLog,
    crm::{Crm, CrmBuilder},
    journal::Journal,
    notifications::Notification,
    storage::Storage,
};

/// Audit entries become [`AuditLog`] records, assignment notices [`Notification`]s.
const JOURNAL: Journal = Journal { audit: AuditLog::record_fact, notice: Notification::record_notice };

impl Crm {
    /// A CRM over `storage` with the system clock and production password hashing.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self::builder(storage).build()
    }

    /// A builder over `storage`.
    pub fn builder(storage: Arc<dyn Storage>) -> CrmBuilder {
        CrmBuilder::assemble(storage, JOURNAL)
    }
}
