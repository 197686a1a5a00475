//! Document lines: what a caller asks for, priced by the rounding rule of
//! [`crate::money`], and the totals of a quote or invoice.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    entity::reference,
    error::{ValidationErrors, Validator},
    id::Id,
    money::{Currency, MAX_INPUT, MAX_SCALE},
    sales::products::Product,
    storage::Reference,
};

/// The most characters of a document line's description.
pub const LINE_DESCRIPTION_MAX: usize = 500;

/// A document line as the caller gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The catalog product, if the line is not free text.
    pub product_id: Option<Id<Product>>,
    /// What is sold.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = LINE_DESCRIPTION_MAX)))]
    pub description: String,
    /// How many units; positive.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub quantity: Decimal,
    /// Price of one unit before discount and tax; non-negative.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub unit_price: Decimal,
    /// Discount in percent, 0 to 100.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub discount_percent: Decimal,
    /// Tax rate in percent, 0 to 100.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub tax_rate: Decimal,
}

impl LineInput {
    /// A free-text line without discount or tax.
    pub fn new(description: impl Into<String>, quantity: Decimal, unit_price: Decimal) -> Self {
        Self {
            product_id: None,
            description: description.into(),
            quantity,
            unit_price,
            discount_percent: Decimal::ZERO,
            tax_rate: Decimal::ZERO,
        }
    }

    /// Checks the ranges that make line arithmetic safe and totals non-negative.
    pub fn validate(&self) -> ValidationErrors {
        let mut v = Validator::new();
        v.text("description", &self.description, LINE_DESCRIPTION_MAX);
        let bounded = |d: Decimal| d.scale() <= MAX_SCALE && d <= MAX_INPUT;
        v.check(
            self.quantity > Decimal::ZERO && bounded(self.quantity),
            "quantity",
            "must be positive, at most 1e9, with at most 4 decimals",
        );
        v.check(
            self.unit_price >= Decimal::ZERO && bounded(self.unit_price),
            "unit_price",
            "must be non-negative, at most 1e9, with at most 4 decimals",
        );
        for (field, pct) in [("discount_percent", self.discount_percent), ("tax_rate", self.tax_rate)] {
            v.check(
                (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&pct) && pct.scale() <= MAX_SCALE,
                field,
                "must be between 0 and 100",
            );
        }
        v.into_errors()
    }

    /// Prices the line in `currency` under the rounding rule. Call only on validated input.
    pub fn price(&self, currency: Currency) -> Line {
        let gross = currency.round(self.quantity * self.unit_price);
        let discount = currency.round(gross * self.discount_percent / Decimal::ONE_HUNDRED);
        let net = gross - discount;
        let tax = currency.round(net * self.tax_rate / Decimal::ONE_HUNDRED);
        Line {
            product_id: self.product_id,
            description: self.description.clone(),
            quantity: self.quantity,
            unit_price: self.unit_price,
            discount_percent: self.discount_percent,
            tax_rate: self.tax_rate,
            gross,
            discount,
            net,
            tax,
            total: net + tax,
            quantity_delivered: Decimal::ZERO,
            quantity_credited: Decimal::ZERO,
            amount_credited: Decimal::ZERO,
        }
    }
}

/// Validates every line, naming bad fields `lines[i].field`.
pub fn validate_lines(v: &mut Validator, lines: &[LineInput]) {
    if lines.is_empty() {
        v.push("lines", "at least one line is required");
    }
    if lines.len() > 1000 {
        v.push("lines", "at most 1000 lines are allowed");
    }
    for (i, line) in lines.iter().enumerate() {
        v.merge(&format!("lines[{i}]."), line.validate());
    }
}

/// A priced document line (quote or invoice).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Line {
    /// The catalog product, if any.
    pub product_id: Option<Id<Product>>,
    /// What is sold.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = LINE_DESCRIPTION_MAX)))]
    pub description: String,
    /// How many units.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub quantity: Decimal,
    /// Price of one unit.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub unit_price: Decimal,
    /// Discount in percent.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub discount_percent: Decimal,
    /// Tax rate in percent.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub tax_rate: Decimal,
    /// `round(quantity × unit_price)`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub gross: Decimal,
    /// `round(gross × discount_percent / 100)`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub discount: Decimal,
    /// `gross − discount`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub net: Decimal,
    /// `round(net × tax_rate / 100)`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub tax: Decimal,
    /// `net + tax`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub total: Decimal,
    /// Units already on delivery notes (invoices only).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub quantity_delivered: Decimal,
    /// Units already credited by credit notes (invoices only).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub quantity_credited: Decimal,
    /// Amount already credited by credit notes, tax included (invoices only).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount_credited: Decimal,
}

/// The sums of a document's lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Totals {
    /// Σ gross.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub subtotal: Decimal,
    /// Σ discount.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub discount: Decimal,
    /// Σ tax.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub tax: Decimal,
    /// Σ total, equal to `subtotal − discount + tax`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub total: Decimal,
}

impl Totals {
    /// Sums priced lines.
    pub fn of(lines: &[Line]) -> Self {
        lines.iter().fold(Self::default(), |t, l| Self {
            subtotal: t.subtotal + l.gross,
            discount: t.discount + l.discount,
            tax: t.tax + l.tax,
            total: t.total + l.total,
        })
    }
}

/// Prices validated lines and sums them.
pub fn price_lines(currency: Currency, lines: &[LineInput]) -> (Vec<Line>, Totals) {
    let priced: Vec<Line> = lines.iter().map(|l| l.price(currency)).collect();
    let totals = Totals::of(&priced);
    (priced, totals)
}

/// References from priced lines to their catalog products, once per product.
pub(crate) fn product_references(lines: &[Line]) -> Vec<Reference> {
    let products: BTreeSet<Id<Product>> = lines.iter().filter_map(|l| l.product_id).collect();
    products.into_iter().map(|p| reference("lines.product_id", p)).collect()
}
