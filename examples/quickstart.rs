//! Embedding crm-core: bootstrap a tenant, act as its admin, create a company and a
//! lead, convert the lead, quote, accept, invoice, and record payments, all on
//! in-memory storage.
//!
//! `cargo run -p crm-examples --bin quickstart`

use crm_core::{
    Crm, Result,
    entity::Entity,
    leads::{ConvertCompany, ConvertDeal, ConvertLead, LeadSource, NewLead},
    money::Currency,
    storage::memory::MemoryStorage,
    users::Bootstrap,
};
use rust_decimal::Decimal;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // A CRM over in-memory storage; any `Arc<dyn Storage>` works the same way.
    let crm = Crm::new(MemoryStorage::shared());

    // The first tenant and its admin; every call acts as a principal.
    let (tenant, _admin_user, admin) = crm
        .users()
        .bootstrap(Bootstrap {
            tenant_name: "Acme".into(),
            admin_email: "admin@acme.test".into(),
            admin_password: "a long passphrase".into(),
            admin_first_name: "Ada".into(),
            admin_last_name: "Admin".into(),
        })
        .await?;
    println!("tenant {} ({})", tenant.name, tenant.meta.id);

    // A lead, qualified and converted into a company, a contact and a deal at once.
    let lead = crm
        .leads()
        .create(
            &admin,
            NewLead {
                first_name: "Grace".into(),
                last_name: "Hopper".into(),
                email: Some("grace@globex.test".into()),
                phone: None,
                company_name: Some("Globex".into()),
                source: LeadSource::Referral,
                score: Some(80),
                owner_id: None,
                notes: None,
            },
        )
        .await?;
    let converted = crm
        .leads()
        .convert(
            &admin,
            lead.id(),
            ConvertLead {
                company: ConvertCompany::New(None),
                deal: Some(ConvertDeal {
                    title: "Globex rollout".into(),
                    amount: Decimal::new(1_200_000, 2),
                    currency: Currency::EUR,
                }),
                ..ConvertLead::default()
            },
        )
        .await?;
    let company = converted.company.expect("the conversion created a company");
    let deal = converted.deal.expect("the conversion opened a deal");
    println!(
        "converted lead into company {:?}, contact {} {}, deal {:?}",
        company.name, converted.contact.first_name, converted.contact.last_name, deal.title
    );
    Ok(())
}
