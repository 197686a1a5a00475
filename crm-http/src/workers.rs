//! THE place crm-server starts its background workers: the scheduler (the core's
//! scheduled jobs, [`crm_core::schedule`]), the outbox relay with its reactions
//! (webhook deliveries and emails), and the workers that send webhooks and emails
//! ([`crm_jobs`]).
//!
//! `crm-server` runs them beside the API unless `--no-workers`; `crm-server worker`
//! runs them alone. Each server takes part under its own lease holder name, so several
//! of them on one storage still run each job once per period.

use std::{sync::Arc, time::Duration};

use crm_core::{
    Crm, TenantId,
    emails::EmailReaction,
    jobs::Reaction,
    leases::Leases,
    schedule::{Schedule, Scheduler},
    webhooks::attempts::WebhookReaction,
};
use crm_jobs::{AttemptWorker, DeliveryOptions, EmailWorker, Mailer, Relay, ReportWorker, WebhookClient};
use tokio::task::JoinHandle;

/// The longest a due job waits for a tick.
const MAX_TICK: Duration = Duration::from_secs(10);

/// How the workers reach the outside world.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Where webhooks may be sent.
    pub webhooks: DeliveryOptions,
    /// Where emails go.
    pub mailer: Mailer,
}

/// The running workers; [`Workers::stop`] ends them.
#[derive(Debug)]
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
    relay: Arc<Relay>,
}

impl Workers {
    /// Starts every worker on the current runtime: the scheduler (for `tenant`), the
    /// outbox relay (webhook deliveries and emails), and the webhook, email and report
    /// workers.
    pub fn start(
        crm: Crm,
        leases: Arc<dyn Leases>,
        schedule: Schedule,
        tenant: TenantId,
        outbound: Outbound,
    ) -> Result<Self, crm_jobs::DeliveryFailure> {
        let holder = format!("crm-server:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let reactions: Vec<Arc<dyn Reaction>> =
            vec![Arc::new(WebhookReaction::new(crm.clone())), Arc::new(EmailReaction::new(crm.clone()))];
        let relay = Arc::new(Relay::new(crm.storage().clone(), leases.clone(), holder.clone(), reactions));
        let scheduler = Scheduler::new(crm.clone(), leases, holder, schedule, vec![tenant]);
        let webhooks = AttemptWorker::new(crm.clone(), WebhookClient::new(outbound.webhooks)?);
        let emails = EmailWorker::new(crm.jobs().clone(), outbound.mailer);
        let reports = ReportWorker::new(crm.clone());
        let relaying = relay.clone();
        let tasks = vec![
            tokio::spawn(run_scheduler(scheduler)),
            tokio::spawn(async move { relaying.run().await }),
            tokio::spawn(webhooks.run()),
            tokio::spawn(emails.run()),
            tokio::spawn(reports.run()),
        ];
        Ok(Self { tasks, relay })
    }

    /// Stops every worker where it waits (a job that is running is cut short: jobs
    /// run again, and scheduled jobs next period), then gives up the relay's lease so
    /// another server relays at once.
    pub async fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
        if let Err(e) = self.relay.release().await {
            tracing::warn!(error = %e, "could not release the outbox relay's lease; it expires by itself");
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
