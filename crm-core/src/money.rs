//! Money: ISO 4217 currencies, amount limits and the one rounding rule (applied to
//! document lines in [`crate::sales::lines`]).
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

use crate::error::Validator;

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
        // The codes `Currency::parse` accepts, so a client cannot pick one it refuses.
        let codes: Vec<&str> = ISO_4217.split(' ').collect();
        schemars::json_schema!({
            "type": "string",
            "enum": codes,
            "description": "An ISO 4217 currency code such as `EUR`.",
        })
    }
}

/// How an exact decimal travels in JSON: a string of digits with an optional sign and
/// fraction (`"1234.50"`), never a JSON number (which has been through a float).
pub const DECIMAL_TEXT_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// The JSON Schema of a decimal sent as text (amounts, prices, quantities, rates):
/// schema only, named by `#[schemars(with = …)]` on `Decimal` fields.
#[cfg(feature = "schema")]
#[derive(Debug)]
pub struct DecimalText;

#[cfg(feature = "schema")]
impl schemars::JsonSchema for DecimalText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DecimalText".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DECIMAL_TEXT_PATTERN,
            "description": "An exact decimal as text, such as `\"1234.50\"`.",
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
pub(crate) const MAX_INPUT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);
/// Largest accepted scale (digits after the point) of a quantity, price or percentage.
pub(crate) const MAX_SCALE: u32 = 4;

/// The largest amount the CRM accepts anywhere (10^18): far enough from `Decimal`'s
/// limit (about 7.9 × 10^28) that products with percentages and sums over billions of
/// records cannot overflow.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(2_808_348_672, 232_830_643, 0, false, 0);

/// Adds `b` to `a`, or says which sum grew past what a decimal holds.
pub fn checked_sum(a: Decimal, b: Decimal, what: &str) -> Result<Decimal, crate::error::CrmError> {
    a.checked_add(b).ok_or_else(|| crate::error::CrmError::Internal(format!("the sum of {what} overflows a decimal")))
}

/// Checks that an amount is positive, within range and exact in `currency`'s minor unit.
pub fn validate_amount(v: &mut Validator, field: &str, amount: Decimal, currency: Currency) {
    v.check(
        amount > Decimal::ZERO && amount <= MAX_AMOUNT && currency.round(amount) == amount,
        field,
        format!("must be a positive amount with at most {} decimals", currency.minor_units()),
    );
}
