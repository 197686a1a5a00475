//! Projects: work for a customer company, with a budget, a manager and a life cycle.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch},
    customers::companies::Company,
    customers::deals::Deal,
    customers::links::CompanyLinks,
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta},
    money::Currency,
    state::status_enum,
    storage::{EntityKind, Page, Reference},
};

status_enum! {
    /// A project's life: `planning → active ⇄ on_hold → completed`, or `cancelled`.
    ProjectStatus for Project {
        /// Being planned.
        Planning = "planning" => [Active, Cancelled],
        /// Under way.
        Active = "active" => [OnHold, Completed, Cancelled],
        /// Paused.
        OnHold = "on_hold" => [Active, Cancelled],
        /// Done. Final.
        Completed = "completed" => [],
        /// Abandoned. Final.
        Cancelled = "cancelled" => [],
    }
}

impl ProjectStatus {
    /// Completed or cancelled: no work is added to the project any more.
    pub const fn is_closed(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

/// Work for a customer company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Project {
    /// Common metadata.
    pub meta: Meta,
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// The customer company.
    pub company_id: Id<Company>,
    /// The deal it came from.
    pub deal_id: Option<Id<Deal>>,
    /// Budget.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub budget: Option<Decimal>,
    /// Currency of the budget.
    pub currency: Option<Currency>,
    /// Life-cycle status.
    pub status: ProjectStatus,
    /// Planned start.
    pub start_date: Option<NaiveDate>,
    /// Planned end (on or after the start).
    pub end_date: Option<NaiveDate>,
    /// The responsible manager.
    pub manager_id: Id<User>,
}

impl Project {
    /// Refuses new work (tasks, milestones) in a closed project, naming `project_id`.
    pub(crate) fn require_open(&self) -> Result<()> {
        if self.status.is_closed() {
            return Err(CrmError::invalid(
                "project_id",
                format!("the project is {}: no work can be added", self.status),
            ));
        }
        Ok(())
    }

    /// The counter that every addition of work (a task, a milestone) and every close
    /// advances in its commit: a close and an addition racing each other cannot both
    /// commit, so a close never misses work added after it looked.
    pub(crate) fn work_counter(&self) -> String {
        format!("project_work:{}", self.meta.id)
    }

    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("name", &self.name, Validator::NAME_MAX);
        v.check(
            self.budget.is_none_or(|b| b >= Decimal::ZERO && self.currency.is_some_and(|c| c.round(b) == b)),
            "budget",
            "must be a non-negative amount, exact in its currency, which is required with it",
        );
        if let (Some(start), Some(end)) = (self.start_date, self.end_date) {
            v.check(end >= start, "end_date", "must not be before start_date");
        }
        v.finish()
    }
}

impl Entity for Project {
    const KIND: EntityKind = EntityKind::Project;
    const RESOURCE: Resource = Resource::Projects;
    const OWNER_FIELD: Option<&'static str> = Some("manager_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        name: Text [sort, search] = |e| e.name.as_str(),
        company_id: Uuid [eq] = |e| e.company_id,
        deal_id: Uuid [] = |e| e.deal_id,
        status: Text [eq] = |e| e.status,
        manager_id: Uuid [eq] = |e| e.manager_id,
        start_date: Date [sort] = |e| e.start_date,
        end_date: Date [sort] = |e| e.end_date,
    }

    fn references(&self) -> Vec<Reference> {
        let mut refs = vec![reference("company_id", self.company_id), reference("manager_id", self.manager_id)];
        refs.extend(self.deal_id.map(|d| reference("deal_id", d)));
        refs
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.manager_id.uuid()]
    }
    fn company(&self) -> Option<uuid::Uuid> {
        Some(self.company_id.uuid())
    }
}

/// Input to create a project.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: String,
    /// The customer company.
    pub company_id: Id<Company>,
    /// The deal it came from.
    pub deal_id: Option<Id<Deal>>,
    /// Budget.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::money::DecimalText>"))]
    pub budget: Option<Decimal>,
    /// Currency of the budget.
    pub currency: Option<Currency>,
    /// Planned start.
    pub start_date: Option<NaiveDate>,
    /// Planned end.
    pub end_date: Option<NaiveDate>,
    /// The responsible manager; default: the creator.
    pub manager_id: Option<Id<User>>,
}

/// Changes to a project (status through [`Projects::change_status`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub name: Option<String>,
    /// New budget.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Option<crate::money::DecimalText>>"))]
    pub budget: Option<Option<Decimal>>,
    /// New budget currency.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub currency: Option<Option<Currency>>,
    /// New start.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub start_date: Option<Option<NaiveDate>>,
    /// New end.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub end_date: Option<Option<NaiveDate>>,
    /// New manager.
    pub manager_id: Option<Id<User>>,
}

/// Filters for listing projects.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectFilter {
    /// Only this company's.
    pub company_id: Option<Id<Company>>,
    /// Only this status.
    pub status: Option<ProjectStatus>,
    /// Only this manager's.
    pub manager_id: Option<Id<User>>,
}

/// The projects service.
#[derive(Clone, Copy, Debug)]
pub struct Projects<'a> {
    pub(crate) crm: &'a Crm,
}

impl Crm {
    /// The projects service.
    pub fn projects(&self) -> Projects<'_> {
        Projects { crm: self }
    }
}

impl Projects<'_> {
    /// Creates a project in `planning`.
    pub async fn create(&self, p: &Principal, input: NewProject) -> Result<Project> {
        self.crm.authorize(p, Resource::Projects, Action::Create)?;
        let project = Project {
            meta: self.crm.new_meta(p.tenant_id()),
            name: input.name,
            company_id: input.company_id,
            deal_id: input.deal_id,
            budget: input.budget,
            currency: input.currency,
            status: ProjectStatus::Planning,
            start_date: input.start_date,
            end_date: input.end_date,
            manager_id: input.manager_id.unwrap_or(p.user_id()),
        };
        project.validate()?;
        let links = CompanyLinks::check(self.crm, p.tenant_id(), project.company_id, None, project.deal_id).await?;
        let mut tx = self.crm.tx(p);
        links.guard(&mut tx);
        tx.insert(&project)?;
        tx.notify_assigned(project.manager_id.uuid(), &project, format!("Project assigned to you: {}", project.name))?;
        tx.commit().await?;
        Ok(project)
    }

    /// One project.
    pub async fn get(&self, p: &Principal, id: Id<Project>) -> Result<Project> {
        self.crm.read(p, id).await
    }

    /// A page of projects.
    pub async fn list(&self, p: &Principal, filter: &ProjectFilter, page: &PageRequest) -> Result<Page<Project>> {
        let filters = Filters::default()
            .eq("company_id", filter.company_id)
            .eq("status", filter.status)
            .eq("manager_id", filter.manager_id)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a project.
    pub async fn update(&self, p: &Principal, id: Id<Project>, patch: ProjectPatch) -> Result<Project> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        let mut after = before.clone();
        apply_patch!(patch => after { name, budget, currency, start_date, end_date, manager_id });
        after.validate()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        if after.manager_id != before.manager_id {
            tx.notify_assigned(after.manager_id.uuid(), &after, format!("Project assigned to you: {}", after.name))?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a project; refused while milestones or tasks reference it.
    pub async fn delete(&self, p: &Principal, id: Id<Project>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
