//! Report runs: a report requested now and computed later by a worker, for reports
//! too long for one request. [`ReportRuns::request`] takes the same decision as
//! computing the report at once ([`Reports::check`](super::Reports::check)), stores a
//! [`ReportRun`] and enqueues a job on [`REPORTS_QUEUE`]; [`ReportRuns::run_job`]
//! computes it as the requester, rebuilt from the stored user, so a requester who is
//! gone or lost the right gets a failed run, never a result it may no longer see.
//! Only the requester sees a run, and only until `expires_at` (the CRM's report
//! retention); the scheduled purge deletes expired runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ReportName, ReportParams, csv::to_csv};
use crate::{
    access::users::User,
    authz::{Principal, Resource},
    crm::{Crm, stamp_update},
    entity::{Entity, entity_meta},
    error::{CrmError, Result},
    fields::indexed_fields,
    id::{Id, Meta, TenantId},
    jobs::{Job, NewJob},
    state::{StateMachine, status_enum, text_enum},
    storage::{EntityKind, Filter, WriteBatch},
};

/// The queue report runs wait on.
pub const REPORTS_QUEUE: &str = "reports";

/// The longest error text kept with a failed run.
const ERROR_MAX: usize = 1000;

text_enum! {
    /// How a run's result is written.
    ReportFormat {
        /// The report's JSON, as `GET /reports/{name}` answers it.
        Json = "json",
        /// CSV with a header line.
        Csv = "csv",
    }
}

impl ReportFormat {
    /// The result's media type.
    pub const fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Json => "application/json",
            ReportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

status_enum! {
    /// Where a run stands. `running` may start again: a worker that died mid-run
    /// leaves it running, and the job's next attempt computes it anew.
    RunStatus for ReportRun {
        /// Waiting for a worker.
        Queued = "queued" => [Running, Failed],
        /// A worker is computing it.
        Running = "running" => [Running, Done, Failed],
        /// Computed; the result is kept until `expires_at`.
        Done = "done" => [],
        /// Could not be computed (`error` says why).
        Failed = "failed" => [],
    }
}

/// One requested computation of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReportRun {
    /// Common metadata.
    pub meta: Meta,
    /// The report.
    pub report: ReportName,
    /// Its parameters, validated when requested.
    pub params: ReportParams,
    /// How the result is written.
    pub format: ReportFormat,
    /// Where the run stands.
    pub status: RunStatus,
    /// Who asked; the run is computed with this user's rights at the time it runs.
    pub requested_by: Id<User>,
    /// When the run and its result are deleted (and invisible from then on).
    pub expires_at: DateTime<Utc>,
    /// When it became `done` or `failed`.
    pub finished_at: Option<DateTime<Utc>>,
    /// The result in `format` (JSON or CSV text), once done.
    pub result: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Entity for ReportRun {
    const KIND: EntityKind = EntityKind::ReportRun;
    const RESOURCE: Resource = Resource::Reports;
    const OWNER_FIELD: Option<&'static str> = Some("requested_by");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        requested_by: Uuid [] = |e| e.requested_by,
        status: Text [] = |e| e.status.as_str(),
        expires_at: Timestamp [] = |e| e.expires_at,
    }

    fn owners(&self) -> Vec<Uuid> {
        vec![self.requested_by.uuid()]
    }
}

/// The payload of a job on [`REPORTS_QUEUE`].
#[derive(Debug, Serialize, Deserialize)]
struct RunJob {
    tenant: TenantId,
    run: Uuid,
}

/// The report-runs service.
#[derive(Clone, Copy, Debug)]
pub struct ReportRuns<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The report-runs service.
    pub fn report_runs(&self) -> ReportRuns<'_> {
        ReportRuns { crm: self }
    }
}

impl ReportRuns<'_> {
    /// Requests a run of `report` as `p`: refused as computing it now would be, else
    /// stored `queued` and enqueued on the CRM's job queue. If the queue refuses the
    /// job, the run is marked failed and the queue's error returned.
    pub async fn request(
        &self,
        p: &Principal,
        report: ReportName,
        params: ReportParams,
        format: ReportFormat,
    ) -> Result<ReportRun> {
        self.crm.reports().check(p, report, &params)?;
        let now = self.crm.now();
        let run = ReportRun {
            meta: self.crm.new_meta(p.tenant_id()),
            report,
            params,
            format,
            status: RunStatus::Queued,
            requested_by: Id::from_uuid(p.user_uuid()),
            expires_at: now + self.crm.report_retention,
            finished_at: None,
            result: None,
            error: None,
        };
        let mut tx = self.crm.tx(p);
        tx.insert(&run)?;
        tx.commit().await?;
        let payload = serde_json::to_value(RunJob { tenant: p.tenant_id(), run: run.meta.id })
            .map_err(|e| CrmError::Internal(e.to_string()))?;
        if let Err(e) = self.crm.jobs().enqueue(NewJob::new(REPORTS_QUEUE, payload)).await {
            self.finish(&run, Err(format!("could not be queued: {e}"))).await?;
            return Err(e);
        }
        Ok(run)
    }

    /// A run `p` requested, if it has not expired; anyone else's is `NotFound`.
    pub async fn get(&self, p: &Principal, id: Id<ReportRun>) -> Result<ReportRun> {
        let run: ReportRun = self.crm.read(p, id).await?;
        if run.requested_by.uuid() != p.user_uuid() || run.expires_at <= self.crm.now() {
            return Err(CrmError::NotFound { kind: EntityKind::ReportRun, id: id.uuid() });
        }
        Ok(run)
    }

    /// The result of a done run and its format; a run not done is invalid `status`.
    pub async fn result(&self, p: &Principal, id: Id<ReportRun>) -> Result<(ReportFormat, String)> {
        let run = self.get(p, id).await?;
        match (run.status, run.result) {
            (RunStatus::Done, Some(result)) => Ok((run.format, result)),
            (status, _) => Err(CrmError::invalid("status", format!("the run is {status}, not done: no result"))),
        }
    }

    /// Computes the run a [`REPORTS_QUEUE`] job names (the worker's call). A run that is
    /// done, failed, expired or gone is left as it is. A failure worth retrying (the
    /// storage is unavailable, a write conflicted) is returned for the queue to retry;
    /// any other failure is stored with the run.
    pub async fn run_job(&self, job: &Job) -> Result<()> {
        let RunJob { tenant, run } = serde_json::from_value(job.payload.clone())
            .map_err(|e| CrmError::invalid("payload", format!("is not a report run job: {e}")))?;
        let run: ReportRun = match self.crm.fetch(tenant, Id::from_uuid(run)).await {
            Err(CrmError::NotFound { .. }) => return Ok(()),
            other => other?,
        };
        if matches!(run.status, RunStatus::Done | RunStatus::Failed) || run.expires_at <= self.crm.now() {
            return Ok(());
        }
        let running = self.advance(&run, RunStatus::Running, |_| {}).await?;
        match self.compute(&running).await {
            Err(e) if e.is_retryable() => Err(e),
            outcome => self.finish(&running, outcome.map_err(|e| e.to_string())).await.map(|_| ()),
        }
    }

    /// The run's result, computed as its requester (who must still be an active user
    /// with the right).
    async fn compute(&self, run: &ReportRun) -> Result<String> {
        let requester = match self.crm.users().principal(run.meta.tenant_id, run.requested_by).await {
            Err(CrmError::Unauthenticated) => {
                return Err(CrmError::Forbidden("the requester is no longer an active user".into()));
            }
            other => other?,
        };
        let output = self.crm.reports().compute(&requester, run.report, &run.params).await?;
        match run.format {
            ReportFormat::Json => serde_json::to_string(&output).map_err(|e| CrmError::Internal(e.to_string())),
            ReportFormat::Csv => to_csv(&output),
        }
    }

    /// Stores the outcome: `done` with the result, or `failed` with the error.
    async fn finish(&self, run: &ReportRun, outcome: std::result::Result<String, String>) -> Result<ReportRun> {
        let now = self.crm.now();
        let (status, result, error) = match outcome {
            Ok(result) => (RunStatus::Done, Some(result), None),
            Err(error) => (RunStatus::Failed, None, Some(error.chars().take(ERROR_MAX).collect())),
        };
        self.advance(run, status, |after| {
            after.finished_at = Some(now);
            after.result = result;
            after.error = error;
        })
        .await
    }

    /// Moves `before` to `status` with `change` applied, in one versioned write (a
    /// worker's bookkeeping: not audited).
    async fn advance(
        &self,
        before: &ReportRun,
        status: RunStatus,
        change: impl FnOnce(&mut ReportRun),
    ) -> Result<ReportRun> {
        let mut after = before.clone();
        after.status = before.status.transition(status)?;
        change(&mut after);
        let mut batch = WriteBatch::default();
        batch.ops.push(stamp_update(before, &mut after, self.crm.now())?);
        self.crm.storage.commit(before.meta.tenant_id, batch).await?;
        Ok(after)
    }

    /// Deletes up to `limit` runs of `tenant` that expired; says how many.
    pub async fn purge_expired(&self, tenant: TenantId, limit: usize) -> Result<u64> {
        // Expired at `expires_at` itself, as `get` sees it.
        let expired = Filter::lt("expires_at", self.crm.now() + chrono::Duration::milliseconds(1));
        self.crm.delete_matching(tenant, EntityKind::ReportRun, vec![expired], limit).await
    }
}
