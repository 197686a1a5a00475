//! The [`Entity`] trait: how a domain type becomes a storage [`Record`] and back.

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    authz::Resource,
    error::{CrmError, Result},
    id::{Id, Meta},
    storage::{EntityKind, FieldValue, Record, Reference, StoredRecord, UniqueKey},
};

/// A stored domain type. Implementations declare what the storage indexes, which keys
/// are unique, which records they point at, and who owns them for authorization.
pub trait Entity: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The storage kind.
    const KIND: EntityKind;
    /// The resource the permission matrix governs it under.
    const RESOURCE: Resource;
    /// Indexed fields a listing may sort by (besides the default id order).
    const SORTABLE: &'static [&'static str] = &["created_at", "updated_at"];
    /// Indexed text fields the listing's `search` looks into.
    const SEARCHABLE: &'static [&'static str] = &[];
    /// The indexed field naming the owning user, used to scope listings to "own" records.
    const OWNER_FIELD: Option<&'static str> = None;
    /// JSON fields never copied into the audit log (secrets).
    const SECRET_FIELDS: &'static [&'static str] = &[];

    /// The common metadata.
    fn meta(&self) -> &Meta;
    /// The common metadata, mutably (services only).
    fn meta_mut(&mut self) -> &mut Meta;

    /// Adds the entity's indexed values. Emit every field every time (`Null` for absent
    /// values) so adapters can index and sort completely.
    fn index(&self, _fields: &mut Vec<(&'static str, FieldValue)>) {}
    /// Values unique per tenant among this kind.
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
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

/// Builds the storage record of an entity.
pub fn to_record<E: Entity>(entity: &E) -> Result<Record> {
    let meta = entity.meta();
    let data = serde_json::to_value(entity).map_err(|e| CrmError::Internal(format!("encode {}: {e}", E::KIND)))?;
    let mut fields = vec![("created_at", FieldValue::from(meta.created_at)), ("updated_at", meta.updated_at.into())];
    entity.index(&mut fields);
    Ok(Record {
        kind: E::KIND,
        id: meta.id,
        version: meta.version,
        data: std::sync::Arc::new(data),
        fields,
        uniques: entity.unique_keys(),
        references: entity.references(),
    })
}

/// Reads an entity back from a stored record.
pub fn from_stored<E: Entity>(stored: StoredRecord) -> Result<E> {
    let mut entity = E::deserialize(&*stored.data)
        .map_err(|e| CrmError::Internal(format!("decode {} {}: {e}", E::KIND, stored.id)))?;
    entity.meta_mut().version = stored.version;
    Ok(entity)
}
