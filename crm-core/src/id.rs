//! Identifiers and the metadata every stored record carries.

use std::{fmt, hash, marker::PhantomData, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A tenant: the wall around every record. No call reads or writes across it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of a record of entity `E` (a UUID v7, so ids sort by creation time).
pub struct Id<E> {
    uuid: Uuid,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Id<E> {
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self { uuid, _entity: PhantomData }
    }

    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self::from_uuid(Uuid::now_v7())
    }

    /// The UUID inside.
    pub const fn uuid(self) -> Uuid {
        self.uuid
    }
}

impl<E> Clone for Id<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Id<E> {}
impl<E> PartialEq for Id<E> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}
impl<E> Eq for Id<E> {}
impl<E> PartialOrd for Id<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Id<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.uuid.cmp(&other.uuid)
    }
}
impl<E> hash::Hash for Id<E> {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}
impl<E> fmt::Debug for Id<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.uuid, f)
    }
}
impl<E> fmt::Display for Id<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uuid, f)
    }
}
impl<E> FromStr for Id<E> {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self::from_uuid)
    }
}
impl<E> From<Uuid> for Id<E> {
    fn from(uuid: Uuid) -> Self {
        Self::from_uuid(uuid)
    }
}
impl<E> From<Id<E>> for Uuid {
    fn from(id: Id<E>) -> Self {
        id.uuid
    }
}
impl<E> Serialize for Id<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.uuid.serialize(s)
    }
}
impl<'de, E> Deserialize<'de> for Id<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Uuid::deserialize(d).map(Self::from_uuid)
    }
}

#[cfg(feature = "schema")]
impl<E> schemars::JsonSchema for Id<E> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Id".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Uuid::json_schema(generator)
    }
}

/// What every record carries besides its own fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Meta {
    /// The record's id (UUID v7).
    pub id: Uuid,
    /// The tenant that owns the record.
    pub tenant_id: TenantId,
    /// Starts at 1; every committed update adds 1. Updates name the version they read.
    pub version: u64,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When the record was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Meta {
    /// Metadata for a record created now.
    pub fn new(tenant_id: TenantId, now: DateTime<Utc>) -> Self {
        Self { id: Uuid::now_v7(), tenant_id, version: 1, created_at: now, updated_at: now }
    }
}
