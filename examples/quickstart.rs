//! Embedding crm-core: bootstrap a tenant, act as its admin, create a company and a
//! lead, convert the lead, quote, accept, invoice, and record payments, all on
//! in-memory storage.
//!
//! `cargo run -p crm-examples --bin quickstart`

use chrono::Duration;
use crm_core::{
    Crm, Result,
    access::users::Bootstrap,
    customers::leads::{ConvertCompany, ConvertDeal, ConvertLead, LeadSource, NewLead},
    entity::Entity,
    money::Currency,
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    sales::quotes::NewQuote,
    storage::memory::MemoryStorage,
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

    // A quote for the deal: 20 licences with 21 % tax, and a discounted setup fee.
    let quote = crm
        .quotes()
        .create(
            &admin,
            NewQuote {
                company_id: company.id(),
                contact_id: Some(converted.contact.id()),
                deal_id: Some(deal.id()),
                owner_id: None,
                currency: Currency::EUR,
                lines: vec![
                    LineInput {
                        tax_rate: Decimal::new(21, 0),
                        ..LineInput::new("Licence", Decimal::new(20, 0), Decimal::new(49_900, 2))
                    },
                    LineInput {
                        discount_percent: Decimal::new(10, 0),
                        ..LineInput::new("Setup", Decimal::ONE, Decimal::new(150_000, 2))
                    },
                ],
                valid_until: crm.today(admin.tenant_id()).await? + Duration::days(30),
                notes: None,
            },
        )
        .await?;
    println!("quote total {} {}", quote.totals.total, quote.currency);

    // Sent, accepted (which creates the invoice), issued (which numbers it).
    let quote = crm.quotes().send(&admin, quote.id(), Some(quote.meta.version)).await?;
    let (_quote, invoice) = crm.quotes().accept(&admin, quote.id(), Some(quote.meta.version)).await?;
    let invoice = crm.invoices().issue(&admin, invoice.id(), Some(invoice.meta.version)).await?;
    println!(
        "issued {} due {}",
        invoice.number.as_deref().unwrap_or("?"),
        invoice.due_date.map(|d| d.to_string()).unwrap_or_default()
    );

    // Two payments settle it; a third would exceed the balance and is refused.
    let half = (invoice.balance_due / Decimal::TWO).round_dp(2);
    for amount in [half, invoice.balance_due - half] {
        let payment = NewPayment {
            invoice_id: invoice.id(),
            amount,
            method: PaymentMethod::BankTransfer,
            paid_on: None,
            reference: None,
        };
        crm.payments().record(&admin, payment).await?;
    }
    let extra = NewPayment {
        invoice_id: invoice.id(),
        amount: Decimal::ONE,
        method: PaymentMethod::Cash,
        paid_on: None,
        reference: None,
    };
    if let Err(refused) = crm.payments().record(&admin, extra).await {
        println!("extra payment refused: {refused}");
    }

    let invoice = crm.invoices().get(&admin, invoice.id()).await?;
    println!(
        "final invoice {}: status {}, total {} {}, paid {}, balance due {}",
        invoice.number.as_deref().unwrap_or("?"),
        invoice.status,
        invoice.totals.total,
        invoice.currency,
        invoice.amount_paid,
        invoice.balance_due,
    );
    Ok(())
}
