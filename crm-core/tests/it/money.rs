//! The rounding rule on fixed examples, and line/document totals under proptest.

use crm_core::{
    money::Currency,
    sales::lines::{LineInput, Totals, price_lines},
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

#[test]
fn rounding_is_half_away_from_zero_to_the_minor_unit() {
    assert_eq!(Currency::EUR.round(dec!(0.125)), dec!(0.13));
    assert_eq!(Currency::EUR.round(dec!(-0.125)), dec!(-0.13));
    assert_eq!(Currency::EUR.round(dec!(0.124999)), dec!(0.12));
    let jpy = Currency::parse("JPY").unwrap();
    assert_eq!(jpy.round(dec!(2.5)), dec!(3));
    let kwd = Currency::parse("KWD").unwrap();
    assert_eq!(kwd.round(dec!(1.0005)), dec!(1.001));
}

#[test]
fn currencies_must_be_active_iso_codes() {
    assert_eq!(Currency::parse("EUR").unwrap().minor_units(), 2);
    for bad in ["eur", "EURO", "XYZ", "", "€"] {
        assert!(Currency::parse(bad).is_err(), "{bad} accepted");
    }
    let json: Result<Currency, _> = serde_json::from_str("\"ABC\"");
    assert!(json.is_err());
}

#[test]
fn a_line_with_discount_and_tax_is_priced_step_by_step() {
    let line = LineInput {
        product_id: None,
        description: "Widget".into(),
        quantity: dec!(3),
        unit_price: dec!(19.99),
        discount_percent: dec!(12.5),
        tax_rate: dec!(21),
    };
    assert!(line.validate().fields.is_empty());
    let priced = line.price(Currency::EUR);
    // 3 × 19.99 = 59.97; 12.5 % of it = 7.49625 → 7.50; net 52.47; 21 % = 11.0187 → 11.02.
    assert_eq!(
        (priced.gross, priced.discount, priced.net, priced.tax, priced.total),
        (dec!(59.97), dec!(7.50), dec!(52.47), dec!(11.02), dec!(63.49))
    );
}

#[test]
fn invalid_lines_name_their_fields() {
    let line = LineInput {
        product_id: None,
        description: " ".into(),
        quantity: dec!(0),
        unit_price: dec!(-1),
        discount_percent: dec!(101),
        tax_rate: dec!(-0.5),
    };
    let fields: Vec<String> = line.validate().fields.into_iter().map(|f| f.field).collect();
    assert_eq!(fields, ["description", "quantity", "unit_price", "discount_percent", "tax_rate"]);
}

fn decimal(max_units: i64, max_scale: u32) -> impl Strategy<Value = Decimal> {
    (0..=max_units, 0..=max_scale).prop_map(|(units, scale)| Decimal::new(units, scale))
}

fn line() -> impl Strategy<Value = LineInput> {
    (
        (1..=1_000_000_000i64, 0..=4u32).prop_map(|(u, s)| Decimal::new(u, s)),
        decimal(1_000_000_000, 4),
        decimal(10_000, 2),
        decimal(10_000, 2),
    )
        .prop_map(|(quantity, unit_price, discount, tax)| LineInput {
            product_id: None,
            description: "item".into(),
            quantity: quantity.min(Decimal::from(1_000_000)),
            unit_price: unit_price.min(Decimal::from(1_000_000)),
            discount_percent: discount.min(Decimal::ONE_HUNDRED),
            tax_rate: tax.min(Decimal::ONE_HUNDRED),
        })
}

fn currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(vec!["EUR", "USD", "JPY", "KWD", "CLF"]).prop_map(|c| Currency::parse(c).unwrap())
}

proptest! {
    #[test]
    fn totals_add_up_and_are_never_negative(lines in prop::collection::vec(line(), 1..20), currency in currency()) {
        for l in &lines {
            prop_assert!(l.validate().fields.is_empty());
        }
        let (priced, totals) = price_lines(currency, &lines);
        for l in &priced {
            prop_assert!(l.gross >= Decimal::ZERO && l.discount >= Decimal::ZERO && l.tax >= Decimal::ZERO);
            prop_assert!(l.discount <= l.gross);
            prop_assert_eq!(l.net, l.gross - l.discount);
            prop_assert_eq!(l.total, l.net + l.tax);
            for amount in [l.gross, l.discount, l.net, l.tax, l.total] {
                prop_assert_eq!(currency.round(amount), amount, "every line amount is in minor units");
            }
        }
        prop_assert_eq!(totals.subtotal - totals.discount + totals.tax, totals.total);
        prop_assert_eq!(totals.total, priced.iter().map(|l| l.total).sum::<Decimal>());
        prop_assert!(totals.total >= Decimal::ZERO);
    }

    #[test]
    fn pricing_is_stable_and_order_independent(lines in prop::collection::vec(line(), 1..10), currency in currency()) {
        let (first, totals) = price_lines(currency, &lines);
        let (second, again) = price_lines(currency, &lines);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(totals, again);
        let mut reversed = lines.clone();
        reversed.reverse();
        prop_assert_eq!(price_lines(currency, &reversed).1, totals);
        prop_assert_eq!(Totals::of(&first), totals);
    }

    #[test]
    fn rounding_is_idempotent(units in any::<i64>(), scale in 0..=12u32, currency in currency()) {
        let amount = Decimal::new(units, scale);
        let once = currency.round(amount);
        prop_assert_eq!(currency.round(once), once);
        prop_assert!((once - amount).abs() <= Decimal::new(5, currency.minor_units() + 1));
    }
}

/// Amounts are bounded at input, so arithmetic on them cannot overflow; sums that
/// still would are errors naming the field, never panics (hardening item 15).
#[tokio::test]
async fn deal_amounts_are_bounded_and_large_pipelines_sum_without_panicking() {
    use crm_core::{
        CrmError,
        customers::deals::{DealStage, NewDeal},
        money::MAX_AMOUNT,
    };
    let w = crate::support::world().await;
    let deal = |amount| NewDeal {
        title: "Big".into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount,
        currency: Currency::EUR,
        stage: Some(DealStage::Negotiation),
        expected_close_date: None,
    };
    match w.crm.deals().create(&w.admin, deal(rust_decimal::Decimal::MAX)).await {
        Err(CrmError::Validation(errors)) => assert_eq!(errors.fields[0].field, "amount"),
        other => panic!("an amount near Decimal::MAX must be refused naming `amount`, got {other:?}"),
    }
    for _ in 0..12 {
        w.crm.deals().create(&w.admin, deal(MAX_AMOUNT)).await.unwrap();
    }
    let pipeline = w.crm.reports().pipeline(&w.admin).await.unwrap();
    let stage = pipeline.iter().find(|s| s.stage == DealStage::Negotiation).unwrap();
    assert_eq!(stage.value, MAX_AMOUNT * rust_decimal::Decimal::from(12));
}

/// An aggregate whose sum passes what a decimal holds is an error naming the field.
#[test]
fn an_overflowing_aggregate_sum_is_an_error_naming_the_field() {
    use crm_core::storage::{AggregateQuery, Aggregation, FieldValue, StorageError};
    let query = AggregateQuery { filters: vec![], group_by: vec![], sums: vec!["amount"] };
    let mut aggregation = Aggregation::new(&query);
    let huge = FieldValue::Decimal(rust_decimal::Decimal::MAX);
    aggregation.add(|_| &huge);
    aggregation.add(|_| &huge);
    match aggregation.finish() {
        Err(StorageError::Invalid(message)) => assert!(message.contains("`amount`"), "{message}"),
        other => panic!("expected an overflow error, got {other:?}"),
    }
}
