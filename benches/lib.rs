//! Shared set-up for the benchmarks: seeding data sets through the services, so every
//! storage is measured on the same data shape.

use crm_core::{
    Crm, Principal,
    companies::{Company, NewCompany},
    contacts::NewContact,
    entity::Entity,
};

/// The data set of the core benchmarks: `contacts` contacts spread evenly over
/// `companies` companies.
pub struct Dataset {
    /// The companies, in creation order.
    pub companies: Vec<Company>,
    /// Ids of every seeded contact, in creation order.
    pub contact_ids: Vec<crm_core::Id<crm_core::contacts::Contact>>,
}

/// Seeds companies and contacts through the services (with their audit entries).
pub async fn seed(crm: &Crm, p: &Principal, companies: usize, contacts: usize) -> Dataset {
    let mut company_list = Vec::with_capacity(companies);
    for i in 0..companies {
        let input = NewCompany { name: format!("Company {i:05}"), ..NewCompany::default() };
        company_list.push(crm.companies().create(p, input).await.expect("seed company"));
    }
    let mut contact_ids = Vec::with_capacity(contacts);
    for i in 0..contacts {
        let contact =
            crm.contacts().create(p, new_contact(i, &company_list[i % companies])).await.expect("seed contact");
        contact_ids.push(contact.id());
    }
    Dataset { companies: company_list, contact_ids }
}

/// The `i`-th contact of the data set's shape.
pub fn new_contact(i: usize, company: &Company) -> NewContact {
    NewContact {
        first_name: format!("First{i}"),
        last_name: format!("Last{:04}", i % 5000),
        email: Some(format!("contact{i}@bench.test")),
        company_id: Some(company.id()),
        ..NewContact::default()
    }
}
