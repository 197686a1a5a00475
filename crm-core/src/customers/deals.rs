//! Deals: sales opportunities moving through a pipeline of stages.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch},
    customers::companies::Company,
    customers::contacts::Contact,
    entity::{Entity, entity_meta, reference},
    error::{Result, Validator},
    events::EventPayload,
    fields::indexed_fields,
    id::{Id, Meta},
    money::{Currency, MAX_AMOUNT},
    state::{StateMachine, status_enum},
    storage::{EntityKind, Page, Reference},
};

status_enum! {
    /// A deal's pipeline stage. Open stages move freely among themselves and to a
    /// close; closed deals stay closed.
    DealStage for Deal {
        /// First contact with the opportunity.
        Prospecting = "prospecting" => [Qualification, Proposal, Negotiation, ClosedWon, ClosedLost],
        /// Need and budget confirmed.
        Qualification = "qualification" => [Prospecting, Proposal, Negotiation, ClosedWon, ClosedLost],
        /// An offer is out.
        Proposal = "proposal" => [Prospecting, Qualification, Negotiation, ClosedWon, ClosedLost],
        /// Terms are being negotiated.
        Negotiation = "negotiation" => [Prospecting, Qualification, Proposal, ClosedWon, ClosedLost],
        /// Won.
        ClosedWon = "closed_won" => [],
        /// Lost (with a reason).
        ClosedLost = "closed_lost" => [],
    }
}

impl DealStage {
    /// The default win probability of the stage, in percent.
    pub const fn default_probability(self) -> u8 {
        match self {
            Self::Prospecting => 10,
            Self::Qualification => 25,
            Self::Proposal => 50,
            Self::Negotiation => 75,
            Self::ClosedWon => 100,
            Self::ClosedLost => 0,
        }
    }

    /// Whether the deal is closed (won or lost).
    pub const fn is_closed(self) -> bool {
        matches!(self, Self::ClosedWon | Self::ClosedLost)
    }
}

/// A sales opportunity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Deal {
    /// Common metadata.
    pub meta: Meta,
    /// What is being sold.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: String,
    /// The customer company.
    pub company_id: Option<Id<Company>>,
    /// The customer contact.
    pub contact_id: Option<Id<Contact>>,
    /// The responsible user.
    pub owner_id: Id<User>,
    /// Expected value.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// Currency of `amount`.
    pub currency: Currency,
    /// Pipeline stage.
    pub stage: DealStage,
    /// Win probability in percent; reset to the stage's default on every stage change.
    pub probability: u8,
    /// When the deal is expected to close.
    pub expected_close_date: Option<NaiveDate>,
    /// When it closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Why it was lost (required for `closed_lost`).
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PARAGRAPH_MAX)))]
    pub lost_reason: Option<String>,
}

impl Deal {
    /// `amount × probability / 100`, rounded by the currency's rule.
    pub fn weighted_amount(&self) -> Decimal {
        self.currency.round(self.amount * Decimal::from(self.probability) / Decimal::ONE_HUNDRED)
    }

    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("title", &self.title, Validator::NAME_MAX);
        v.check(
            self.amount >= Decimal::ZERO
                && self.amount <= MAX_AMOUNT
                && self.currency.round(self.amount) == self.amount,
            "amount",
            format!(
                "must be a non-negative amount of at most {MAX_AMOUNT} with at most {} decimals",
                self.currency.minor_units()
            ),
        );
        v.check(self.probability <= 100, "probability", "must be between 0 and 100");
        v.opt_text("lost_reason", self.lost_reason.as_deref(), Validator::PARAGRAPH_MAX);
        v.finish()
    }
}

impl Entity for Deal {
    const KIND: EntityKind = EntityKind::Deal;
    const RESOURCE: Resource = Resource::Deals;
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        title: Text [sort, search] = |e| e.title.as_str(),
        company_id: Uuid [eq] = |e| e.company_id,
        contact_id: Uuid [eq] = |e| e.contact_id,
        owner_id: Uuid [eq] = |e| e.owner_id,
        stage: Text [any(stages)] = |e| e.stage,
        currency: Text [] = |e| e.currency.as_str(),
        amount: Decimal [sort] = |e| e.amount,
        weighted_amount: Decimal [] = |e| e.weighted_amount(),
        expected_close_date: Date [sort, range(close_from, close_to)] = |e| e.expected_close_date,
        closed_at: Timestamp [sort] = |e| e.closed_at,
    }

    fn references(&self) -> Vec<Reference> {
        let mut refs = vec![reference("owner_id", self.owner_id)];
        refs.extend(self.company_id.map(|c| reference("company_id", c)));
        refs.extend(self.contact_id.map(|c| reference("contact_id", c)));
        refs
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        self.company_id.map(Id::uuid)
    }
}

/// Input to create a deal.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDeal {
    /// What is being sold.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: String,
    /// The customer company.
    pub company_id: Option<Id<Company>>,
    /// The customer contact.
    pub contact_id: Option<Id<Contact>>,
    /// The responsible user; default: the creator.
    pub owner_id: Option<Id<User>>,
    /// Expected value.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// Currency.
    pub currency: Currency,
    /// Starting stage; default `prospecting`. Closed stages are reached by [`Deals::change_stage`].
    pub stage: Option<DealStage>,
    /// Expected close date.
    pub expected_close_date: Option<NaiveDate>,
}

/// Changes to a deal; stages change only through [`Deals::change_stage`].
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DealPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New title.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: Option<String>,
    /// New company.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub company_id: Option<Option<Id<Company>>>,
    /// New contact.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub contact_id: Option<Option<Id<Contact>>>,
    /// New owner (notified).
    pub owner_id: Option<Id<User>>,
    /// New amount.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub amount: Option<Decimal>,
    /// New currency.
    pub currency: Option<Currency>,
    /// A probability other than the stage's default.
    pub probability: Option<u8>,
    /// New expected close date.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub expected_close_date: Option<Option<NaiveDate>>,
}

/// Filters for listing deals.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DealFilter {
    /// Only these stages.
    #[serde(deserialize_with = "crate::input::comma_list")]
    pub stages: Vec<DealStage>,
    /// Only this owner's.
    pub owner_id: Option<Id<User>>,
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this contact's.
    pub contact_id: Option<Id<Contact>>,
    /// Expected to close on or after.
    pub close_from: Option<NaiveDate>,
    /// Expected to close before.
    pub close_to: Option<NaiveDate>,
}

/// The deals service.
#[derive(Clone, Copy, Debug)]
pub struct Deals<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The deals service.
    pub fn deals(&self) -> Deals<'_> {
        Deals { crm: self }
    }
}

/// Names each of amount, currency and probability the patch would change on a closed
/// deal: what was won or lost stays as it was decided (sending the same value is fine).
fn refuse_closed_changes(deal: &Deal, patch: &DealPatch) -> Result<()> {
    if !deal.stage.is_closed() {
        return Ok(());
    }
    let message = format!("is final on a deal in stage {}", deal.stage);
    let mut v = Validator::new();
    v.check(patch.amount.is_none_or(|a| a == deal.amount), "amount", &message);
    v.check(patch.currency.is_none_or(|c| c == deal.currency), "currency", &message);
    v.check(patch.probability.is_none_or(|p| p == deal.probability), "probability", &message);
    v.finish()
}

impl Deals<'_> {
    /// Builds (without writing) a validated open deal; shared with lead conversion.
    pub(crate) fn build(&self, p: &Principal, input: NewDeal) -> Result<Deal> {
        let stage = input.stage.unwrap_or(DealStage::Prospecting);
        if stage.is_closed() {
            return Err(crate::CrmError::invalid("stage", "a new deal must start in an open stage"));
        }
        let deal = Deal {
            meta: self.crm.new_meta(p.tenant_id()),
            title: input.title,
            company_id: input.company_id,
            contact_id: input.contact_id,
            owner_id: input.owner_id.unwrap_or(p.user_id()),
            amount: input.amount,
            currency: input.currency,
            stage,
            probability: stage.default_probability(),
            expected_close_date: input.expected_close_date,
            closed_at: None,
            lost_reason: None,
        };
        deal.validate()?;
        Ok(deal)
    }

    /// Creates a deal; the owner is notified when it is someone else.
    pub async fn create(&self, p: &Principal, input: NewDeal) -> Result<Deal> {
        self.crm.authorize(p, Resource::Deals, Action::Create)?;
        let deal = self.build(p, input)?;
        let mut tx = self.crm.tx(p);
        tx.insert(&deal)?;
        tx.notify_assigned(deal.owner_id.uuid(), &deal, format!("Deal assigned to you: {}", deal.title))?;
        tx.commit().await?;
        Ok(deal)
    }

    /// One deal.
    pub async fn get(&self, p: &Principal, id: Id<Deal>) -> Result<Deal> {
        self.crm.read(p, id).await
    }

    /// A page of deals.
    pub async fn list(&self, p: &Principal, filter: &DealFilter, page: &PageRequest) -> Result<Page<Deal>> {
        let filters = Filters::default()
            .any_of("stage", &filter.stages)
            .eq("owner_id", filter.owner_id)
            .eq("company_id", filter.company_id)
            .eq("contact_id", filter.contact_id)
            .range("expected_close_date", filter.close_from, filter.close_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a deal's fields (not its stage); a new owner is notified. A closed
    /// deal's amount, currency and probability are final.
    pub async fn update(&self, p: &Principal, id: Id<Deal>, patch: DealPatch) -> Result<Deal> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        refuse_closed_changes(&before, &patch)?;
        let mut after = before.clone();
        apply_patch!(patch => after { title, company_id, contact_id, owner_id, amount, currency, probability, expected_close_date });
        after.validate()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        if after.owner_id != before.owner_id {
            tx.notify_assigned(after.owner_id.uuid(), &after, format!("Deal assigned to you: {}", after.title))?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Moves a deal to another stage: resets the probability to the stage's default,
    /// stamps `closed_at` on a close, requires `lost_reason` for `closed_lost`, and
    /// emits `deal.stage_changed` (plus `deal.won` or `deal.lost`).
    pub async fn change_stage(
        &self,
        p: &Principal,
        id: Id<Deal>,
        stage: DealStage,
        lost_reason: Option<String>,
        version: Option<u64>,
    ) -> Result<Deal> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.stage = before.stage.transition(stage)?;
        after.probability = stage.default_probability();
        let mut v = Validator::new();
        match stage {
            DealStage::ClosedLost => {
                v.check(
                    lost_reason.as_deref().is_some_and(|r| !r.trim().is_empty()),
                    "lost_reason",
                    "is required to close a deal as lost",
                );
                after.lost_reason = lost_reason;
            }
            _ => {
                v.check(lost_reason.is_none(), "lost_reason", "is only for deals closed as lost");
            }
        }
        v.finish()?;
        after.validate()?;
        let mut tx = self.crm.tx(p);
        if stage.is_closed() {
            after.closed_at = Some(tx.now());
        }
        tx.update_as("stage_changed", &before, &mut after)?;
        tx.event(&after, &DealStageChanged { from: before.stage, to: after.stage })?;
        if let Some(closed) = DealClosed::of(&after) {
            tx.event(&after, &closed)?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a deal; refused while quotes or projects reference it.
    pub async fn delete(&self, p: &Principal, id: Id<Deal>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}

/// `deal.stage_changed`: a deal moved in the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DealStageChanged {
    /// The stage before.
    pub from: DealStage,
    /// The stage after.
    pub to: DealStage,
}

impl EventPayload for DealStageChanged {
    fn action(&self) -> &'static str {
        "stage_changed"
    }
}

/// `deal.won` and `deal.lost`: a deal closed (after its `deal.stage_changed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DealClosed {
    /// `closed_won` or `closed_lost`.
    pub stage: DealStage,
    /// The deal's amount.
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub amount: Decimal,
    /// The currency of `amount`.
    pub currency: Currency,
    /// Why it was lost, if it was and a reason was given.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::PARAGRAPH_MAX)))]
    pub lost_reason: Option<String>,
}

impl DealClosed {
    /// The closing event of `deal`, if its stage is a closed one.
    pub(crate) fn of(deal: &Deal) -> Option<Self> {
        deal.stage.is_closed().then(|| DealClosed {
            stage: deal.stage,
            amount: deal.amount,
            currency: deal.currency,
            lost_reason: deal.lost_reason.clone(),
        })
    }
}

impl EventPayload for DealClosed {
    fn action(&self) -> &'static str {
        if self.stage == DealStage::ClosedWon { "won" } else { "lost" }
    }
}
