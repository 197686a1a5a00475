//! The report worker: computes the report runs users requested ([`REPORTS_QUEUE`]),
//! as their requesters, through the core.

use std::time::Duration;

use crm_core::{Crm, Result, reports::runs::REPORTS_QUEUE};

use crate::queue;

/// How long a reserved run stays with its worker: long reports take time.
pub const REPORT_VISIBILITY: Duration = Duration::from_secs(15 * 60);

/// One server's report worker.
#[derive(Debug, Clone)]
pub struct ReportWorker {
    crm: Crm,
    concurrency: usize,
    idle: Duration,
}

impl ReportWorker {
    /// A worker computing `crm`'s report runs, two at a time.
    pub fn new(crm: Crm) -> Self {
        ReportWorker { crm, concurrency: 2, idle: Duration::from_millis(500) }
    }

    /// Computes up to a batch of requested runs; says how many jobs it took.
    pub async fn pass(&self) -> Result<usize> {
        let runs = self.crm.report_runs();
        queue::pass(self.crm.jobs().as_ref(), REPORTS_QUEUE, REPORT_VISIBILITY, self.concurrency, |r| async move {
            runs.run_job(&r.job).await
        })
        .await
    }

    /// Works until the task is aborted.
    pub async fn run(self) {
        queue::keep_working("the report worker", self.idle, || self.pass()).await;
    }
}
