//! How a [`Crm`] is put together: the kernel's unit of work, with the access area's
//! audit log and the notifications area storing what it journals. The one module that
//! sees both the kernel and the areas it wires in.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    access::{api_keys::ApiKey, audit::AuditLog, users::Tenant, users::User},
    authz::Principal,
    crm::{Crm, CrmBuilder},
    customers::{companies::Company, contacts::Contact, deals::Deal, leads::Lead},
    entity::Entity,
    error::{CrmError, Result},
    fields::Field,
    id::Id,
    journal::Journal,
    notifications::Notification,
    sales::{
        credit_notes::CreditNote,
        delivery_notes::DeliveryNote,
        invoices::Invoice,
        payments::Payment,
        products::{Product, ProductCategory},
        quotes::Quote,
        refunds::Refund,
    },
    session_store::Session,
    storage::{EntityKind, Storage},
    tenant_settings::TenantSettings,
    work::{milestones::Milestone, projects::Project, tasks::Task},
};

/// Audit entries become [`AuditLog`] records, assignment notices [`Notification`]s.
const JOURNAL: Journal = Journal { audit: AuditLog::record_fact, notice: Notification::record_notice };

impl Crm {
    /// Reads the record `kind` `id` as `p` would with a GET: `NotFound` or `Forbidden`
    /// when `p` may not see it. Kinds no event is about are never seen.
    pub(crate) async fn read_kind(&self, p: &Principal, kind: EntityKind, id: Uuid) -> Result<()> {
        macro_rules! read {
            ($($kind:ident => $entity:ty),* $(,)?) => {
                match kind {
                    $(EntityKind::$kind => self.read::<$entity>(p, Id::from_uuid(id)).await.map(drop),)*
                    _ => Err(CrmError::NotFound { kind, id }),
                }
            };
        }
        read! {
            Company => Company, Contact => Contact, Lead => Lead, Deal => Deal, Quote => Quote,
            Invoice => Invoice, Payment => Payment, DeliveryNote => DeliveryNote, CreditNote => CreditNote,
            Refund => Refund, Project => Project, Milestone => Milestone, Task => Task, Product => Product,
            ProductCategory => ProductCategory, User => User,
        }
    }

    /// A CRM over `storage` with the system clock and production password hashing.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self::builder(storage).build()
    }

    /// A builder over `storage`.
    pub fn builder(storage: Arc<dyn Storage>) -> CrmBuilder {
        CrmBuilder::assemble(storage, JOURNAL)
    }
}

/// The indexed fields of every stored kind, as its entity declares them: what a
/// storage adapter indexes (PostgreSQL's columns are these) and listings filter on.
pub fn fields_of(kind: EntityKind) -> &'static [Field] {
    match kind {
        EntityKind::Tenant => Tenant::FIELDS,
        EntityKind::User => User::FIELDS,
        EntityKind::Company => Company::FIELDS,
        EntityKind::Contact => Contact::FIELDS,
        EntityKind::Lead => Lead::FIELDS,
        EntityKind::Deal => Deal::FIELDS,
        EntityKind::Quote => Quote::FIELDS,
        EntityKind::Invoice => Invoice::FIELDS,
        EntityKind::Payment => Payment::FIELDS,
        EntityKind::DeliveryNote => DeliveryNote::FIELDS,
        EntityKind::CreditNote => CreditNote::FIELDS,
        EntityKind::Refund => Refund::FIELDS,
        EntityKind::Project => Project::FIELDS,
        EntityKind::Milestone => Milestone::FIELDS,
        EntityKind::Task => Task::FIELDS,
        EntityKind::Product => Product::FIELDS,
        EntityKind::ProductCategory => ProductCategory::FIELDS,
        EntityKind::Notification => Notification::FIELDS,
        EntityKind::ApiKey => ApiKey::FIELDS,
        EntityKind::AuditLog => AuditLog::FIELDS,
        EntityKind::Session => Session::FIELDS,
        EntityKind::TenantSettings => TenantSettings::FIELDS,
        EntityKind::IdempotencyKey => crate::idempotency::IdempotencyRecord::FIELDS,
        EntityKind::Job => crate::jobs::JobRecord::FIELDS,
        EntityKind::WebhookEndpoint => crate::webhooks::endpoints::WebhookEndpoint::FIELDS,
        EntityKind::WebhookDelivery => crate::webhooks::deliveries::WebhookDelivery::FIELDS,
        EntityKind::Lease => crate::leases::LeaseRecord::FIELDS,
        EntityKind::ReportRun => crate::reports::runs::ReportRun::FIELDS,
    }
}
