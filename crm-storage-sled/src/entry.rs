//! The value stored for each record (format 3).
//!
//! Layout, every integer a LEB128 varint unless said otherwise:
//!
//! ```text
//! entry      = version ‖ doc length ‖ document ‖ index data
//! document   = the record's JSON text (see `document_bytes` / `document_value`)
//! index data = n ‖ n × (field ‖ value)                     indexed values
//!            ‖ n ‖ n × (field ‖ length ‖ UTF-8 bytes)      unique keys
//!            ‖ n ‖ n × (field ‖ kind ‖ 16-byte id)         references
//! field, kind = the name's number in the store's dictionary (crate::names)
//! value      = tag byte ‖ payload:
//!              0 Null | 1 false | 2 true | 3 Int: zigzag varint
//!              | 4 Decimal: scale byte ‖ zigzag varint of the 96-bit mantissa
//!              | 5 Text: length ‖ UTF-8 bytes | 6 Uuid: 16 bytes
//!              | 7 Date: zigzag varint of days from 0001-01-01 (CE)
//!              | 8 Timestamp: zigzag varint of Unix seconds ‖ varint of nanoseconds
//! ```
//!
//! Reads of a record parse only the version and the document; filtering decodes only
//! the index data; updates and deletes decode the index data back to remove exactly the
//! index, unique and reference entries the record wrote.

use chrono::{DateTime, Datelike, NaiveDate};
use crm_core::storage::{Document, EntityKind, FieldValue, Record, StorageError, StoredRecord};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::names::{NameIds, NameReader};

/// What a record asked the adapter to index and enforce, as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct IndexData {
    /// Indexed values by field name.
    pub(crate) fields: Vec<(&'static str, FieldValue)>,
    /// Unique keys as `(field, normalized value)`.
    pub(crate) uniques: Vec<(&'static str, String)>,
    /// References as `(field, target kind, target id)`.
    pub(crate) references: Vec<(&'static str, EntityKind, Uuid)>,
}

impl IndexData {
    /// The index data of a record being written.
    pub(crate) fn of(record: &Record) -> Self {
        Self {
            fields: record.fields.clone(),
            uniques: record.uniques.iter().map(|u| (u.field, u.value.clone())).collect(),
            references: record.references.iter().map(|r| (r.field, r.kind, r.id)).collect(),
        }
    }

    /// The value of an indexed field; `Null` when the record has none.
    pub(crate) fn field(&self, name: &str) -> &FieldValue {
        self.fields.iter().find(|(n, _)| *n == name).map_or(&FieldValue::Null, |(_, v)| v)
    }

    /// Appends the binary form (see the module's layout), numbering names with `ids`.
    pub(crate) fn encode(&self, ids: &mut NameIds<'_>, out: &mut Vec<u8>) -> Result<(), StorageError> {
        put_varint(out, self.fields.len() as u64);
        for (name, value) in &self.fields {
            put_varint(out, u64::from(ids.id(name)?));
            put_value(out, value);
        }
        put_varint(out, self.uniques.len() as u64);
        for (name, value) in &self.uniques {
            put_varint(out, u64::from(ids.id(name)?));
            put_bytes(out, value.as_bytes());
        }
        put_varint(out, self.references.len() as u64);
        for (name, kind, id) in &self.references {
            put_varint(out, u64::from(ids.id(name)?));
            put_varint(out, u64::from(ids.id(kind.as_str())?));
            out.extend_from_slice(id.as_bytes());
        }
        Ok(())
    }

    /// Decodes the binary form; anything else is corruption.
    pub(crate) fn decode(bytes: &[u8], names: &NameReader<'_>) -> Result<Self, StorageError> {
        let mut input = Input(bytes);
        let mut index = Self::default();
        let n = input.len()?;
        index.fields.reserve(n);
        for _ in 0..n {
            let name = names.name(input.name_id()?)?;
            index.fields.push((name, input.value()?));
        }
        let n = input.len()?;
        for _ in 0..n {
            let name = names.name(input.name_id()?)?;
            let value = std::str::from_utf8(input.bytes()?).map_err(|_| truncated())?;
            index.uniques.push((name, value.to_owned()));
        }
        let n = input.len()?;
        for _ in 0..n {
            let name = names.name(input.name_id()?)?;
            let kind = names.name(input.name_id()?)?;
            let kind = kind.parse::<EntityKind>().map_err(corrupt)?;
            index.references.push((name, kind, input.uuid()?));
        }
        if !input.0.is_empty() {
            return Err(corrupt("a stored record has bytes after its index data"));
        }
        Ok(index)
    }
}

/// The document's stored bytes: the one place the record's document becomes bytes.
pub(crate) fn document_bytes(data: &Document) -> &[u8] {
    data.as_str().as_bytes()
}

/// The document from its stored bytes: the one place stored bytes become a document.
pub(crate) fn document_value(bytes: &[u8]) -> Result<Document, StorageError> {
    Document::from_json(std::str::from_utf8(bytes).map_err(backend)?).map_err(backend)
}

/// Encodes a record's stored value from its document's bytes and its index data.
pub(crate) fn encode(
    version: u64,
    document: &[u8],
    index: &IndexData,
    ids: &mut NameIds<'_>,
) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(16 + document.len() + 24 * index.fields.len());
    put_varint(&mut out, version);
    put_bytes(&mut out, document);
    index.encode(ids, &mut out)?;
    Ok(out)
}

/// The parts of a stored value, borrowed.
pub(crate) struct Entry<'a> {
    /// The record's version.
    pub(crate) version: u64,
    document: &'a [u8],
    index: &'a [u8],
}

impl<'a> Entry<'a> {
    /// Splits a stored value; a value of another shape is corruption.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, StorageError> {
        let mut input = Input(bytes);
        let version = input.varint()?;
        let document = input.bytes()?;
        Ok(Self { version, document, index: input.0 })
    }

    /// The version alone.
    pub(crate) fn version_of(bytes: &[u8]) -> Result<u64, StorageError> {
        Input(bytes).varint()
    }

    /// The document.
    pub(crate) fn data(&self) -> Result<Document, StorageError> {
        document_value(self.document)
    }

    /// The document's stored bytes.
    #[cfg(test)]
    pub(crate) fn document(&self) -> &'a [u8] {
        self.document
    }

    /// The record as the contract hands it out.
    pub(crate) fn to_stored(&self, kind: EntityKind, id: Uuid) -> Result<StoredRecord, StorageError> {
        Ok(StoredRecord { kind, id, version: self.version, data: self.data()? })
    }

    /// The index data.
    pub(crate) fn index(&self, names: &NameReader<'_>) -> Result<IndexData, StorageError> {
        IndexData::decode(self.index, names)
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_varint128(out: &mut Vec<u8>, mut n: u128) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_value(out: &mut Vec<u8>, value: &FieldValue) {
    match value {
        FieldValue::Null => out.push(0),
        FieldValue::Bool(b) => out.push(1 + u8::from(*b)),
        FieldValue::Int(i) => {
            out.push(3);
            put_varint(out, zigzag(*i));
        }
        FieldValue::Decimal(d) => {
            out.push(4);
            out.push(d.scale() as u8);
            let m = d.mantissa();
            put_varint128(out, ((m << 1) ^ (m >> 127)) as u128);
        }
        FieldValue::Text(t) => {
            out.push(5);
            put_bytes(out, t.as_bytes());
        }
        FieldValue::Uuid(u) => {
            out.push(6);
            out.extend_from_slice(u.as_bytes());
        }
        FieldValue::Date(d) => {
            out.push(7);
            put_varint(out, zigzag(i64::from(d.num_days_from_ce())));
        }
        FieldValue::Timestamp(t) => {
            out.push(8);
            put_varint(out, zigzag(t.timestamp()));
            put_varint(out, u64::from(t.timestamp_subsec_nanos()));
        }
    }
}

fn truncated() -> StorageError {
    corrupt("a stored record is truncated or malformed")
}

/// Bytes being decoded.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Result<u8, StorageError> {
        let (&b, rest) = self.0.split_first().ok_or_else(truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.0.len() < n {
            return Err(truncated());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn varint128(&mut self, max_bits: u32) -> Result<u128, StorageError> {
        let mut n: u128 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= max_bits {
                return Err(truncated());
            }
            n |= u128::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    fn varint(&mut self) -> Result<u64, StorageError> {
        u64::try_from(self.varint128(64)?).map_err(|_| truncated())
    }

    fn len(&mut self) -> Result<usize, StorageError> {
        let n = usize::try_from(self.varint()?).map_err(|_| truncated())?;
        // Every counted item takes at least one byte: a larger count is corruption.
        if n > self.0.len() {
            return Err(truncated());
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let n = usize::try_from(self.varint()?).map_err(|_| truncated())?;
        self.take(n)
    }

    fn name_id(&mut self) -> Result<u16, StorageError> {
        u16::try_from(self.varint()?).map_err(|_| truncated())
    }

    fn uuid(&mut self) -> Result<Uuid, StorageError> {
        Uuid::from_slice(self.take(16)?).map_err(|_| truncated())
    }

    fn value(&mut self) -> Result<FieldValue, StorageError> {
        Ok(match self.byte()? {
            0 => FieldValue::Null,
            1 => FieldValue::Bool(false),
            2 => FieldValue::Bool(true),
            3 => FieldValue::Int(unzigzag(self.varint()?)),
            4 => {
                let scale = u32::from(self.byte()?);
                let z = self.varint128(128)?;
                let m = ((z >> 1) as i128) ^ -((z & 1) as i128);
                FieldValue::Decimal(Decimal::try_from_i128_with_scale(m, scale).map_err(|_| truncated())?)
            }
            5 => FieldValue::Text(String::from_utf8(self.bytes()?.to_vec()).map_err(|_| truncated())?),
            6 => FieldValue::Uuid(self.uuid()?),
            7 => {
                let days = i32::try_from(unzigzag(self.varint()?)).map_err(|_| truncated())?;
                FieldValue::Date(NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(truncated)?)
            }
            8 => {
                let secs = unzigzag(self.varint()?);
                let nanos = u32::try_from(self.varint()?).map_err(|_| truncated())?;
                FieldValue::Timestamp(DateTime::from_timestamp(secs, nanos).ok_or_else(truncated)?)
            }
            _ => return Err(truncated()),
        })
    }
}

/// Wraps any failure of the backend or of decoding as the contract's `Backend` error.
pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Backend { source: Box::new(e) }
}

/// A value read from the store that cannot be what was written there: an error naming
/// it, never a default in its place.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Backend { source: format!("corrupt sled data: {what}").into() }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::names::Names;

    fn names() -> (sled::Db, Names) {
        let db = sled::Config::new().temporary(true).open().expect("temporary sled");
        let names = Names::load(&db).expect("dictionary");
        (db, names)
    }

    fn round_trip(names: &Names, index: &IndexData, document: &[u8]) -> (u64, Vec<u8>, IndexData) {
        let mut ids = names.writer();
        let bytes = encode(7, document, index, &mut ids).expect("encodable");
        let entry = Entry::parse(&bytes).expect("parses");
        let decoded = entry.index(&names.reader()).expect("decodes");
        (entry.version, entry.document().to_vec(), decoded)
    }

    #[test]
    fn entries_round_trip() {
        let (_db, names) = names();
        let index = IndexData {
            fields: vec![
                ("name", FieldValue::Text("Globex".into())),
                ("when", FieldValue::Timestamp(Utc.timestamp_opt(-5, 999_999_999).single().expect("instant"))),
                ("total", FieldValue::Decimal(Decimal::MIN)),
                ("max", FieldValue::Decimal(Decimal::new(-1, 28))),
                ("n", FieldValue::Int(i64::MIN)),
                ("on", FieldValue::Date(NaiveDate::MIN)),
                ("flag", FieldValue::Bool(true)),
                ("none", FieldValue::Null),
            ],
            uniques: vec![("email", "a@b.test".into())],
            references: vec![("company_id", EntityKind::Company, Uuid::nil())],
        };
        let data = Document::from(json!({"name": "Globex", "nested": {"n": [1, 2]}}));
        let document = document_bytes(&data);
        let (version, stored, decoded) = round_trip(&names, &index, document);
        assert_eq!((version, document_value(&stored).ok(), decoded), (7, Some(data), index));
    }

    fn field_value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            Just(FieldValue::Null),
            any::<bool>().prop_map(FieldValue::Bool),
            any::<i64>().prop_map(FieldValue::Int),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| FieldValue::Decimal(Decimal::new(m, s))),
            ".{0,8}".prop_map(FieldValue::Text),
            any::<[u8; 16]>().prop_map(|b| FieldValue::Uuid(Uuid::from_bytes(b))),
            (-1_000_000i32..3_000_000)
                .prop_filter_map("date", |d| NaiveDate::from_num_days_from_ce_opt(d).map(FieldValue::Date)),
            (-100_000_000_000i64..100_000_000_000, 0u32..1_000_000_000)
                .prop_filter_map("instant", |(s, n)| DateTime::from_timestamp(s, n).map(FieldValue::Timestamp)),
        ]
    }

    proptest! {
        #[test]
        fn every_value_round_trips(values in proptest::collection::vec(field_value(), 0..6)) {
            let (_db, names) = names();
            const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
            let index = IndexData {
                fields: NAMES.iter().copied().zip(values).collect(),
                ..IndexData::default()
            };
            let (_, _, decoded) = round_trip(&names, &index, b"{}");
            prop_assert_eq!(decoded, index);
        }
    }

    #[test]
    fn truncated_entries_are_errors_not_panics() {
        let (_db, names) = names();
        let index = IndexData {
            fields: vec![("name", FieldValue::Text("Globex".into())), ("n", FieldValue::Int(300))],
            uniques: vec![("email", "a@b.test".into())],
            references: vec![("company_id", EntityKind::Company, Uuid::nil())],
        };
        let mut ids = names.writer();
        let bytes = encode(1, b"{\"a\":1}", &index, &mut ids).expect("encodable");
        for cut in 0..bytes.len() {
            if let Ok(entry) = Entry::parse(&bytes[..cut]) {
                assert!(entry.index(&names.reader()).is_err(), "a value cut at {cut} bytes must not decode");
            }
        }
    }
}
