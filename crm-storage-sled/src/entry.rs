//! The value stored for each record.
//!
//! Layout: `version (u64, big-endian) ‖ document length (u32, big-endian) ‖ document
//! (JSON) ‖ index data (JSON)`. Reads of a record parse only the version and the
//! document; filtering parses only the index data; updates and deletes read the index
//! data back to remove exactly the index, unique and reference entries the record wrote.

use crm_core::storage::{Document, EntityKind, FieldValue, Record, StorageError, StoredRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const HEADER: usize = 12;

/// What a record asked the adapter to index and enforce, as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct IndexData {
    /// Indexed values by field name.
    pub(crate) fields: Vec<(String, FieldValue)>,
    /// Unique keys as `(field, normalized value)`.
    pub(crate) uniques: Vec<(String, String)>,
    /// References as `(field, target kind, target id)`.
    pub(crate) references: Vec<(String, EntityKind, Uuid)>,
}

impl IndexData {
    /// The index data of a record being written.
    pub(crate) fn of(record: &Record) -> Self {
        Self {
            fields: record.fields.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect(),
            uniques: record.uniques.iter().map(|u| (u.field.to_owned(), u.value.clone())).collect(),
            references: record.references.iter().map(|r| (r.field.to_owned(), r.kind, r.id)).collect(),
        }
    }

    /// The value of an indexed field; `Null` when the record has none.
    pub(crate) fn field(&self, name: &str) -> &FieldValue {
        self.fields.iter().find(|(n, _)| n == name).map_or(&FieldValue::Null, |(_, v)| v)
    }
}

/// Encodes a record's stored value.
pub(crate) fn encode(version: u64, data: &Document, index: &IndexData) -> Result<Vec<u8>, StorageError> {
    let document = data.as_str().as_bytes();
    let index = serde_json::to_vec(index).map_err(backend)?;
    let length = u32::try_from(document.len())
        .map_err(|_| StorageError::Invalid(format!("a document of {} bytes is too large", document.len())))?;
    let mut out = Vec::with_capacity(HEADER + document.len() + index.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(document);
    out.extend_from_slice(&index);
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
        let corrupt = || corrupt("a stored record is truncated");
        let header = bytes.get(..HEADER).ok_or_else(corrupt)?;
        let version = u64::from_be_bytes(header[..8].try_into().map_err(|_| corrupt())?);
        let length = u32::from_be_bytes(header[8..].try_into().map_err(|_| corrupt())?) as usize;
        let rest = &bytes[HEADER..];
        if rest.len() < length {
            return Err(corrupt());
        }
        let (document, index) = rest.split_at(length);
        Ok(Self { version, document, index })
    }

    /// The document.
    pub(crate) fn data(&self) -> Result<Document, StorageError> {
        let text = std::str::from_utf8(self.document).map_err(backend)?;
        Document::from_json(text).map_err(backend)
    }

    /// The record as the contract hands it out.
    pub(crate) fn to_stored(&self, kind: EntityKind, id: Uuid) -> Result<StoredRecord, StorageError> {
        Ok(StoredRecord { kind, id, version: self.version, data: self.data()? })
    }

    /// The index data.
    pub(crate) fn index(&self) -> Result<IndexData, StorageError> {
        serde_json::from_slice(self.index).map_err(backend)
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
    use serde_json::json;

    use super::*;

    #[test]
    fn entries_round_trip() {
        let index = IndexData {
            fields: vec![("name".into(), FieldValue::Text("Globex".into()))],
            uniques: vec![("email".into(), "a@b.test".into())],
            references: vec![("company_id".into(), EntityKind::Company, Uuid::nil())],
        };
        let data = Document::from(json!({"name": "Globex", "nested": {"n": [1, 2]}}));
        let bytes = encode(7, &data, &index).expect("encodable");
        let entry = Entry::parse(&bytes).expect("parses");
        assert_eq!(entry.version, 7);
        assert_eq!(entry.data().ok(), Some(data));
        assert_eq!(entry.index().ok(), Some(index));
    }

    #[test]
    fn truncated_entries_are_errors_not_panics() {
        let bytes = encode(1, &Document::from(json!({"a": 1})), &IndexData::default()).expect("encodable");
        for cut in 0..bytes.len() {
            if let Ok(entry) = Entry::parse(&bytes[..cut]) {
                assert!(entry.index().is_err(), "a value cut at {cut} bytes must not decode");
            }
        }
    }
}
