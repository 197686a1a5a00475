//! THE place crm-server starts its background workers: today the scheduler (the core's
//! scheduled jobs, [`crm_core::schedule`]); the outbox relay and the deliveries join
//! here as more tasks of [`Workers::start`].
//!
//! `crm-server` runs them beside the API unless `--no-workers`; `crm-server worker`
//! runs them alone. Each server takes part under its own lease holder name, so several
//! of them on one storage still run each job once per period.

use std::{sync::Arc, time::Duration};

use crm_core::{
    Crm, TenantId,
    leases::Leases,
    schedule::{Schedule, Scheduler},
};
use tokio::task::JoinHandle;

/// The longest a due job waits for a tick.
const MAX_TICK: Duration = Duration::from_secs(10);

/// The running workers; [`Workers::stop`] ends them.
#[derive(Debug)]
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts every worker for `tenant` on the current runtime.
    pub fn start(crm: Crm, leases: Arc<dyn Leases>, schedule: Schedule, tenant: TenantId) -> Self {
        let holder = format!("crm-server:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let scheduler = Scheduler::new(crm, leases, holder, schedule, vec![tenant]);
        Self { tasks: vec![tokio::spawn(run_scheduler(scheduler))] }
    }

    /// Stops every worker where it waits (a job that is running is cut short; jobs are
    /// idempotent and run again next period).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// How often the scheduler ticks: a quarter of the shortest period, at most
/// [`MAX_TICK`], so a due job starts within a quarter of its period.
fn tick_interval(schedule: &Schedule) -> Duration {
    let shortest = schedule.shortest().and_then(|p| p.to_std().ok()).unwrap_or(MAX_TICK);
    (shortest / 4).clamp(Duration::from_millis(100), MAX_TICK)
}

async fn run_scheduler(scheduler: Scheduler) {
    let mut every = tokio::time::interval(tick_interval(scheduler.schedule()));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for run in scheduler.tick().await {
            match run.outcome {
                Ok(acted) => {
                    tracing::info!(job = %run.job, tenant = %run.tenant, epoch = run.epoch, acted, "scheduled job ran");
                }
                Err(e) => {
                    tracing::warn!(job = %run.job, tenant = %run.tenant, epoch = run.epoch, error = %e, "scheduled job failed");
                }
            }
        }
    }
}
