//! A project's progress, computed from its tasks.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::{
    authz::Principal,
    error::Result,
    id::Id,
    storage::{AggregateQuery, EntityKind, Filter, GroupKey},
    work::{
        projects::{Project, Projects},
        tasks::TaskStatus,
    },
};

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
    #[cfg_attr(feature = "schema", schemars(with = "crate::money::DecimalText"))]
    pub percent_done: Decimal,
}

impl Projects<'_> {
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
}
