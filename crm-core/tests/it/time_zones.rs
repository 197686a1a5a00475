//! Tenant time zones: "today" is the tenant's calendar date, for every document date.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use crm_core::{
    CrmError, PageRequest,
    access::settings::SettingsPatch,
    customers::companies::{Company, NewCompany},
    entity::Entity,
    money::Currency,
    sales::invoices::{InvoiceFilter, NewInvoice},
    sales::lines::LineInput,
    sales::payments::{NewPayment, PaymentMethod},
    sales::quotes::NewQuote,
};
use rust_decimal_macros::dec;

use crate::support::{World, world};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

async fn belgrade_world() -> (World, Company) {
    let w = world().await;
    let zone = SettingsPatch { time_zone: Some("Europe/Belgrade".into()), ..SettingsPatch::default() };
    w.crm.settings().update(&w.admin, zone).await.unwrap();
    // 23:30 UTC on New Year's Eve is 00:30 on 1 January 2027 in Belgrade (UTC+1).
    w.clock.set(Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap());
    let company = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Beograd".into(), ..NewCompany::default() })
        .await
        .unwrap();
    (w, company)
}

fn invoice_input(company: &Company) -> NewInvoice {
    NewInvoice {
        company_id: company.id(),
        contact_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Work", dec!(1), dec!(100))],
        payment_terms_days: Some(10),
        notes: None,
    }
}

#[tokio::test]
async fn an_invoice_issued_after_midnight_in_belgrade_is_numbered_and_dated_in_the_new_year() {
    let (w, company) = belgrade_world().await;
    assert_eq!(w.crm.today(w.admin.tenant_id()).await.unwrap(), date(2027, 1, 1));
    let draft = w.crm.invoices().create(&w.manager, invoice_input(&company)).await.unwrap();
    let issued = w.crm.invoices().issue(&w.manager, draft.id(), None).await.unwrap();
    assert_eq!(issued.number.as_deref(), Some("INV-2027-000001"));
    assert_eq!((issued.issue_date, issued.due_date), (Some(date(2027, 1, 1)), Some(date(2027, 1, 11))));
}

#[tokio::test]
async fn quote_validity_is_checked_against_the_tenants_today() {
    let (w, company) = belgrade_world().await;
    let quote = |valid_until| NewQuote {
        company_id: company.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Widget", dec!(1), dec!(10))],
        valid_until,
        notes: None,
    };
    // Still today in UTC, already yesterday in Belgrade.
    let err = w.crm.quotes().create(&w.user, quote(date(2026, 12, 31))).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "valid_until"), "{err:?}");
    let valid = w.crm.quotes().create(&w.user, quote(date(2027, 1, 1))).await.unwrap();
    let sent = w.crm.quotes().send(&w.user, valid.id(), None).await.unwrap();
    // 23:30 UTC on 1 January is 2 January in Belgrade: the quote has lapsed there.
    w.clock.set(Utc.with_ymd_and_hms(2027, 1, 1, 23, 30, 0).unwrap());
    let err = w.crm.quotes().accept(&w.user, sent.id(), None).await.unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "valid_until"), "{err:?}");
}

#[tokio::test]
async fn overdue_aging_and_payment_dates_follow_the_tenants_today() {
    let (w, company) = belgrade_world().await;
    let draft = w.crm.invoices().create(&w.manager, invoice_input(&company)).await.unwrap();
    let issued = w.crm.invoices().issue(&w.manager, draft.id(), None).await.unwrap();
    // Due 11 January; 23:30 UTC on the 11th is the 12th in Belgrade: overdue there, not in UTC.
    w.clock.set(Utc.with_ymd_and_hms(2027, 1, 11, 23, 30, 0).unwrap());
    let overdue = InvoiceFilter { overdue: true, ..InvoiceFilter::default() };
    let listed = w.crm.invoices().list(&w.admin, &overdue, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|i| i.id()).collect::<Vec<_>>(), vec![issued.id()]);
    let aging = w.crm.reports().invoice_aging(&w.admin).await.unwrap();
    assert_eq!(aging.iter().map(|b| (b.bucket, b.invoices)).collect::<Vec<_>>(), vec![("1-30", 1)]);
    let payment = NewPayment {
        invoice_id: issued.id(),
        amount: dec!(10),
        method: PaymentMethod::Cash,
        paid_on: None,
        reference: None,
    };
    assert_eq!(w.crm.payments().record(&w.manager, payment).await.unwrap().paid_on, date(2027, 1, 12));
}

#[tokio::test]
async fn a_changed_zone_takes_effect_on_the_next_call() {
    let w = world().await;
    w.clock.set(Utc.with_ymd_and_hms(2026, 6, 30, 23, 0, 0).unwrap());
    let tenant = w.admin.tenant_id();
    assert_eq!(w.crm.today(tenant).await.unwrap(), date(2026, 6, 30), "UTC by default");
    let tokyo = SettingsPatch { time_zone: Some("Asia/Tokyo".into()), ..SettingsPatch::default() };
    let settings = w.crm.settings().update(&w.admin, tokyo).await.unwrap();
    assert_eq!(w.crm.today(tenant).await.unwrap(), date(2026, 7, 1));
    let back = SettingsPatch { version: Some(settings.meta.version), time_zone: Some("America/New_York".into()) };
    w.crm.settings().update(&w.admin, back).await.unwrap();
    assert_eq!(w.crm.today(tenant).await.unwrap(), date(2026, 6, 30));
    w.clock.set(w.crm.now() + Duration::hours(5));
    assert_eq!(w.crm.today(tenant).await.unwrap(), date(2026, 7, 1));
}

#[tokio::test]
async fn only_admins_change_settings_everyone_reads_them_and_bad_zones_are_named() {
    let w = world().await;
    for (role, p) in w.principals() {
        let read = w.crm.settings().get(p).await.unwrap();
        assert_eq!((role, read.time_zone.name(), read.meta.version), (role, "UTC", 0));
    }
    let zone = || SettingsPatch { time_zone: Some("Europe/Belgrade".into()), ..SettingsPatch::default() };
    for p in [&w.manager, &w.user, &w.client] {
        assert!(matches!(w.crm.settings().update(p, zone()).await, Err(CrmError::Forbidden(_))));
    }
    for bad in ["Mars/Olympus", "europe/belgrade", "", "UTC\0"] {
        let patch = SettingsPatch { time_zone: Some(bad.into()), ..SettingsPatch::default() };
        let err = w.crm.settings().update(&w.admin, patch).await.unwrap_err();
        assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "time_zone"), "{bad:?}: {err:?}");
    }
    let stored = w.crm.settings().update(&w.admin, zone()).await.unwrap();
    assert_eq!((stored.time_zone.name(), stored.meta.version), ("Europe/Belgrade", 1));
    let stale = SettingsPatch { version: Some(0), ..zone() };
    assert!(matches!(w.crm.settings().update(&w.admin, stale).await, Err(CrmError::Conflict { .. })));
    assert_eq!(w.crm.settings().get(&w.user).await.unwrap().time_zone.name(), "Europe/Belgrade");
}

#[tokio::test]
async fn the_win_rate_counts_deals_by_the_day_they_closed_in_the_tenants_zone() {
    let (w, company) = belgrade_world().await;
    let new = crm_core::customers::deals::NewDeal {
        title: "New Year's deal".into(),
        company_id: Some(company.id()),
        contact_id: None,
        owner_id: None,
        amount: dec!(100),
        currency: Currency::EUR,
        stage: None,
        expected_close_date: None,
    };
    let deal = w.crm.deals().create(&w.manager, new).await.unwrap();
    let won = crm_core::customers::deals::DealStage::ClosedWon;
    w.crm.deals().change_stage(&w.manager, deal.id(), won, None, None).await.unwrap();
    let reports = w.crm.reports();
    let new_year = reports.win_rate(&w.admin, Some(date(2027, 1, 1)), Some(date(2027, 1, 2))).await.unwrap();
    assert_eq!((new_year.won, new_year.lost), (1, 0), "closed at 00:30 on 1 January in Belgrade");
    let old_year = reports.win_rate(&w.admin, Some(date(2026, 12, 31)), Some(date(2027, 1, 1))).await.unwrap();
    assert_eq!(old_year.won, 0);
}

#[test]
fn a_day_starts_at_its_first_existing_moment_in_every_zone() {
    use crm_core::tenant_settings::TimeZone as Zone;
    let zones = ["UTC", "Europe/Belgrade", "America/Santiago", "Asia/Beirut", "America/Havana", "Pacific/Apia"];
    for zone in zones.map(|z| z.parse::<Zone>().unwrap()) {
        let mut day = date(2026, 1, 1);
        while day < date(2028, 1, 1) {
            let start = zone.start_of(day);
            assert_eq!(zone.date_at(start), day, "{zone} {day}");
            assert_eq!(zone.date_at(start - Duration::seconds(1)), day.pred_opt().unwrap(), "{zone} {day}");
            day = day.succ_opt().unwrap();
        }
    }
    let belgrade: Zone = "Europe/Belgrade".parse().unwrap();
    assert_eq!(belgrade.start_of(date(2027, 1, 1)), Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap());
}
