//! Tasks: pieces of work in a project, assigned to a user.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    access::users::User,
    authz::{Access, Action, Principal, Resource},
    crm::{Crm, Filters, PageRequest, apply_patch, retry_on_conflict},
    customers::companies::Company,
    entity::{Entity, entity_meta, reference},
    error::{CrmError, Result, Validator},
    events::StatusChanged,
    fields::indexed_fields,
    id::{Id, Meta},
    state::{StateMachine, status_enum, text_enum},
    storage::{EntityKind, Page, Reference},
    work::{milestones::Milestone, projects::Project},
};

/// The most characters of a task's description.
pub const DESCRIPTION_MAX: usize = 10_000;

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
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: String,
    /// Description.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = DESCRIPTION_MAX)))]
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
    const OWNER_FIELD: Option<&'static str> = Some("assignee_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        project_id: Uuid [eq] = |e| e.project_id,
        company_id: Uuid [] = |e| e.company_id,
        milestone_id: Uuid [eq] = |e| e.milestone_id,
        title: Text [sort, search] = |e| e.title.as_str(),
        assignee_id: Uuid [eq] = |e| e.assignee_id,
        created_by: Uuid [] = |e| e.created_by,
        status: Text [any(statuses)] = |e| e.status,
        priority: Text [] = |e| e.priority,
        due_date: Date [sort, range(due_from, due_to)] = |e| e.due_date,
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
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: String,
    /// Description.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = DESCRIPTION_MAX)))]
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
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
    pub title: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "crate::input::double_option")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = DESCRIPTION_MAX)))]
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

/// The tasks service.
#[derive(Clone, Copy, Debug)]
pub struct Tasks<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The tasks service.
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks { crm: self }
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
        v.text("title", &input.title, Validator::NAME_MAX).opt_text(
            "description",
            input.description.as_deref(),
            DESCRIPTION_MAX,
        );
        v.finish()?;
        // Retried when a concurrent addition or close moved the project's work counter.
        retry_on_conflict(&[EntityKind::Tenant], || async {
            let project = self.crm.read(p, input.project_id).await?;
            project.require_open()?;
            let mut tx = self.crm.tx(p);
            if let Some(milestone_id) = input.milestone_id {
                let milestone = self.crm.read(p, milestone_id).await?;
                if milestone.project_id != input.project_id {
                    return Err(CrmError::invalid("milestone_id", "belongs to another project"));
                }
                tx.check(&milestone);
            }
            let key = project.work_counter();
            let last = self.crm.storage.counter(p.tenant_id(), &key).await?;
            tx.counter(key, last, last + 1);
            tx.check(&project);
            let task = Task {
                meta: self.crm.new_meta(p.tenant_id()),
                project_id: input.project_id,
                company_id: project.company_id,
                milestone_id: input.milestone_id,
                title: input.title.clone(),
                description: input.description.clone(),
                assignee_id: input.assignee_id,
                created_by: p.user_id(),
                status: TaskStatus::Todo,
                priority: input.priority.unwrap_or(TaskPriority::Medium),
                due_date: input.due_date,
                completed_at: None,
            };
            tx.insert(&task)?;
            if let Some(assignee) = task.assignee_id {
                tx.notify_assigned(assignee.uuid(), &task, format!("Task assigned to you: {}", task.title))?;
            }
            tx.commit().await?;
            Ok(task)
        })
        .await
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
        v.text("title", &after.title, Validator::NAME_MAX).opt_text(
            "description",
            after.description.as_deref(),
            DESCRIPTION_MAX,
        );
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
        tx.event(&after, &StatusChanged { from: before.status, to: after.status })?;
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
            tx.notify_assigned(user.uuid(), &after, format!("Task assigned to you: {}", after.title))?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a task.
    pub async fn delete(&self, p: &Principal, id: Id<Task>, version: Option<u64>) -> Result<()> {
        self.crm.delete(p, id, version).await
    }
}
