//! Cross-record consistency of documents (quotes, invoices, projects): the contact and
//! the deal a document names belong to the document's own customer company.

use crate::{
    crm::{Crm, Tx},
    customers::{companies::Company, contacts::Contact, deals::Deal},
    entity::Entity,
    error::{CrmError, Result, Validator},
    id::{Id, TenantId},
};

/// The contact and deal a document names, read and found to belong to its company.
/// [`CompanyLinks::guard`] makes the commit fail if either changes meanwhile, so a
/// contact moved to another company at the same time cannot slip through.
#[derive(Debug, Default)]
pub(crate) struct CompanyLinks {
    contact: Option<Contact>,
    deal: Option<Deal>,
}

impl CompanyLinks {
    /// Reads `contact` and `deal` (when named) in the tenant and refuses, naming
    /// `contact_id` or `deal_id`, one that does not exist or belongs to another company.
    pub(crate) async fn check(
        crm: &Crm,
        tenant: TenantId,
        company: Id<Company>,
        contact: Option<Id<Contact>>,
        deal: Option<Id<Deal>>,
    ) -> Result<Self> {
        let mut v = Validator::new();
        let contact = match contact {
            Some(id) => linked(crm, tenant, id, &mut v, "contact_id").await?,
            None => None,
        };
        let deal = match deal {
            Some(id) => linked(crm, tenant, id, &mut v, "deal_id").await?,
            None => None,
        };
        if let Some(c) = &contact {
            v.check(c.company_id == Some(company), "contact_id", "must be a contact of the same company");
        }
        if let Some(d) = &deal {
            v.check(d.company_id == Some(company), "deal_id", "must be a deal of the same company");
        }
        v.finish()?;
        Ok(Self { contact, deal })
    }

    /// Fails the unit of work's commit unless the checked records are unchanged.
    pub(crate) fn guard(&self, tx: &mut Tx<'_>) {
        if let Some(contact) = &self.contact {
            tx.check(contact);
        }
        if let Some(deal) = &self.deal {
            tx.check(deal);
        }
    }
}

/// The named record, or a field error when the tenant has none by that id.
async fn linked<E: Entity>(
    crm: &Crm,
    tenant: TenantId,
    id: Id<E>,
    v: &mut Validator,
    field: &str,
) -> Result<Option<E>> {
    match crm.fetch(tenant, id).await {
        Ok(record) => Ok(Some(record)),
        Err(CrmError::NotFound { kind, .. }) => {
            v.push(field, format!("{kind} {} does not exist", id.uuid()));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
