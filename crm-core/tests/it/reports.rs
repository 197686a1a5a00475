//! Reports over a small, known data set.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use crm_core::{
    CrmError,
    customers::companies::NewCompany,
    customers::deals::{DealStage, NewDeal},
    customers::leads::{ConvertLead, LeadSource, NewLead},
    entity::Entity,
    money::Currency,
    sales::invoices::NewInvoice,
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    sales::products::NewProduct,
};
use rust_decimal_macros::dec;

use crate::support::world;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[tokio::test]
async fn reports_sum_what_the_services_wrote() {
    let w = world().await;
    let (crm, m) = (&w.crm, &w.manager);
    let deal = |title: &str, amount| NewDeal {
        title: title.into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount,
        currency: Currency::EUR,
        stage: Some(DealStage::Proposal),
        expected_close_date: None,
    };
    let won = crm.deals().create(m, deal("won", dec!(100))).await.unwrap();
    crm.deals().change_stage(m, won.id(), DealStage::ClosedWon, None, None).await.unwrap();
    let lost = crm.deals().create(m, deal("lost", dec!(100))).await.unwrap();
    crm.deals().change_stage(m, lost.id(), DealStage::ClosedLost, Some("price".into()), None).await.unwrap();
    crm.deals().create(m, deal("open", dec!(1000))).await.unwrap();

    let pipeline = crm.reports().pipeline(m).await.unwrap();
    assert_eq!(pipeline.len(), 1);
    assert_eq!(
        (pipeline[0].stage, pipeline[0].value, pipeline[0].weighted_value),
        (DealStage::Proposal, dec!(1000), dec!(500.00))
    );
    let rate = crm.reports().win_rate(m, None, None).await.unwrap();
    assert_eq!((rate.won, rate.lost, rate.percent), (1, 1, Some(dec!(50.00))));

    let lead = |source| NewLead {
        first_name: "L".into(),
        last_name: "S".into(),
        email: None,
        phone: None,
        company_name: None,
        source,
        score: None,
        owner_id: None,
        notes: None,
    };
    let converted = crm.leads().create(m, lead(LeadSource::Event)).await.unwrap();
    crm.leads().convert(m, converted.id(), ConvertLead::default()).await.unwrap();
    crm.leads().create(m, lead(LeadSource::Event)).await.unwrap();
    crm.leads().create(m, lead(LeadSource::Website)).await.unwrap();
    let by_source = crm.reports().lead_conversion(m).await.unwrap();
    let event = by_source.iter().find(|s| s.source == LeadSource::Event).unwrap();
    assert_eq!((event.leads, event.converted, event.percent), (2, 1, dec!(50.00)));

    let company =
        crm.companies().create(m, NewCompany { name: "Buyer".into(), ..NewCompany::default() }).await.unwrap();
    let product = crm
        .products()
        .create(
            m,
            NewProduct {
                sku: "TOP".into(),
                name: "Top".into(),
                description: None,
                unit_price: dec!(25),
                currency: Currency::EUR,
                tax_rate: dec!(0),
                unit: None,
                category_id: None,
            },
        )
        .await
        .unwrap();
    let line = LineInput { product_id: Some(product.id()), ..LineInput::new("Top", dec!(4), dec!(25)) };
    let invoice = crm
        .invoices()
        .create(
            m,
            NewInvoice {
                company_id: company.id(),
                contact_id: None,
                owner_id: None,
                currency: Currency::EUR,
                lines: vec![line],
                payment_terms_days: Some(10),
                notes: None,
            },
        )
        .await
        .unwrap();
    let invoice = crm.invoices().issue(m, invoice.id(), None).await.unwrap();
    let pay = |amount, day| NewPayment {
        invoice_id: invoice.id(),
        amount,
        method: PaymentMethod::Cash,
        paid_on: Some(day),
        reference: None,
    };
    // Payments are dated no later than today: record them on the day of the later one,
    // then come back to the issue date for the aging below.
    let issue_day = w.crm.now();
    w.clock.set(Utc.with_ymd_and_hms(2026, 4, 2, 12, 0, 0).unwrap());
    crm.payments().record(m, pay(dec!(30), date(2026, 3, 20))).await.unwrap();
    crm.payments().record(m, pay(dec!(20), date(2026, 4, 2))).await.unwrap();
    w.clock.set(issue_day);
    let revenue = crm.reports().revenue_by_month(m, date(2026, 1, 1), date(2027, 1, 1)).await.unwrap();
    assert_eq!(
        revenue.iter().map(|r| (r.month, r.amount)).collect::<Vec<_>>(),
        vec![(date(2026, 3, 1), dec!(30)), (date(2026, 4, 1), dec!(20))]
    );

    let top = crm.reports().top_products(m, date(2026, 1, 1), date(2027, 1, 1), 5).await.unwrap();
    assert_eq!(
        top.iter().map(|t| (t.product_id, t.quantity, t.revenue)).collect::<Vec<_>>(),
        vec![(product.id(), dec!(4), dec!(100))]
    );

    // Issued 2026-03-15, due 10 days later; on 2026-04-10 it is 16 days overdue.
    assert!(crm.reports().overdue_totals(m).await.unwrap().is_empty());
    w.clock.set(Utc.with_ymd_and_hms(2026, 4, 10, 12, 0, 0).unwrap());
    let aging = crm.reports().invoice_aging(m).await.unwrap();
    assert_eq!(
        aging.iter().map(|b| (b.bucket, b.invoices, b.balance_due)).collect::<Vec<_>>(),
        vec![("1-30", 1, dec!(50))]
    );
    assert_eq!(crm.reports().overdue_totals(m).await.unwrap().get(&Currency::EUR), Some(&dec!(50)));
    w.clock.set(w.crm.now() + Duration::days(100));
    assert_eq!(crm.reports().invoice_aging(m).await.unwrap()[0].bucket, "90+");
}

#[tokio::test]
async fn reports_are_for_admins_and_managers() {
    let w = world().await;
    assert!(w.crm.reports().pipeline(&w.admin).await.is_ok());
    for p in [&w.user, &w.client] {
        assert!(matches!(w.crm.reports().pipeline(p).await, Err(CrmError::Forbidden(_))));
        assert!(matches!(w.crm.reports().invoice_aging(p).await, Err(CrmError::Forbidden(_))));
    }
}
