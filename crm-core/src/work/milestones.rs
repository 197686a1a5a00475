//! Milestones: checkpoints of a project.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, PageRequest, retry_on_conflict},
    entity::{Entity, entity_meta, reference},
    error::{Result, Validator},
    fields::indexed_fields,
    id::{Id, Meta},
    state::{StateMachine, status_enum},
    storage::{EntityKind, Filter, Page, Reference},
    work::projects::Project,
};

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

/// A checkpoint of a project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Milestone {
    /// Common metadata.
    pub meta: Meta,
    /// The project.
    pub project_id: Id<Project>,
    /// Name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::error::Validator::NAME_MAX)))]
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
    const OWNER_FIELD: Option<&'static str> = Some("owner_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        project_id: Uuid [] = |e| e.project_id,
        name: Text [sort] = |e| e.name.as_str(),
        due_date: Date [sort] = |e| e.due_date,
        status: Text [] = |e| e.status,
        owner_id: Uuid [] = |e| e.owner_id,
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("project_id", self.project_id), reference("owner_id", self.owner_id)]
    }
    fn owners(&self) -> Vec<uuid::Uuid> {
        vec![self.owner_id.uuid()]
    }
}

/// The milestones service.
#[derive(Clone, Copy, Debug)]
pub struct Milestones<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The milestones service.
    pub fn milestones(&self) -> Milestones<'_> {
        Milestones { crm: self }
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
        Validator::new().text("name", &name, Validator::NAME_MAX).finish()?;
        // Retried when a concurrent addition or close moved the project's work counter.
        retry_on_conflict(&[EntityKind::Tenant], || async {
            let project = self.crm.read(p, project_id).await?;
            project.require_open()?;
            let milestone = Milestone {
                meta: self.crm.new_meta(p.tenant_id()),
                project_id,
                name: name.clone(),
                due_date,
                status: MilestoneStatus::Pending,
                owner_id: p.user_id(),
            };
            let key = project.work_counter();
            let last = self.crm.storage.counter(p.tenant_id(), &key).await?;
            let mut tx = self.crm.tx(p);
            tx.counter(key, last, last + 1);
            tx.check(&project);
            tx.insert(&milestone)?;
            tx.commit().await?;
            Ok(milestone)
        })
        .await
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
