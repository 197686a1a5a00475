//! The product catalog: products and a tree of categories.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch},
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta},
    money::Currency,
    storage::{EntityKind, Filter, Page, Reference},
};

/// The most characters of a product's unit (`pcs`, `h`, `kg`).
pub const UNIT_MAX: usize = 20;

/// The most characters of a product's SKU.
pub const SKU_MAX: usize = 64;

/// A sellable product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Product {
    /// Common metadata.
    pub meta: Meta,
    /// Stock-keeping unit; unique per tenant, compared case-insensitively.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = SKU_MAX)))]
    pub sku: String,
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// Description.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub description: Option<String>,
    /// Price of one unit before tax.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub unit_price: Decimal,
    /// Currency of the price.
    pub currency: Currency,
    /// Tax rate in percent.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub tax_rate: Decimal,
    /// The unit sold (`pcs`, `h`, `kg`…).
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = UNIT_MAX)))]
    pub unit: String,
    /// Inactive products stay on old documents but are not offered.
    pub active: bool,
    /// Its category.
    pub category_id: Option<Id<ProductCategory>>,
}

impl Product {
    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("sku", &self.sku, SKU_MAX)
            .text("name", &self.name, Validator::NAME_MAX)
            .opt_text("description", self.description.as_deref(), Validator::NOTES_MAX)
            .text("unit", &self.unit, UNIT_MAX)
            .check(
                self.unit_price >= Decimal::ZERO && self.unit_price.scale() <= 4,
                "unit_price",
                "must be non-negative with at most 4 decimals",
            )
            .check(
                (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&self.tax_rate),
                "tax_rate",
                "must be between 0 and 100",
            );
        v.finish()
    }
}

impl Entity for Product {
    const KIND: EntityKind = EntityKind::Product;
    const RESOURCE: Resource = Resource::Products;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        sku: Text [sort, search, unique] = |e| e.sku.to_lowercase(),
        name: Text [sort, search] = |e| e.name.as_str(),
        unit_price: Decimal [sort] = |e| e.unit_price,
        active: Bool [eq] = |e| e.active,
        category_id: Uuid [eq] = |e| e.category_id,
    }

    fn references(&self) -> Vec<Reference> {
        self.category_id.map(|c| reference("category_id", c)).into_iter().collect()
    }
}

/// A node in the category tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProductCategory {
    /// Common metadata.
    pub meta: Meta,
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// The parent; `None` for a root.
    pub parent_id: Option<Id<ProductCategory>>,
}

impl Entity for ProductCategory {
    const KIND: EntityKind = EntityKind::ProductCategory;
    const RESOURCE: Resource = Resource::ProductCategories;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        name: Text [sort, search] = |e| e.name.as_str(),
        parent_id: Uuid [] = |e| e.parent_id,
    }

    fn references(&self) -> Vec<Reference> {
        self.parent_id.map(|p| reference("parent_id", p)).into_iter().collect()
    }
}

/// Input to create a product.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// SKU.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = SKU_MAX)))]
    pub sku: String,
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// Description.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub description: Option<String>,
    /// Unit price.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub unit_price: Decimal,
    /// Currency.
    pub currency: Currency,
    /// Tax rate in percent.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub tax_rate: Decimal,
    /// Unit; default `pcs`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = UNIT_MAX)))]
    pub unit: Option<String>,
    /// Category.
    pub category_id: Option<Id<ProductCategory>>,
}

/// Changes to a product.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New SKU.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = SKU_MAX)))]
    pub sku: Option<String>,
    /// New name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub description: Option<Option<String>>,
    /// New price.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub unit_price: Option<Decimal>,
    /// New currency.
    pub currency: Option<Currency>,
    /// New tax rate.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub tax_rate: Option<Decimal>,
    /// New unit.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = UNIT_MAX)))]
    pub unit: Option<String>,
    /// Activate or retire.
    pub active: Option<bool>,
    /// New category.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub category_id: Option<Option<Id<ProductCategory>>>,
}

/// Filters for listing products.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductFilter {
    /// Only this category's.
    pub category_id: Option<Id<ProductCategory>>,
    /// Only active or inactive ones.
    pub active: Option<bool>,
}

/// The products service.
#[derive(Clone, Copy, Debug)]
pub struct Products<'a> {
    crm: &'a Crm,
}

/// The product categories service.
#[derive(Clone, Copy, Debug)]
pub struct ProductCategories<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The products service.
    pub fn products(&self) -> Products<'_> {
        Products { crm: self }
    }

    /// The product categories service.
    pub fn product_categories(&self) -> ProductCategories<'_> {
        ProductCategories { crm: self }
    }
}

impl Products<'_> {
    /// Creates an active product.
    pub async fn create(&self, p: &Principal, input: NewProduct) -> Result<Product> {
        self.crm.authorize(p, Resource::Products, Action::Create)?;
        let product = Product {
            meta: self.crm.new_meta(p.tenant_id()),
            sku: input.sku,
            name: input.name,
            description: input.description,
            unit_price: input.unit_price,
            currency: input.currency,
            tax_rate: input.tax_rate,
            unit: input.unit.unwrap_or_else(|| "pcs".into()),
            active: true,
            category_id: input.category_id,
        };
        product.validate()?;
        let mut tx = self.crm.tx(p);
        tx.insert(&product)?;
        tx.commit().await?;
        Ok(product)
    }

    /// One product.
    pub async fn get(&self, p: &Principal, id: Id<Product>) -> Result<Product> {
        self.crm.read(p, id).await
    }

    /// A page of products.
    pub async fn list(&self, p: &Principal, filter: &ProductFilter, page: &PageRequest) -> Result<Page<Product>> {
        let filters = Filters::default().eq("category_id", filter.category_id).eq("active", filter.active).build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a product.
    pub async fn update(&self, p: &Principal, id: Id<Product>, patch: ProductPatch) -> Result<Product> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        let mut after = before.clone();
        apply_patch!(patch => after { sku, name, description, unit_price, currency, tax_rate, unit, active, category_id });
        after.validate()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a product; refused while documents reference it (retire it instead).
    pub async fn delete(&self, p: &Principal, id: Id<Product>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}

/// How deep the category tree may grow; also bounds the cycle check's walk.
pub const MAX_CATEGORY_DEPTH: usize = 32;

impl ProductCategories<'_> {
    fn validate(name: &str) -> Result<()> {
        Validator::new().text("name", name, Validator::NAME_MAX).finish()
    }

    /// The ancestors of `parent` (itself first), refusing a tree deeper than
    /// [`MAX_CATEGORY_DEPTH`] or one that contains `moving`.
    async fn ancestry(
        &self,
        p: &Principal,
        parent: Id<ProductCategory>,
        moving: Option<Id<ProductCategory>>,
    ) -> Result<Vec<ProductCategory>> {
        let mut chain = Vec::new();
        let mut next = Some(parent);
        while let Some(id) = next {
            if Some(id) == moving {
                return Err(CrmError::invalid("parent_id", "a category cannot move under itself or its descendants"));
            }
            if chain.len() >= MAX_CATEGORY_DEPTH {
                return Err(CrmError::invalid(
                    "parent_id",
                    format!("categories nest at most {MAX_CATEGORY_DEPTH} deep"),
                ));
            }
            let category: ProductCategory = self.crm.read(p, id).await?;
            next = category.parent_id;
            chain.push(category);
        }
        Ok(chain)
    }

    /// Creates a category under `parent_id` (or a root).
    pub async fn create(
        &self,
        p: &Principal,
        name: String,
        parent_id: Option<Id<ProductCategory>>,
    ) -> Result<ProductCategory> {
        self.crm.authorize(p, Resource::ProductCategories, Action::Create)?;
        Self::validate(&name)?;
        let ancestors = match parent_id {
            Some(parent) => self.ancestry(p, parent, None).await?,
            None => Vec::new(),
        };
        let category = ProductCategory { meta: self.crm.new_meta(p.tenant_id()), name, parent_id };
        let mut tx = self.crm.tx(p);
        // The depth decision holds only while the ancestors stay where they were read.
        ancestors.iter().for_each(|a| tx.check(a));
        tx.insert(&category)?;
        tx.commit().await?;
        Ok(category)
    }

    /// One category.
    pub async fn get(&self, p: &Principal, id: Id<ProductCategory>) -> Result<ProductCategory> {
        self.crm.read(p, id).await
    }

    /// The children of `parent_id` (roots for `None`).
    pub async fn list(
        &self,
        p: &Principal,
        parent_id: Option<Id<ProductCategory>>,
        page: &PageRequest,
    ) -> Result<Page<ProductCategory>> {
        self.crm.list(p, vec![Filter::eq("parent_id", parent_id)], page).await
    }

    /// Renames a category.
    pub async fn rename(
        &self,
        p: &Principal,
        id: Id<ProductCategory>,
        name: String,
        version: Option<u64>,
    ) -> Result<ProductCategory> {
        Self::validate(&name)?;
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = ProductCategory { name, ..before.clone() };
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Moves a category under another (or to the root). A move that would make a cycle
    /// is refused; every ancestor read for that decision is checked unchanged at commit,
    /// so two concurrent moves cannot build a cycle together.
    pub async fn move_to(
        &self,
        p: &Principal,
        id: Id<ProductCategory>,
        parent_id: Option<Id<ProductCategory>>,
        version: Option<u64>,
    ) -> Result<ProductCategory> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let ancestors = match parent_id {
            Some(parent) => self.ancestry(p, parent, Some(id)).await?,
            None => Vec::new(),
        };
        let mut after = ProductCategory { parent_id, ..before.clone() };
        let mut tx = self.crm.tx(p);
        ancestors.iter().for_each(|a| tx.check(a));
        tx.update_as("moved", &before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a category; refused while it has children or products.
    pub async fn delete(&self, p: &Principal, id: Id<ProductCategory>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
