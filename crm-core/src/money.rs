//! Money: ISO 4217 currencies, the one rounding rule, and document lines and totals.
//!
//! # The rounding rule
//! Every amount is rounded **per line, to the currency's minor unit, half away from zero**,
//! at each step of the line's arithmetic, and document totals are plain sums of the rounded
//! line amounts. So for each line:
//!
//! ```text
//! gross    = round(quantity × unit_price)
//! discount = round(gross × discount_percent / 100)
//! net      = gross − discount
//! tax      = round(net × tax_rate / 100)
//! total    = net + tax
//! ```
//!
//! and a document's `subtotal`, `discount`, `tax` and `total` are the sums of its lines'
//! `gross`, `discount`, `tax` and `total`. Totals therefore always add up to the cent
//! (`subtotal − discount + tax = total`), and since quantities are positive, prices are
//! non-negative and percentages lie in 0..=100, no amount is ever negative.

use std::{fmt, str::FromStr};

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    error::{ValidationErrors, Validator},
    id::Id,
    products::Product,
};

/// Active ISO 4217 alphabetic codes.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV \
BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP \
ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY \
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK \
MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR \
SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN \
UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL";

/// An ISO 4217 currency code such as `EUR`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Currency {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "An ISO 4217 currency code such as `EUR`.",
        })
    }
}

impl Currency {
    /// Euro.
    pub const EUR: Self = Self(*b"EUR");
    /// US dollar.
    pub const USD: Self = Self(*b"USD");

    /// Parses an upper-case active ISO 4217 code.
    pub fn parse(code: &str) -> Result<Self, String> {
        let bytes: [u8; 3] =
            code.as_bytes().try_into().map_err(|_| format!("`{code}` is not a three-letter ISO 4217 code"))?;
        if bytes.iter().all(u8::is_ascii_uppercase) && ISO_4217.split(' ').any(|c| c == code) {
            Ok(Self(bytes))
        } else {
            Err(format!("`{code}` is not an active ISO 4217 currency code"))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the currency's minor unit (ISO 4217 exponent).
    pub fn minor_units(self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
            | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }

    /// Rounds to this currency's minor unit, half away from zero: the one rounding rule.
    pub fn round(self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.minor_units(), RoundingStrategy::MidpointAwayFromZero)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Largest accepted quantity or unit price: keeps every product and sum far from
/// `Decimal`'s limits, so line arithmetic cannot overflow.
const MAX_INPUT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);
/// Largest accepted scale (digits after the point) of a quantity, price or percentage.
const MAX_SCALE: u32 = 4;

/// A document line as the caller gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The catalog product, if the line is not free text.
    pub product_id: Option<Id<Product>>,
    /// What is sold.
    pub description: String,
    /// How many units; positive.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub quantity: Decimal,
    /// Price of one unit before discount and tax; non-negative.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub unit_price: Decimal,
    /// Discount in percent, 0 to 100.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub discount_percent: Decimal,
    /// Tax rate in percent, 0 to 100.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
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
        v.text("description", &self.description, 500);
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
    pub description: String,
    /// How many units.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub quantity: Decimal,
    /// Price of one unit.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub unit_price: Decimal,
    /// Discount in percent.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub discount_percent: Decimal,
    /// Tax rate in percent.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub tax_rate: Decimal,
    /// `round(quantity × unit_price)`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub gross: Decimal,
    /// `round(gross × discount_percent / 100)`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub discount: Decimal,
    /// `gross − discount`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub net: Decimal,
    /// `round(net × tax_rate / 100)`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub tax: Decimal,
    /// `net + tax`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub total: Decimal,
    /// Units already on delivery notes (invoices only).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub quantity_delivered: Decimal,
}

/// The sums of a document's lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Totals {
    /// Σ gross.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub subtotal: Decimal,
    /// Σ discount.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub discount: Decimal,
    /// Σ tax.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub tax: Decimal,
    /// Σ total, equal to `subtotal − discount + tax`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
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

/// Checks that an amount is positive, within range and exact in `currency`'s minor unit.
pub fn validate_amount(v: &mut Validator, field: &str, amount: Decimal, currency: Currency) {
    v.check(
        amount > Decimal::ZERO && amount <= MAX_INPUT * MAX_INPUT && currency.round(amount) == amount,
        field,
        format!("must be a positive amount with at most {} decimals", currency.minor_units()),
    );
}
