//! A project's status changes. They sit above tasks and milestones because closing a
//! project (completed or cancelled) concerns its open work: refused while any is open,
//! unless the change says `close_open_work`, which closes it in the same commit.

use serde::{Deserialize, Serialize};

use crate::{
    authz::{Action, Principal},
    crm::{Crm, PageRequest, retry_on_conflict},
    entity::{Entity, from_stored},
    error::{CrmError, Result},
    events::EventPayload,
    id::{Id, TenantId},
    state::StateMachine,
    storage::{EntityKind, Filter},
    work::{
        milestones::{Milestone, MilestoneStatus},
        projects::{Project, ProjectStatus, Projects},
        tasks::{Task, TaskStatus},
    },
};

/// A change of a project's status.
#[derive(Clone, Copy, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectStatusChange {
    /// The new status.
    pub status: ProjectStatus,
    /// When completing or cancelling: also close every open task (as done) and open
    /// milestone (as completed), atomically. Without it, open work refuses the change.
    #[serde(default)]
    pub close_open_work: bool,
}

impl Projects<'_> {
    /// Moves a project along its life cycle; refuses to close it while work is open
    /// (see [`Projects::change_status`] to close that work with it).
    pub async fn set_status(
        &self,
        p: &Principal,
        id: Id<Project>,
        status: ProjectStatus,
        version: Option<u64>,
    ) -> Result<Project> {
        self.change_status(p, id, ProjectStatusChange { status, close_open_work: false }, version).await
    }

    /// Moves a project along its life cycle. Completing or cancelling it with open
    /// tasks or milestones needs `close_open_work`, and then closes them in the same
    /// atomic write (the project's right to update covers its work).
    pub async fn change_status(
        &self,
        p: &Principal,
        id: Id<Project>,
        change: ProjectStatusChange,
        version: Option<u64>,
    ) -> Result<Project> {
        // Retried when a task or milestone was added meanwhile: the close decides again.
        retry_on_conflict(&[EntityKind::Tenant], || self.change_status_once(p, id, change, version)).await
    }

    async fn change_status_once(
        &self,
        p: &Principal,
        id: Id<Project>,
        change: ProjectStatusChange,
        version: Option<u64>,
    ) -> Result<Project> {
        let before = self.crm.load_for(p, id, Action::Update, version).await?;
        let mut after = before.clone();
        after.status = before.status.transition(change.status)?;
        // Read before the open work: an addition after this moves it and fails the commit.
        let key = before.work_counter();
        let last = self.crm.storage.counter(p.tenant_id(), &key).await?;
        let (tasks, milestones) =
            if after.status.is_closed() { open_work(self.crm, p.tenant_id(), id).await? } else { Default::default() };
        let work_is_open = !tasks.is_empty() || !milestones.is_empty();
        if work_is_open && !change.close_open_work {
            return Err(CrmError::invalid(
                "close_open_work",
                format!(
                    "the project has {} open tasks and {} open milestones: finish them, or set close_open_work \
                     to close them with the project",
                    tasks.len(),
                    milestones.len()
                ),
            ));
        }
        let mut tx = self.crm.tx(p);
        tx.counter(key, last, last + 1);
        tx.update_as("status_changed", &before, &mut after)?;
        for task in &tasks {
            let mut closed = task.clone();
            (closed.status, closed.completed_at) = (TaskStatus::Done, Some(tx.now()));
            tx.update_as("closed_with_project", task, &mut closed)?;
        }
        for milestone in &milestones {
            let mut closed = milestone.clone();
            closed.status = MilestoneStatus::Completed;
            tx.update_as("closed_with_project", milestone, &mut closed)?;
        }
        let closed = ClosedWork { tasks: tasks.len(), milestones: milestones.len() };
        tx.event(&after, &ProjectStatusChanged { from: before.status, to: after.status, closed })?;
        tx.commit().await?;
        Ok(after)
    }
}

/// The project's tasks that are not done and milestones that are not completed.
async fn open_work(crm: &Crm, tenant: TenantId, project: Id<Project>) -> Result<(Vec<Task>, Vec<Milestone>)> {
    let open_tasks = [TaskStatus::Todo, TaskStatus::InProgress, TaskStatus::Review].map(Into::into);
    let tasks = all_of(crm, tenant, vec![Filter::eq("project_id", project), Filter::one_of("status", open_tasks)]);
    let open_milestones = [MilestoneStatus::Pending, MilestoneStatus::InProgress].map(Into::into);
    let milestones =
        all_of(crm, tenant, vec![Filter::eq("project_id", project), Filter::one_of("status", open_milestones)]);
    Ok((tasks.await?, milestones.await?))
}

/// Every record of the tenant matching `filters`, page by page.
async fn all_of<E: Entity>(crm: &Crm, tenant: TenantId, filters: Vec<Filter>) -> Result<Vec<E>> {
    let mut query = PageRequest::first(PageRequest::MAX_LIMIT).to_query::<E>(filters)?;
    let mut out = Vec::new();
    loop {
        let page = crm.storage.list(tenant, E::KIND, &query).await?;
        out.extend(page.items.into_iter().map(from_stored).collect::<Result<Vec<E>>>()?);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(out),
        }
    }
}

/// `project.status_changed`, with the open work closed with the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectStatusChanged {
    /// The status before.
    pub from: ProjectStatus,
    /// The status after.
    pub to: ProjectStatus,
    /// Open tasks and milestones closed with it (`close_open_work`).
    pub closed: ClosedWork,
}

/// How much open work a project's closing closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClosedWork {
    /// Tasks marked done.
    pub tasks: usize,
    /// Milestones marked completed.
    pub milestones: usize,
}

impl EventPayload for ProjectStatusChanged {
    fn action(&self) -> &'static str {
        "status_changed"
    }
}
