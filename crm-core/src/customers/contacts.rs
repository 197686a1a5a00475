//! Contacts: people at customer companies, or standalone.

use serde::{Deserialize, Serialize};

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch},
    customers::companies::Company,
    entity::{Entity, entity_meta, reference},
    error::{Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta},
    storage::{EntityKind, Page, Reference},
};

/// A person the business deals with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Contact {
    /// Common metadata.
    pub meta: Meta,
    /// Given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: String,
    /// Family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: String,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PHONE_MAX)))]
    pub phone: Option<String>,
    /// Job title.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::SHORT_TEXT_MAX)))]
    pub position: Option<String>,
    /// The company the contact works for; `None` for a standalone contact.
    pub company_id: Option<Id<Company>>,
    /// The responsible user.
    pub owner_id: Id<User>,
    /// The lead this contact was converted from.
    // A `Lead` id, untyped: leads sit above contacts (converting one creates a contact).
    pub lead_id: Option<uuid::Uuid>,
}

impl Entity for Contact {
    const KIND: EntityKind = EntityKind::Contact;
    const RESOURCE: Resource = Resource::Contacts;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [range(created_from, created_to)],
        updated_at [],
        first_name: Text [search] = |e| e.first_name.as_str(),
        last_name: Text [sort, search] = |e| e.last_name.as_str(),
        email: Text [sort, search, eq] = |e| e.email.as_ref().map(|e| e.to_lowercase()),
        company_id: Uuid [eq] = |e| e.company_id,
        owner_id: Uuid [eq] = |e| e.owner_id,
        lead_id: Uuid [] = |e| e.lead_id,
    }

    fn references(&self) -> Vec<Reference> {
        let mut refs = vec![reference("owner_id", self.owner_id)];
        refs.extend(self.company_id.map(|c| reference("company_id", c)));
        refs
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        self.company_id.map(Id::uuid)
    }
}

impl Contact {
    pub(crate) fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("first_name", &self.first_name, Validator::PERSON_NAME_MAX)
            .text("last_name", &self.last_name, Validator::PERSON_NAME_MAX)
            .opt_text("phone", self.phone.as_deref(), Validator::PHONE_MAX)
            .opt_text("position", self.position.as_deref(), Validator::SHORT_TEXT_MAX);
        if let Some(email) = &self.email {
            v.email("email", email);
        }
        v.finish()
    }
}

/// Input to create a contact.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// Given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: String,
    /// Family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: String,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PHONE_MAX)))]
    pub phone: Option<String>,
    /// Job title.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::SHORT_TEXT_MAX)))]
    pub position: Option<String>,
    /// Company.
    pub company_id: Option<Id<Company>>,
    /// The responsible user; default: the creator.
    pub owner_id: Option<Id<User>>,
}

/// Changes to a contact; absent fields stay, `Some(None)` clears an optional one.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New given name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub first_name: Option<String>,
    /// New family name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PERSON_NAME_MAX)))]
    pub last_name: Option<String>,
    /// New email.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub email: Option<Option<String>>,
    /// New phone.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PHONE_MAX)))]
    pub phone: Option<Option<String>>,
    /// New job title.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::SHORT_TEXT_MAX)))]
    pub position: Option<Option<String>>,
    /// New company.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub company_id: Option<Option<Id<Company>>>,
    /// New responsible user.
    pub owner_id: Option<Id<User>>,
}

/// Filters for listing contacts.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContactFilter {
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this owner's.
    pub owner_id: Option<Id<User>>,
    /// Only with this email (case-insensitive, exact).
    pub email: Option<String>,
    /// Created at or after.
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before.
    pub created_to: Option<chrono::DateTime<chrono::Utc>>,
}

/// The contacts service.
#[derive(Clone, Copy, Debug)]
pub struct Contacts<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The contacts service.
    pub fn contacts(&self) -> Contacts<'_> {
        Contacts { crm: self }
    }
}

impl Contacts<'_> {
    /// Creates a contact.
    pub async fn create(&self, p: &Principal, input: NewContact) -> Result<Contact> {
        self.crm.authorize(p, Resource::Contacts, Action::Create)?;
        let contact = Contact {
            meta: self.crm.new_meta(p.tenant_id()),
            first_name: input.first_name,
            last_name: input.last_name,
            email: input.email,
            phone: input.phone,
            position: input.position,
            company_id: input.company_id,
            owner_id: input.owner_id.unwrap_or(p.user_id()),
            lead_id: None,
        };
        contact.validate()?;
        let mut tx = self.crm.tx(p);
        tx.insert(&contact)?;
        tx.commit().await?;
        Ok(contact)
    }

    /// One contact.
    pub async fn get(&self, p: &Principal, id: Id<Contact>) -> Result<Contact> {
        self.crm.read(p, id).await
    }

    /// A page of contacts.
    pub async fn list(&self, p: &Principal, filter: &ContactFilter, page: &PageRequest) -> Result<Page<Contact>> {
        let filters = Filters::default()
            .eq("company_id", filter.company_id)
            .eq("owner_id", filter.owner_id)
            .eq("email", filter.email.as_ref().map(|e| e.to_lowercase()))
            .range("created_at", filter.created_from, filter.created_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a contact.
    pub async fn update(&self, p: &Principal, id: Id<Contact>, patch: ContactPatch) -> Result<Contact> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        let mut after = before.clone();
        apply_patch!(patch => after { first_name, last_name, email, phone, position, company_id, owner_id });
        after.validate()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a contact; refused while deals or documents reference it.
    pub async fn delete(&self, p: &Principal, id: Id<Contact>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
