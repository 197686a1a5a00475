//! Leads: potential customers, qualified and converted into contacts, companies and deals.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch},
    customers::companies::{Company, NewCompany},
    customers::contacts::Contact,
    customers::deals::{Deal, NewDeal},
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    events::{EventPayload, StatusChanged},
    fields::indexed_fields,
    id::{Id, Meta},
    money::Currency,
    state::{StateMachine, status_enum, text_enum},
    storage::{EntityKind, Page, Reference},
};

status_enum! {
    /// A lead's place in the funnel: `new → contacted → qualified → converted`, or
    /// `unqualified` (which can be reopened as `contacted`).
    LeadStatus for Lead {
        /// Just captured.
        New = "new" => [Contacted, Qualified, Unqualified, Converted],
        /// Someone talked to them.
        Contacted = "contacted" => [Qualified, Unqualified, Converted],
        /// A real opportunity.
        Qualified = "qualified" => [Unqualified, Converted],
        /// Not a fit.
        Unqualified = "unqualified" => [Contacted],
        /// Became a contact (and maybe a company and a deal). Final.
        Converted = "converted" => [],
    }
}

text_enum! {
    /// Where a lead came from.
    LeadSource {
        /// The website.
        Website = "website",
        /// A referral.
        Referral = "referral",
        /// Social media.
        Social = "social",
        /// An email campaign.
        Email = "email",
        /// An event or trade show.
        Event = "event",
        /// Outbound calling.
        ColdCall = "cold_call",
        /// Anything else.
        Other = "other",
    }
}

/// A potential customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Lead {
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
    /// The company they work for, as text (becomes a company on conversion).
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub company_name: Option<String>,
    /// Where the lead came from.
    pub source: LeadSource,
    /// Lead score, 0 to 100.
    pub score: u8,
    /// Funnel status.
    pub status: LeadStatus,
    /// The responsible user.
    pub owner_id: Id<User>,
    /// Free notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
    /// When it was converted.
    pub converted_at: Option<DateTime<Utc>>,
    /// The contact it became.
    pub contact_id: Option<Id<Contact>>,
    /// The company it was attached to on conversion.
    pub company_id: Option<Id<Company>>,
    /// The deal created on conversion.
    pub deal_id: Option<Id<Deal>>,
}

impl Lead {
    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("first_name", &self.first_name, Validator::PERSON_NAME_MAX)
            .text("last_name", &self.last_name, Validator::PERSON_NAME_MAX)
            .opt_text("phone", self.phone.as_deref(), Validator::PHONE_MAX)
            .opt_text("company_name", self.company_name.as_deref(), Validator::NAME_MAX)
            .opt_text("notes", self.notes.as_deref(), Validator::NOTES_MAX)
            .check(self.score <= 100, "score", "must be between 0 and 100");
        if let Some(email) = &self.email {
            v.email("email", email);
        }
        v.finish()
    }
}

impl Entity for Lead {
    const KIND: EntityKind = EntityKind::Lead;
    const RESOURCE: Resource = Resource::Leads;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [range(created_from, created_to)],
        updated_at [],
        first_name: Text [search] = |e| e.first_name.as_str(),
        last_name: Text [sort, search] = |e| e.last_name.as_str(),
        email: Text [search] = |e| e.email.as_ref().map(|e| e.to_lowercase()),
        company_name: Text [search] = |e| e.company_name.clone(),
        source: Text [eq] = |e| e.source,
        score: Int [sort, min(min_score)] = |e| i64::from(e.score),
        status: Text [any(statuses)] = |e| e.status,
        owner_id: Uuid [eq] = |e| e.owner_id,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("owner_id", self.owner_id)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
}

/// Input to create a lead.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewLead {
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
    /// Company, as text.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub company_name: Option<String>,
    /// Source.
    pub source: LeadSource,
    /// Score, 0 to 100; default 0.
    pub score: Option<u8>,
    /// The responsible user (notified); default: the creator.
    pub owner_id: Option<Id<User>>,
    /// Notes.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<String>,
}

/// Changes to a lead; the status changes through [`Leads::change_status`] and [`Leads::convert`].
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
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
    /// New company text.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub company_name: Option<Option<String>>,
    /// New source.
    pub source: Option<LeadSource>,
    /// New score.
    pub score: Option<u8>,
    /// New owner (notified).
    pub owner_id: Option<Id<User>>,
    /// New notes.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NOTES_MAX)))]
    pub notes: Option<Option<String>>,
}

/// Filters for listing leads.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadFilter {
    /// Only these statuses.
    #[serde(deserialize_with = "crate::input::comma_list")]
    pub statuses: Vec<LeadStatus>,
    /// Only this source.
    pub source: Option<LeadSource>,
    /// Only this owner's.
    pub owner_id: Option<Id<User>>,
    /// Score at least.
    pub min_score: Option<u8>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
}

/// Which company a converted lead's contact joins.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", tag = "mode", content = "value")]
pub enum ConvertCompany {
    /// No company: a standalone contact.
    #[default]
    None,
    /// An existing company.
    Existing(Id<Company>),
    /// A new company, named by the value or else by the lead's `company_name`.
    New(Option<String>),
}

/// The deal to open when converting a lead.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConvertDeal {
    /// Deal title.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: String,
    /// Expected value.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// Currency.
    pub currency: Currency,
}

/// How to convert a lead.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConvertLead {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// The company choice.
    pub company: ConvertCompany,
    /// A deal to open, if any.
    pub deal: Option<ConvertDeal>,
}

/// Everything a conversion created.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadConversion {
    /// The lead, now `converted`.
    pub lead: Lead,
    /// The new contact.
    pub contact: Contact,
    /// The company the contact joined (new or existing).
    pub company: Option<Company>,
    /// The new deal.
    pub deal: Option<Deal>,
}

/// The leads service.
#[derive(Clone, Copy, Debug)]
pub struct Leads<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The leads service.
    pub fn leads(&self) -> Leads<'_> {
        Leads { crm: self }
    }
}

fn assigned_title(lead: &Lead) -> String {
    format!("Lead assigned to you: {} {}", lead.first_name, lead.last_name)
}

impl Leads<'_> {
    /// Creates a lead; the owner is notified when it is someone else.
    pub async fn create(&self, p: &Principal, input: NewLead) -> Result<Lead> {
        self.crm.authorize(p, Resource::Leads, Action::Create)?;
        let lead = Lead {
            meta: self.crm.new_meta(p.tenant_id()),
            first_name: input.first_name,
            last_name: input.last_name,
            email: input.email,
            phone: input.phone,
            company_name: input.company_name,
            source: input.source,
            score: input.score.unwrap_or(0),
            status: LeadStatus::New,
            owner_id: input.owner_id.unwrap_or(p.user_id()),
            notes: input.notes,
            converted_at: None,
            contact_id: None,
            company_id: None,
            deal_id: None,
        };
        lead.validate()?;
        let mut tx = self.crm.tx(p);
        tx.insert(&lead)?;
        tx.notify_assigned(lead.owner_id.uuid(), &lead, assigned_title(&lead))?;
        tx.commit().await?;
        Ok(lead)
    }

    /// One lead.
    pub async fn get(&self, p: &Principal, id: Id<Lead>) -> Result<Lead> {
        self.crm.read(p, id).await
    }

    /// A page of leads.
    pub async fn list(&self, p: &Principal, filter: &LeadFilter, page: &PageRequest) -> Result<Page<Lead>> {
        let filters = Filters::default()
            .any_of("status", &filter.statuses)
            .eq("source", filter.source)
            .eq("owner_id", filter.owner_id)
            .range("score", filter.min_score.map(i64::from), None)
            .range("created_at", filter.created_from, filter.created_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a lead's fields; a new owner is notified. Converted leads are frozen.
    pub async fn update(&self, p: &Principal, id: Id<Lead>, patch: LeadPatch) -> Result<Lead> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        if before.status == LeadStatus::Converted {
            return Err(CrmError::invalid("status", "a converted lead cannot be changed"));
        }
        let mut after = before.clone();
        apply_patch!(patch => after { first_name, last_name, email, phone, company_name, source, score, owner_id, notes });
        after.validate()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        if after.owner_id != before.owner_id {
            tx.notify_assigned(after.owner_id.uuid(), &after, assigned_title(&after))?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Moves a lead along its funnel (conversion goes through [`Leads::convert`]).
    pub async fn change_status(
        &self,
        p: &Principal,
        id: Id<Lead>,
        status: LeadStatus,
        version: Option<u64>,
    ) -> Result<Lead> {
        if status == LeadStatus::Converted {
            return Err(CrmError::invalid("status", "use convert to convert a lead"));
        }
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(status)?;
        let mut tx = self.crm.tx(p);
        tx.update_as("status_changed", &before, &mut after)?;
        tx.event(&after, &StatusChanged { from: before.status, to: after.status })?;
        tx.commit().await?;
        Ok(after)
    }

    /// Converts a lead: creates a contact from it, optionally a company and a deal,
    /// and marks it converted — all in one atomic write, or nothing.
    pub async fn convert(&self, p: &Principal, id: Id<Lead>, input: ConvertLead) -> Result<LeadConversion> {
        let before = self.crm.load_for(p, id, Action::Update, input.version).await?;
        self.crm.authorize(p, Resource::Contacts, Action::Create)?;
        let mut after = before.clone();
        after.status = before.status.transition(LeadStatus::Converted)?;
        let mut tx = self.crm.tx(p);

        let (company, new_company) = match input.company {
            ConvertCompany::None => (None, false),
            ConvertCompany::Existing(company_id) => {
                let company = self.crm.read(p, company_id).await?;
                // The company must still exist, unchanged, when the conversion commits.
                tx.check(&company);
                (Some(company), false)
            }
            ConvertCompany::New(name) => {
                self.crm.authorize(p, Resource::Companies, Action::Create)?;
                let Some(name) = name.or_else(|| before.company_name.clone()) else {
                    return Err(CrmError::invalid("company", "name the new company: the lead has no company name"));
                };
                let new = NewCompany { name, owner_id: Some(before.owner_id), ..NewCompany::default() };
                let company = self.crm.companies().build(p, new).map_err(|e| prefix_fields(e, "company."))?;
                (Some(company), true)
            }
        };
        let company_id = company.as_ref().map(Entity::id);

        let contact = Contact {
            meta: self.crm.new_meta(p.tenant_id()),
            first_name: before.first_name.clone(),
            last_name: before.last_name.clone(),
            email: before.email.clone(),
            phone: before.phone.clone(),
            position: None,
            company_id,
            owner_id: before.owner_id,
            lead_id: Some(id.uuid()),
        };
        contact.validate()?;

        let deal = match input.deal {
            None => None,
            Some(d) => {
                self.crm.authorize(p, Resource::Deals, Action::Create)?;
                let new = NewDeal {
                    title: d.title,
                    company_id,
                    contact_id: Some(contact.id()),
                    owner_id: Some(before.owner_id),
                    amount: d.amount,
                    currency: d.currency,
                    stage: None,
                    expected_close_date: None,
                };
                Some(self.crm.deals().build(p, new).map_err(|e| prefix_fields(e, "deal."))?)
            }
        };

        after.converted_at = Some(tx.now());
        after.contact_id = Some(contact.id());
        after.company_id = company_id;
        after.deal_id = deal.as_ref().map(Entity::id);

        if let (true, Some(company)) = (new_company, &company) {
            tx.insert(company)?;
        }
        tx.insert(&contact)?;
        if let Some(deal) = &deal {
            tx.insert(deal)?;
        }
        tx.update_as("converted", &before, &mut after)?;
        tx.event(&after, &LeadConverted::of(&after, contact.id().uuid()))?;
        tx.commit().await?;
        Ok(LeadConversion { lead: after, contact, company, deal })
    }

    /// Deletes a lead.
    pub async fn delete(&self, p: &Principal, id: Id<Lead>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}

/// Renames the fields of a validation error (`title` → `deal.title`) for nested input.
fn prefix_fields(error: CrmError, prefix: &str) -> CrmError {
    match error {
        CrmError::Validation(errors) => {
            let mut v = Validator::new();
            v.merge(prefix, errors);
            v.finish().err().unwrap_or(CrmError::Internal("empty validation error".into()))
        }
        other => other,
    }
}

/// `lead.converted`: a lead became a contact (with its company and, if asked, a deal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LeadConverted {
    /// The contact created.
    pub contact_id: Uuid,
    /// The company the contact belongs to (existing or created), if any.
    pub company_id: Option<Uuid>,
    /// The deal created, if any.
    pub deal_id: Option<Uuid>,
}

impl LeadConverted {
    /// The conversion event of a converted lead.
    pub(crate) fn of(lead: &Lead, contact_id: Uuid) -> Self {
        LeadConverted {
            contact_id,
            company_id: lead.company_id.map(|id| id.uuid()),
            deal_id: lead.deal_id.map(|id| id.uuid()),
        }
    }
}

impl EventPayload for LeadConverted {
    fn action(&self) -> &'static str {
        "converted"
    }
}
