//! Byte layouts of every key, and the order-preserving encoding of indexed values.
//!
//! sled orders keys byte-wise, so an index key must compare exactly as the
//! [`FieldValue`]s it encodes compare: `encode_value(a) < encode_value(b)` if and only
//! if `a < b`, and equal values (`1.0` and `1.00`) encode identically. Every encoding is
//! also prefix-free, so the record id can follow it in a key.
//!
//! Format 3 names fields and kinds in keys by their number in the store's dictionary
//! ([`crate::names`]): two bytes instead of the name and a separator.

use std::{collections::HashMap, sync::OnceLock};

use chrono::Datelike;
use crm_core::{
    TenantId,
    storage::{EntityKind, FieldValue},
};
use rust_decimal::Decimal;
use uuid::Uuid;

/// In `meta`: the data directory's format version (a big-endian u32), written at creation.
pub(crate) const FORMAT_VERSION_KEY: &[u8] = b"format_version";
/// In `meta`: set while an import runs; a store that still has it was left half-imported.
pub(crate) const IMPORTING_KEY: &[u8] = b"import_in_progress";
/// In `meta`: the last outbox position given (a big-endian u64; absent: 0).
pub(crate) const OUTBOX_POSITION_KEY: &[u8] = b"outbox_position";

/// `tenant ‖ id`: a record in its kind's records tree.
pub(crate) fn record_key(tenant: TenantId, id: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(tenant.0.as_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The prefix of every record of a tenant in a records tree.
pub(crate) fn tenant_prefix(tenant: TenantId) -> Vec<u8> {
    tenant.0.as_bytes().to_vec()
}

/// The id at the end of any key that ends with one.
pub(crate) fn trailing_id(key: &[u8]) -> Option<Uuid> {
    let start = key.len().checked_sub(16)?;
    Uuid::from_slice(&key[start..]).ok()
}

/// `tenant ‖ field`: the prefix of one field's index entries. Names are their numbers
/// in the store's dictionary ([`crate::names`]), two bytes big-endian.
pub(crate) fn index_field_prefix(tenant: TenantId, field: u16) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(tenant.0.as_bytes());
    key.extend_from_slice(&field.to_be_bytes());
    key
}

/// `tenant ‖ field ‖ value`: the prefix of the index entries holding one value.
pub(crate) fn index_value_prefix(tenant: TenantId, field: u16, value: &FieldValue) -> Vec<u8> {
    let mut key = index_field_prefix(tenant, field);
    encode_value(value, &mut key);
    key
}

/// `tenant ‖ field ‖ value ‖ id`: one index entry (its value is empty).
pub(crate) fn index_key(tenant: TenantId, field: u16, value: &FieldValue, id: Uuid) -> Vec<u8> {
    let mut key = index_value_prefix(tenant, field, value);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The `(filter, sort)` field pairs of `kind` that have a sorted index
/// ([`crm_core::fields::filtered_sorts`]), computed once per process.
pub(crate) fn sorted_pairs(kind: EntityKind) -> &'static [(&'static str, &'static str)] {
    static PAIRS: OnceLock<HashMap<EntityKind, Vec<(&'static str, &'static str)>>> = OnceLock::new();
    let pairs = PAIRS.get_or_init(|| {
        let of = |kind| crm_core::fields::filtered_sorts(crm_core::fields_of(kind)).map(|(f, s)| (f.name, s.name));
        EntityKind::ALL.iter().map(|&kind| (kind, of(kind).collect())).collect()
    });
    pairs.get(&kind).map_or(&[], Vec::as_slice)
}

/// Whether `kind` keeps index entries of `field`: every field but those its
/// declaration says no listing filters or sorts on (they are only searched or shown),
/// so their entries would never be read. Undeclared fields are indexed.
pub(crate) fn is_indexed(kind: EntityKind, field: &str) -> bool {
    static UNREAD: OnceLock<HashMap<EntityKind, Vec<&'static str>>> = OnceLock::new();
    let unread = UNREAD.get_or_init(|| {
        let of = |kind| {
            crm_core::fields_of(kind)
                .iter()
                .filter(|f| !f.sortable && f.filters.iter().all(Option::is_none))
                .map(|f| f.name)
                .collect()
        };
        EntityKind::ALL.iter().map(|&kind| (kind, of(kind))).collect()
    });
    unread.get(&kind).is_none_or(|names| !names.contains(&field))
}

/// `tenant ‖ filter ‖ filter value ‖ sort`: the prefix of the sorted index entries of
/// the records whose `filter` field holds `value`, ordered by `sort`.
pub(crate) fn sorted_prefix(tenant: TenantId, filter: u16, value: &FieldValue, sort: u16) -> Vec<u8> {
    let mut key = index_value_prefix(tenant, filter, value);
    key.extend_from_slice(&sort.to_be_bytes());
    key
}

/// `tenant ‖ filter ‖ filter value ‖ sort ‖ sort value ‖ id`: one sorted index entry in
/// its kind's sorted tree (its value is empty).
pub(crate) fn sorted_key(
    tenant: TenantId,
    (filter, filter_value): (u16, &FieldValue),
    (sort, sort_value): (u16, &FieldValue),
    id: Uuid,
) -> Vec<u8> {
    let mut key = sorted_prefix(tenant, filter, filter_value, sort);
    encode_value(sort_value, &mut key);
    key.extend_from_slice(id.as_bytes());
    key
}

/// `tenant ‖ field ‖ value`: a unique key in its kind's uniques tree (its value is the
/// holder's id).
pub(crate) fn unique_key(tenant: TenantId, field: u16, value: &str) -> Vec<u8> {
    let mut key = index_field_prefix(tenant, field);
    key.extend_from_slice(value.as_bytes());
    key
}

/// `tenant ‖ target kind ‖ target id`: the prefix of every reference to a record.
pub(crate) fn referrers_prefix(tenant: TenantId, target_kind: u16, target: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(52);
    key.extend_from_slice(tenant.0.as_bytes());
    key.extend_from_slice(&target_kind.to_be_bytes());
    key.extend_from_slice(target.as_bytes());
    key
}

/// `… ‖ referrer kind ‖ referrer id`: one reference (its value is empty).
pub(crate) fn reference_key(tenant: TenantId, target_kind: u16, target: Uuid, by_kind: u16, by: Uuid) -> Vec<u8> {
    let mut key = referrers_prefix(tenant, target_kind, target);
    key.extend_from_slice(&by_kind.to_be_bytes());
    key.extend_from_slice(by.as_bytes());
    key
}

/// Splits the part of a reference key after its prefix into the referrer's kind
/// (number) and id.
pub(crate) fn split_referrer(rest: &[u8]) -> Option<(u16, Uuid)> {
    if rest.len() != 18 {
        return None;
    }
    let kind = u16::from_be_bytes([rest[0], rest[1]]);
    let id = Uuid::from_slice(&rest[2..]).ok()?;
    Some((kind, id))
}

/// `tenant ‖ counter name`: a counter (its value is a big-endian u64).
pub(crate) fn counter_key(tenant: TenantId, name: &str) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    key.extend_from_slice(name.as_bytes());
    key
}

/// `tenant ‖ position` (big-endian): an acknowledged event in its tenant's stream.
pub(crate) fn stream_key(tenant: TenantId, position: u64) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// The position at the end of a stream key.
pub(crate) fn stream_position(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key[start..].try_into().ok()?))
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Appends the order-preserving, prefix-free encoding of `value`: a tag in variant order
/// (so `Null` sorts first, as in [`FieldValue`]'s `Ord`), then the payload.
pub(crate) fn encode_value(value: &FieldValue, out: &mut Vec<u8>) {
    match value {
        FieldValue::Null => out.push(1),
        FieldValue::Bool(b) => out.extend_from_slice(&[2, u8::from(*b)]),
        FieldValue::Int(i) => {
            out.push(3);
            out.extend_from_slice(&flip_sign(*i).to_be_bytes());
        }
        FieldValue::Decimal(d) => {
            out.push(4);
            encode_decimal(*d, out);
        }
        FieldValue::Text(t) => {
            out.push(5);
            // 0 is escaped as 0,255 and the end is 0,1: ordered and prefix-free.
            for &b in t.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(u8::MAX);
                }
            }
            out.extend_from_slice(&[0, 1]);
        }
        FieldValue::Uuid(u) => {
            out.push(6);
            out.extend_from_slice(u.as_bytes());
        }
        FieldValue::Date(d) => {
            out.push(7);
            out.extend_from_slice(&(d.num_days_from_ce() as u32 ^ (1 << 31)).to_be_bytes());
        }
        FieldValue::Timestamp(t) => {
            out.push(8);
            out.extend_from_slice(&flip_sign(t.timestamp()).to_be_bytes());
            out.extend_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
        }
    }
}

fn flip_sign(i: i64) -> u64 {
    (i as u64) ^ (1 << 63)
}

/// A decimal as sign, decimal exponent and digits: numbers compare by sign, then by
/// the position of their first significant digit, then digit by digit. Negative numbers
/// invert every byte after the sign so larger magnitudes sort first.
fn encode_decimal(d: Decimal, out: &mut Vec<u8>) {
    if d.is_zero() {
        out.push(2);
        return;
    }
    let negative = d.is_sign_negative();
    let normalized = d.normalize();
    let digits = normalized.mantissa().unsigned_abs().to_string();
    // The position of the decimal point relative to the first digit: 123.4 → 3, 0.05 → -1.
    let exponent = digits.len() as i32 - normalized.scale() as i32;
    // |exponent| ≤ 29 for every Decimal, so the biased value fits a byte.
    let exponent_byte = (exponent + 64) as u8;
    let invert = |b: u8| if negative { u8::MAX - b } else { b };
    out.push(if negative { 1 } else { 3 });
    out.push(invert(exponent_byte));
    // Digits as 1..=10 so the end marker (0) sorts below any digit.
    out.extend(digits.bytes().map(|b| invert(b - b'0' + 1)));
    out.push(invert(0));
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use chrono::{NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;

    fn instant(secs: i64, nanos: u32) -> FieldValue {
        Utc.timestamp_opt(secs, nanos).single().map_or(FieldValue::Null, FieldValue::Timestamp)
    }

    fn encoded(v: &FieldValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out);
        out
    }

    fn decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..=12).prop_map(|(m, s)| Decimal::new(m, s))
    }

    fn field_value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            Just(FieldValue::Null),
            any::<bool>().prop_map(FieldValue::Bool),
            any::<i64>().prop_map(FieldValue::Int),
            decimal().prop_map(FieldValue::Decimal),
            ".{0,6}".prop_map(FieldValue::Text),
            "[a\u{0}b]{0,4}".prop_map(FieldValue::Text),
            any::<[u8; 16]>().prop_map(|b| FieldValue::Uuid(Uuid::from_bytes(b))),
            (-1_000_000i32..3_000_000)
                .prop_filter_map("date", |d| { NaiveDate::from_num_days_from_ce_opt(d).map(FieldValue::Date) }),
            (-100_000_000_000i64..100_000_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| instant(s, n)),
        ]
    }

    proptest! {
        #[test]
        fn encoding_orders_like_field_values(a in field_value(), b in field_value()) {
            prop_assert_eq!(encoded(&a).cmp(&encoded(&b)), a.cmp(&b), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn decimals_order_numerically_and_equal_values_encode_alike(a in decimal(), b in decimal()) {
            let (ea, eb) = (encoded(&FieldValue::Decimal(a)), encoded(&FieldValue::Decimal(b)));
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
            // The same number at another scale is the same key.
            let rescaled = FieldValue::Decimal(a * Decimal::new(100, 2));
            prop_assert_eq!(encoded(&rescaled), ea);
        }

        #[test]
        fn encodings_are_prefix_free(a in field_value(), b in field_value(), id_a: [u8; 16], id_b: [u8; 16]) {
            // With an id appended, keys still order by value first.
            let mut ka = encoded(&a);
            ka.extend_from_slice(&id_a);
            let mut kb = encoded(&b);
            kb.extend_from_slice(&id_b);
            let expected = a.cmp(&b).then(id_a.cmp(&id_b));
            prop_assert_eq!(ka.cmp(&kb), expected);
        }
    }

    #[test]
    fn extreme_decimals_keep_their_order() {
        let values = [Decimal::MIN, Decimal::new(-1, 28), Decimal::ZERO, Decimal::new(1, 28), Decimal::MAX];
        for pair in values.windows(2) {
            let (a, b) = (encoded(&FieldValue::Decimal(pair[0])), encoded(&FieldValue::Decimal(pair[1])));
            assert_eq!(a.cmp(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255, 255]), None);
    }

    #[test]
    fn referrer_keys_split_back() {
        let (tenant, target, by) = (TenantId(Uuid::now_v7()), Uuid::now_v7(), Uuid::now_v7());
        let key = reference_key(tenant, 3, target, 4, by);
        let prefix = referrers_prefix(tenant, 3, target);
        assert_eq!(split_referrer(&key[prefix.len()..]), Some((4, by)));
    }
}
