//! Customer companies.

use serde::{Deserialize, Serialize};

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch},
    entity::{Entity, entity_meta, reference},
    error::{Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta},
    storage::{EntityKind, Page, Reference},
};

/// A customer company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Company {
    /// Common metadata.
    pub meta: Meta,
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// Industry.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::SHORT_TEXT_MAX)))]
    pub industry: Option<String>,
    /// Website.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::URL_MAX)))]
    pub website: Option<String>,
    /// Main email.
    pub email: Option<String>,
    /// Main phone.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PHONE_MAX)))]
    pub phone: Option<String>,
    /// Postal address.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PARAGRAPH_MAX)))]
    pub address: Option<String>,
    /// The responsible user.
    pub owner_id: Id<User>,
}

impl Entity for Company {
    const KIND: EntityKind = EntityKind::Company;
    const RESOURCE: Resource = Resource::Companies;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        name: Text [sort, search] = |e| e.name.as_str(),
        email: Text [search] = |e| e.email.as_ref().map(|e| e.to_lowercase()),
        industry: Text [eq] = |e| e.industry.clone(),
        owner_id: Uuid [eq] = |e| e.owner_id,
        company_id: Uuid [] = |e| e.meta.id,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("owner_id", self.owner_id)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        Some(self.meta.id)
    }
}

impl Principal {
    /// The customer company of a client.
    pub fn company_id(&self) -> Option<Id<Company>> {
        self.company_uuid().map(Id::from_uuid)
    }
}

/// Input to create a company.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCompany {
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// Industry.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::SHORT_TEXT_MAX)))]
    pub industry: Option<String>,
    /// Website.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::URL_MAX)))]
    pub website: Option<String>,
    /// Main email.
    pub email: Option<String>,
    /// Main phone.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PHONE_MAX)))]
    pub phone: Option<String>,
    /// Postal address.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PARAGRAPH_MAX)))]
    pub address: Option<String>,
    /// The responsible user; default: the creator.
    pub owner_id: Option<Id<User>>,
}

/// Changes to a company; absent fields stay, `Some(None)` clears an optional one.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CompanyPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: Option<String>,
    /// New industry.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::SHORT_TEXT_MAX)))]
    pub industry: Option<Option<String>>,
    /// New website.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::URL_MAX)))]
    pub website: Option<Option<String>>,
    /// New email.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub email: Option<Option<String>>,
    /// New phone.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PHONE_MAX)))]
    pub phone: Option<Option<String>>,
    /// New address.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PARAGRAPH_MAX)))]
    pub address: Option<Option<String>>,
    /// New responsible user.
    pub owner_id: Option<Id<User>>,
}

/// Filters for listing companies.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanyFilter {
    /// Only this owner's.
    pub owner_id: Option<Id<User>>,
    /// Only this industry.
    pub industry: Option<String>,
}

impl Company {
    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("name", &self.name, Validator::NAME_MAX)
            .opt_text("industry", self.industry.as_deref(), Validator::SHORT_TEXT_MAX)
            .opt_text("website", self.website.as_deref(), Validator::URL_MAX)
            .opt_text("phone", self.phone.as_deref(), Validator::PHONE_MAX)
            .opt_text("address", self.address.as_deref(), Validator::PARAGRAPH_MAX);
        if let Some(email) = &self.email {
            v.email("email", email);
        }
        v.finish()
    }
}

/// The companies service.
#[derive(Clone, Copy, Debug)]
pub struct Companies<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The companies service.
    pub fn companies(&self) -> Companies<'_> {
        Companies { crm: self }
    }
}

impl Companies<'_> {
    /// Builds (without writing) a validated company; shared with lead conversion, so a
    /// company made there meets the same rules.
    pub(crate) fn build(&self, p: &Principal, input: NewCompany) -> Result<Company> {
        let company = Company {
            meta: self.crm.new_meta(p.tenant_id()),
            name: input.name,
            industry: input.industry,
            website: input.website,
            email: input.email,
            phone: input.phone,
            address: input.address,
            owner_id: input.owner_id.unwrap_or(p.user_id()),
        };
        company.validate()?;
        Ok(company)
    }

    /// Creates a company.
    pub async fn create(&self, p: &Principal, input: NewCompany) -> Result<Company> {
        self.crm.authorize(p, Resource::Companies, Action::Create)?;
        let company = self.build(p, input)?;
        let mut tx = self.crm.tx(p);
        tx.insert(&company)?;
        tx.commit().await?;
        Ok(company)
    }

    /// One company.
    pub async fn get(&self, p: &Principal, id: Id<Company>) -> Result<Company> {
        self.crm.read(p, id).await
    }

    /// A page of companies.
    pub async fn list(&self, p: &Principal, filter: &CompanyFilter, page: &PageRequest) -> Result<Page<Company>> {
        let filters =
            Filters::default().eq("owner_id", filter.owner_id).eq("industry", filter.industry.as_deref()).build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a company.
    pub async fn update(&self, p: &Principal, id: Id<Company>, patch: CompanyPatch) -> Result<Company> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        let mut after = before.clone();
        apply_patch!(patch => after { name, industry, website, email, phone, address, owner_id });
        after.validate()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a company; refused while contacts, deals or documents reference it.
    pub async fn delete(&self, p: &Principal, id: Id<Company>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
