//! The [`Entity`] trait: how a domain type becomes a storage [`Record`] and back.

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    authz::Resource,
    error::{CrmError, Result},
    fields::{CREATED_AT, Field, UPDATED_AT},
    id::{Id, Meta},
    storage::{Document, EntityKind, FieldValue, Record, Reference, StoredRecord, UniqueKey},
};

/// A stored domain type. Implementations declare what the storage indexes, which keys
/// are unique, which records they point at, and who owns them for authorization.
pub trait Entity: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The storage kind.
    const KIND: EntityKind;
    /// The resource the permission matrix governs it under.
    const RESOURCE: Resource;
    /// The indexed fields, declared once with `indexed_fields!` (which also writes
    /// [`Entity::index`]): what listings filter, sort and search, and what is unique.
    const FIELDS: &'static [Field] = &[CREATED_AT, UPDATED_AT];
    /// The indexed field naming the owning user, used to scope listings to "own" records.
    const OWNER_FIELD: Option<&'static str> = None;
    /// JSON fields that never leave the core: not in the audit log, not in API output.
    const SECRET_FIELDS: &'static [&'static str] = &[];

    /// The common metadata.
    fn meta(&self) -> &Meta;
    /// The common metadata, mutably (services only).
    fn meta_mut(&mut self) -> &mut Meta;

    /// Adds the values of [`Entity::FIELDS`], in their order. Emits every field every
    /// time (`Null` for absent values) so adapters can index and sort completely.
    fn index(&self, fields: &mut Vec<(&'static str, FieldValue)>) {
        fields.extend([("created_at", self.meta().created_at.into()), ("updated_at", self.meta().updated_at.into())]);
    }
    /// Records this one points at.
    fn references(&self) -> Vec<Reference> {
        Vec::new()
    }
    /// Users who own or are assigned this record ("own" access).
    fn owners(&self) -> Vec<Uuid> {
        Vec::new()
    }
    /// The customer company the record belongs to ("company" access for clients).
    fn company(&self) -> Option<Uuid> {
        None
    }

    /// The typed id.
    fn id(&self) -> Id<Self> {
        Id::from_uuid(self.meta().id)
    }
}

/// Implements [`Entity::meta`] and [`Entity::meta_mut`] for a struct with a `meta` field.
macro_rules! entity_meta {
    () => {
        fn meta(&self) -> &$crate::id::Meta {
            &self.meta
        }
        fn meta_mut(&mut self) -> &mut $crate::id::Meta {
            &mut self.meta
        }
    };
}
pub(crate) use entity_meta;

/// A reference from a field to a record of entity `E`.
pub fn reference<E: Entity>(field: &'static str, id: Id<E>) -> Reference {
    Reference { field, kind: E::KIND, id: id.uuid() }
}

/// Builds the storage record of an entity. Refuses any text holding a control
/// character other than tab and line breaks, naming its field: no adapter stores one
/// (PostgreSQL cannot store NUL at all), so none accepts one.
pub fn to_record<E: Entity>(entity: &E) -> Result<Record> {
    let meta = entity.meta();
    let data = Document::encode(entity).map_err(|e| CrmError::Internal(format!("encode {}: {e}", E::KIND)))?;
    if may_hold_control_characters(data.as_str()) {
        let mut v = crate::error::Validator::new();
        refuse_control_characters(&data.to_value(), "", &mut v);
        v.finish()?;
    }
    let mut fields = Vec::with_capacity(E::FIELDS.len());
    entity.index(&mut fields);
    let uniques = unique_keys(E::FIELDS, &fields);
    Ok(Record {
        kind: E::KIND,
        id: meta.id,
        version: meta.version,
        data,
        fields,
        uniques,
        references: entity.references(),
    })
}

/// The values of the fields declared unique, as unique keys; absent values hold none.
fn unique_keys(declared: &[Field], values: &[(&'static str, FieldValue)]) -> Vec<UniqueKey> {
    declared
        .iter()
        .filter(|f| f.unique)
        .filter_map(|f| match values.iter().find(|(name, _)| *name == f.name) {
            Some((_, FieldValue::Text(text))) => Some(UniqueKey { field: f.name, value: text.clone() }),
            _ => None,
        })
        .collect()
}

/// Reads an entity back from a stored record.
pub fn from_stored<E: Entity>(stored: StoredRecord) -> Result<E> {
    let mut entity =
        stored.data.decode::<E>().map_err(|e| CrmError::Internal(format!("decode {} {}: {e}", E::KIND, stored.id)))?;
    entity.meta_mut().version = stored.version;
    Ok(entity)
}

/// Whether compact JSON text may hold a control character other than tab and line
/// breaks: an escape of U+0000–U+001F other than `\t`, `\n`, `\r`, or a raw U+007F–U+009F.
/// False positives (an escaped backslash before `u00`) only cost the exact walk below.
fn may_hold_control_characters(json: &str) -> bool {
    let bytes = json.as_bytes();
    bytes.windows(2).any(|pair| match pair {
        [b'\\', b'u' | b'b' | b'f'] => true,
        [0xC2, second] => (0x80..=0x9F).contains(second),
        _ => false,
    }) || bytes.contains(&0x7F)
}

/// Names every string in `value` holding a control character other than tab and line
/// breaks (`lines[0].description`); the record's metadata is the core's own.
fn refuse_control_characters(value: &serde_json::Value, path: &str, v: &mut crate::error::Validator) {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            v.control_free(path, text, true);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refuse_control_characters(item, &format!("{path}[{i}]"), v);
            }
        }
        Value::Object(fields) => {
            for (name, item) in fields.iter().filter(|(name, _)| !(path.is_empty() && name.as_str() == "meta")) {
                let inner = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                refuse_control_characters(item, &inner, v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A refused character: what the exact walk over a document's strings looks for.
    fn refused(c: char) -> bool {
        c.is_control() && !matches!(c, '\t' | '\n' | '\r')
    }

    proptest! {
        /// The quick scan of the JSON text never misses a string the exact walk refuses.
        #[test]
        fn the_text_scan_finds_every_refused_character(text in "(?s).{0,24}", c in any::<char>()) {
            let with = format!("{text}{c}");
            let json = serde_json::to_string(&serde_json::json!({ "field": with, "list": [text] }))
                .expect("strings encode");
            if with.chars().any(refused) {
                prop_assert!(may_hold_control_characters(&json), "missed in {json:?}");
            }
        }
    }

    #[test]
    fn the_text_scan_passes_ordinary_text() {
        for text in ["plain", "tab\tand\nnewline\r", "Zoë 東京 😀", "quote \" and \\ slash", "\u{A0}\u{2028}"] {
            let json = serde_json::to_string(&serde_json::json!({ "field": text })).expect("strings encode");
            assert!(!may_hold_control_characters(&json), "{json:?}");
        }
        for text in ["nul\0", "bell\u{7}", "del\u{7F}", "c1\u{85}", "c1\u{9F}"] {
            let json = serde_json::to_string(&serde_json::json!({ "field": text })).expect("strings encode");
            assert!(may_hold_control_characters(&json), "{json:?}");
        }
    }
}
