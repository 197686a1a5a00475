//! API keys.

use serde::{Deserialize, Serialize};

use crate::{
    authz::Resource,
    entity::{Entity, entity_meta},
    id::Meta,
    storage::EntityKind,
};

/// An API key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Common metadata.
    pub meta: Meta,
}

impl Entity for ApiKey {
    const KIND: EntityKind = EntityKind::ApiKey;
    const RESOURCE: Resource = Resource::ApiKeys;
    entity_meta!();
}
