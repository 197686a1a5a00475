//! Projects, their milestones, and tasks.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    authz::{Access, Action, Principal, Resource},
    companies::Company,
    crm::{Crm, Filters, PageRequest, apply_patch},
    deals::Deal,
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    id::{Id, Meta},
    money::Currency,
    state::{StateMachine, status_enum, text_enum},
    storage::{AggregateQuery, EntityKind, FieldValue, Filter, GroupKey, Page, Reference},
    users::User,
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

status_enum! {
    /// A milestone's progress.
    MilestoneStatus for Milestone {
        /// Not started.
        Pending = "pending" => [InProgress],
        /// Being worked on.
        InProgress = "in_progress" => [Completed, Pending],
        /// Reached. Final.
        Completed = "completed" => [],
    }
}

status_enum! {
    /// A task's progress: `todo → in_progress → review → done`, with the way back from
    /// review and in-progress.
    TaskStatus for Task {
        /// Not started.
        Todo = "todo" => [InProgress],
        /// Being worked on.
        InProgress = "in_progress" => [Review, Todo],
        /// Waiting for review.
        Review = "review" => [Done, InProgress],
        /// Finished. Final.
        Done = "done" => [],
    }
}

text_enum! {
    /// How urgent a task is.
    TaskPriority {
        /// Whenever.
        Low = "low",
        /// Normal.
        Medium = "medium",
        /// Soon.
        High = "high",
        /// Now.
        Urgent = "urgent",
    }
}

/// Work for a customer company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Project {
    /// Common metadata.
    pub meta: Meta,
    /// Name.
    pub name: String,
    /// The customer company.
    pub company_id: Id<Company>,
    /// The deal it came from.
    pub deal_id: Option<Id<Deal>>,
    /// Budget.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
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
    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.text("name", &self.name, 200);
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
    const SORTABLE: &'static [&'static str] = &["name", "start_date", "end_date", "created_at", "updated_at"];
    const SEARCHABLE: &'static [&'static str] = &["name"];
    const OWNER_FIELD: Option<&'static str> = Some("manager_id");
    entity_meta!();

    fn index(&self, f: &mut Vec<(&'static str, FieldValue)>) {
        f.extend([
            ("name", self.name.as_str().into()),
            ("company_id", self.company_id.into()),
            ("deal_id", self.deal_id.into()),
            ("status", self.status.into()),
            ("manager_id", self.manager_id.into()),
            ("start_date", self.start_date.into()),
            ("end_date", self.end_date.into()),
        ]);
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

/// A checkpoint of a project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Milestone {
    /// Common metadata.
    pub meta: Meta,
    /// The project.
    pub project_id: Id<Project>,
    /// Name.
    pub name: String,
    /// When it is due.
    pub due_date: Option<NaiveDate>,
    /// Progress.
    pub status: MilestoneStatus,
    /// Who created it.
    pub owner_id: Id<User>,
}

impl Entity for Milestone {
    const KIND: EntityKind = EntityKind::Milestone;
    const RESOURCE: Resource = Resource::Milestones;
    const SORTABLE: &'static [&'static str] = &["due_date", "name", "created_at", "updated_at"];
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    fn index(&self, f: &mut Vec<(&'static str, FieldValue)>) {
        f.extend([
            ("project_id", self.project_id.into()),
            ("name", self.name.as_str().into()),
            ("due_date", self.due_date.into()),
            ("status", self.status.into()),
            ("owner_id", self.owner_id.into()),
        ]);
    }
    fn references(&self) -> Vec<Reference> {
        vec![reference("project_id", self.project_id), reference("owner_id", self.owner_id)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
}

/// A piece of work in a project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Task {
    /// Common metadata.
    pub meta: Meta,
    /// The project.
    pub project_id: Id<Project>,
    /// The project's company (kept here so clients can list their tasks).
    pub company_id: Id<Company>,
    /// The milestone it counts towards (of the same project).
    pub milestone_id: Option<Id<Milestone>>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Who does it.
    pub assignee_id: Option<Id<User>>,
    /// Who created it.
    pub created_by: Id<User>,
    /// Progress.
    pub status: TaskStatus,
    /// Urgency.
    pub priority: TaskPriority,
    /// When it is due.
    pub due_date: Option<NaiveDate>,
    /// When it was done.
    pub completed_at: Option<DateTime<Utc>>,
}

impl Entity for Task {
    const KIND: EntityKind = EntityKind::Task;
    const RESOURCE: Resource = Resource::Tasks;
    const SORTABLE: &'static [&'static str] = &["due_date", "title", "created_at", "updated_at"];
    const SEARCHABLE: &'static [&'static str] = &["title"];
    const OWNER_FIELD: Option<&'static str> = Some("assignee_id");
    entity_meta!();

    fn index(&self, f: &mut Vec<(&'static str, FieldValue)>) {
        f.extend([
            ("project_id", self.project_id.into()),
            ("company_id", self.company_id.into()),
            ("milestone_id", self.milestone_id.into()),
            ("title", self.title.as_str().into()),
            ("assignee_id", self.assignee_id.into()),
            ("created_by", self.created_by.into()),
            ("status", self.status.into()),
            ("priority", self.priority.into()),
            ("due_date", self.due_date.into()),
        ]);
    }
    fn references(&self) -> Vec<Reference> {
        let mut refs = vec![reference("project_id", self.project_id), reference("created_by", self.created_by)];
        refs.extend(self.milestone_id.map(|m| reference("milestone_id", m)));
        refs.extend(self.assignee_id.map(|a| reference("assignee_id", a)));
        refs
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        let mut owners = vec![self.created_by.uuid()];
        owners.extend(self.assignee_id.map(Id::uuid));
        owners
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
    pub name: String,
    /// The customer company.
    pub company_id: Id<Company>,
    /// The deal it came from.
    pub deal_id: Option<Id<Deal>>,
    /// Budget.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
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

/// Changes to a project (status through [`Projects::set_status`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New name.
    pub name: Option<String>,
    /// New budget.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Option<String>>"))]
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

/// Input to create a task.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The project.
    pub project_id: Id<Project>,
    /// A milestone of the same project.
    pub milestone_id: Option<Id<Milestone>>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Who does it (notified).
    pub assignee_id: Option<Id<User>>,
    /// Urgency; default medium.
    pub priority: Option<TaskPriority>,
    /// When it is due.
    pub due_date: Option<NaiveDate>,
}

/// Changes to a task (status and assignee through their own calls).
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// The version read; a stale one is a conflict.
    pub version: Option<u64>,
    /// New title.
    pub title: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub description: Option<Option<String>>,
    /// New priority.
    pub priority: Option<TaskPriority>,
    /// New due date.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    pub due_date: Option<Option<NaiveDate>>,
}

/// Filters for listing tasks.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskFilter {
    /// Only this project's.
    pub project_id: Option<Id<Project>>,
    /// Only this milestone's.
    pub milestone_id: Option<Id<Milestone>>,
    /// Only this assignee's.
    pub assignee_id: Option<Id<User>>,
    /// Only these statuses.
    #[serde(deserialize_with = "crate::input::comma_list")]
    pub statuses: Vec<TaskStatus>,
    /// Due on or after.
    pub due_from: Option<NaiveDate>,
    /// Due before.
    pub due_to: Option<NaiveDate>,
}

/// Task counts of one project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProjectProgress {
    /// The project.
    pub project_id: Id<Project>,
    /// Tasks per status, in status order (statuses without tasks included as 0).
    pub tasks_by_status: Vec<(TaskStatus, u64)>,
    /// All tasks.
    pub total: u64,
    /// Done tasks in percent of all, two decimals (0 for a project without tasks).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub percent_done: Decimal,
}

/// The projects service.
#[derive(Clone, Copy, Debug)]
pub struct Projects<'a> {
    crm: &'a Crm,
}

/// The milestones service.
#[derive(Clone, Copy, Debug)]
pub struct Milestones<'a> {
    crm: &'a Crm,
}

/// The tasks service.
#[derive(Clone, Copy, Debug)]
pub struct Tasks<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The projects service.
    pub fn projects(&self) -> Projects<'_> {
        Projects { crm: self }
    }
    /// The milestones service.
    pub fn milestones(&self) -> Milestones<'_> {
        Milestones { crm: self }
    }
    /// The tasks service.
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks { crm: self }
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
        let mut tx = self.crm.tx(p);
        tx.insert(&project)?;
        tx.notify_assigned(project.manager_id, &project, format!("Project assigned to you: {}", project.name))?;
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
            tx.notify_assigned(after.manager_id, &after, format!("Project assigned to you: {}", after.name))?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Moves a project along its life cycle.
    pub async fn set_status(
        &self,
        p: &Principal,
        id: Id<Project>,
        status: ProjectStatus,
        version: Option<u64>,
    ) -> Result<Project> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(status)?;
        let mut tx = self.crm.tx(p);
        tx.update_as("status_changed", &before, &mut after)?;
        tx.event("status_changed", &after, json!({ "from": before.status, "to": after.status }));
        tx.commit().await?;
        Ok(after)
    }

    /// Task counts by status and the share done, computed by the storage.
    pub async fn progress(&self, p: &Principal, id: Id<Project>) -> Result<ProjectProgress> {
        self.crm.read(p, id).await?;
        let query = AggregateQuery {
            filters: vec![Filter::eq("project_id", id)],
            group_by: vec![GroupKey::Field("status")],
            sums: vec![],
        };
        let rows = self.crm.storage.aggregate(p.tenant_id(), EntityKind::Task, &query).await?;
        let count = |s: TaskStatus| rows.iter().find(|r| r.key[0] == s.into()).map_or(0, |r| r.count);
        let tasks_by_status: Vec<(TaskStatus, u64)> = TaskStatus::ALL.iter().map(|s| (*s, count(*s))).collect();
        let total: u64 = tasks_by_status.iter().map(|(_, n)| n).sum();
        let done = count(TaskStatus::Done);
        let percent_done = if total == 0 {
            Decimal::ZERO
        } else {
            (Decimal::from(done) * Decimal::ONE_HUNDRED / Decimal::from(total)).round_dp(2)
        };
        Ok(ProjectProgress { project_id: id, tasks_by_status, total, percent_done })
    }

    /// Deletes a project; refused while milestones or tasks reference it.
    pub async fn delete(&self, p: &Principal, id: Id<Project>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}

impl Milestones<'_> {
    /// Creates a pending milestone in a project the principal can read.
    pub async fn create(
        &self,
        p: &Principal,
        project_id: Id<Project>,
        name: String,
        due_date: Option<NaiveDate>,
    ) -> Result<Milestone> {
        self.crm.authorize(p, Resource::Milestones, Action::Create)?;
        Validator::new().text("name", &name, 200).finish()?;
        let project = self.crm.read(p, project_id).await?;
        let milestone = Milestone {
            meta: self.crm.new_meta(p.tenant_id()),
            project_id,
            name,
            due_date,
            status: MilestoneStatus::Pending,
            owner_id: p.user_id(),
        };
        let mut tx = self.crm.tx(p);
        tx.check(&project);
        tx.insert(&milestone)?;
        tx.commit().await?;
        Ok(milestone)
    }

    /// One milestone.
    pub async fn get(&self, p: &Principal, id: Id<Milestone>) -> Result<Milestone> {
        self.crm.read(p, id).await
    }

    /// The milestones of a project, by due date unless asked otherwise.
    pub async fn list(&self, p: &Principal, project_id: Id<Project>, page: &PageRequest) -> Result<Page<Milestone>> {
        self.crm.list(p, vec![Filter::eq("project_id", project_id)], page).await
    }

    /// Moves a milestone along.
    pub async fn set_status(
        &self,
        p: &Principal,
        id: Id<Milestone>,
        status: MilestoneStatus,
        version: Option<u64>,
    ) -> Result<Milestone> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(status)?;
        let mut tx = self.crm.tx(p);
        tx.update_as("status_changed", &before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a milestone; refused while tasks reference it.
    pub async fn delete(&self, p: &Principal, id: Id<Milestone>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}

impl Tasks<'_> {
    /// Refuses assigning someone else unless the principal may assign tasks (managers
    /// and admins: tenant-wide update rights on tasks).
    fn check_assignment(&self, p: &Principal, assignee: Option<Id<User>>) -> Result<()> {
        match assignee {
            Some(user) if user != p.user_id() && p.access(Resource::Tasks, Action::Update) != Access::Tenant => {
                Err(CrmError::Forbidden(format!("{} may only assign tasks to itself", p.role().as_str())))
            }
            _ => Ok(()),
        }
    }

    /// Creates a task in `todo`; the assignee is notified.
    pub async fn create(&self, p: &Principal, input: NewTask) -> Result<Task> {
        self.crm.authorize(p, Resource::Tasks, Action::Create)?;
        self.check_assignment(p, input.assignee_id)?;
        let mut v = Validator::new();
        v.text("title", &input.title, 200).opt_text("description", input.description.as_deref(), 10_000);
        v.finish()?;
        let project = self.crm.read(p, input.project_id).await?;
        let mut tx = self.crm.tx(p);
        if let Some(milestone_id) = input.milestone_id {
            let milestone = self.crm.read(p, milestone_id).await?;
            if milestone.project_id != input.project_id {
                return Err(CrmError::invalid("milestone_id", "belongs to another project"));
            }
            tx.check(&milestone);
        }
        tx.check(&project);
        let task = Task {
            meta: self.crm.new_meta(p.tenant_id()),
            project_id: input.project_id,
            company_id: project.company_id,
            milestone_id: input.milestone_id,
            title: input.title,
            description: input.description,
            assignee_id: input.assignee_id,
            created_by: p.user_id(),
            status: TaskStatus::Todo,
            priority: input.priority.unwrap_or(TaskPriority::Medium),
            due_date: input.due_date,
            completed_at: None,
        };
        tx.insert(&task)?;
        if let Some(assignee) = task.assignee_id {
            tx.notify_assigned(assignee, &task, format!("Task assigned to you: {}", task.title))?;
        }
        tx.commit().await?;
        Ok(task)
    }

    /// One task.
    pub async fn get(&self, p: &Principal, id: Id<Task>) -> Result<Task> {
        self.crm.read(p, id).await
    }

    /// A page of tasks.
    pub async fn list(&self, p: &Principal, filter: &TaskFilter, page: &PageRequest) -> Result<Page<Task>> {
        let filters = Filters::default()
            .eq("project_id", filter.project_id)
            .eq("milestone_id", filter.milestone_id)
            .eq("assignee_id", filter.assignee_id)
            .any_of("status", &filter.statuses)
            .range("due_date", filter.due_from, filter.due_to)
            .build();
        self.crm.list(p, filters, page).await
    }

    /// Changes a task's fields.
    pub async fn update(&self, p: &Principal, id: Id<Task>, patch: TaskPatch) -> Result<Task> {
        let before = self.crm.load_for(p, id, Action::Update, patch.version).await?;
        let mut after = before.clone();
        apply_patch!(patch => after { title, description, priority, due_date });
        let mut v = Validator::new();
        v.text("title", &after.title, 200).opt_text("description", after.description.as_deref(), 10_000);
        v.finish()?;
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Moves a task along its state machine; emits `task.status_changed`.
    pub async fn set_status(
        &self,
        p: &Principal,
        id: Id<Task>,
        status: TaskStatus,
        version: Option<u64>,
    ) -> Result<Task> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(status)?;
        let mut tx = self.crm.tx(p);
        if status == TaskStatus::Done {
            after.completed_at = Some(tx.now());
        }
        tx.update_as("status_changed", &before, &mut after)?;
        tx.event("status_changed", &after, json!({ "from": before.status, "to": after.status }));
        tx.commit().await?;
        Ok(after)
    }

    /// Assigns (or unassigns) a task. Only admins and managers assign others; the new
    /// assignee is notified.
    pub async fn assign(
        &self,
        p: &Principal,
        id: Id<Task>,
        assignee: Option<Id<User>>,
        version: Option<u64>,
    ) -> Result<Task> {
        self.check_assignment(p, assignee)?;
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.assignee_id = assignee;
        let mut tx = self.crm.tx(p);
        tx.update_as("assigned", &before, &mut after)?;
        if let Some(user) = assignee.filter(|u| Some(*u) != before.assignee_id) {
            tx.notify_assigned(user, &after, format!("Task assigned to you: {}", after.title))?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a task.
    pub async fn delete(&self, p: &Principal, id: Id<Task>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
