//! Products and product categories.

use serde::{Deserialize, Serialize};

use crate::{
    authz::Resource,
    entity::{Entity, entity_meta},
    id::Meta,
    storage::EntityKind,
};

/// A catalog product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Common metadata.
    pub meta: Meta,
}

impl Entity for Product {
    const KIND: EntityKind = EntityKind::Product;
    const RESOURCE: Resource = Resource::Products;
    entity_meta!();
}
