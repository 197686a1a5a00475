//! Scheduled jobs: what the CRM does by itself now and then (expire lapsed quotes,
//! tell owners of overdue invoices, purge expired sessions, idempotency keys and report
//! runs), how often ([`Schedule`]), and [`Scheduler::tick`], which runs the jobs that are due.
//!
//! The core decides what is due and does it; the embedder only calls `tick` every few
//! seconds (crm-server's workers do). Several servers may tick against one storage:
//! each job of each tenant runs under a lease (`schedule:<job>:<tenant>`) granted for
//! one period and never renewed, so a new epoch (and one run) comes at most once per
//! period, whoever ticks. A runner that dies mid-period leaves the job to the next
//! period; every job is idempotent.

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
};

use chrono::Duration;

use crate::{
    crm::Crm,
    error::Result,
    id::TenantId,
    idempotency::IDEMPOTENCY_PURGE_BATCH,
    leases::{Grant, Leases},
};

/// The most events, and the most deliveries, one run of [`Job::Prune`] deletes (a
/// backlog goes over several runs).
pub const PRUNE_BATCH: usize = 1000;

/// The most expired report runs one purge deletes (in one write); the rest go next period.
const REPORT_RUN_PURGE_BATCH: usize = 500;

/// A scheduled job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Job {
    /// Sent quotes past `valid_until` become `expired` (`Quotes::expire_lapsed`).
    QuoteExpiry,
    /// Owners of invoices that became overdue are told once (`Invoices::notify_overdue`).
    OverdueInvoices,
    /// Expired sessions, idempotency keys and report runs are deleted.
    Purge,
    /// Relayed outbox events and finished webhook deliveries older than the CRM's
    /// event retention are deleted.
    Prune,
}

impl Job {
    /// Every job, in the order a tick runs them.
    pub const ALL: [Job; 4] = [Job::QuoteExpiry, Job::OverdueInvoices, Job::Purge, Job::Prune];

    /// The job's name in schedules and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Job::QuoteExpiry => "quote-expiry",
            Job::OverdueInvoices => "overdue-invoices",
            Job::Purge => "purge",
            Job::Prune => "prune",
        }
    }

    /// How often it runs unless configured otherwise.
    pub const fn default_period(self) -> Duration {
        match self {
            Job::QuoteExpiry | Job::OverdueInvoices => Duration::hours(1),
            Job::Purge => Duration::minutes(15),
            Job::Prune => Duration::hours(1),
        }
    }

    /// Runs the job once for `tenant`; says how many records it acted on.
    pub async fn run(self, crm: &Crm, tenant: TenantId) -> Result<u64> {
        match self {
            Job::QuoteExpiry => crm.quotes().expire_lapsed(tenant).await,
            Job::OverdueInvoices => crm.invoices().notify_overdue(tenant).await,
            Job::Purge => {
                let sessions = crm.sessions().purge_expired(tenant).await?;
                let runs = crm.report_runs().purge_expired(tenant, REPORT_RUN_PURGE_BATCH).await?;
                Ok(sessions + runs + crm.idempotency().purge_expired(tenant, IDEMPOTENCY_PURGE_BATCH).await?)
            }
            Job::Prune => {
                let before = crm.now() - crm.event_retention;
                // The outbox is shared by every tenant; pruning it from each tenant's run
                // is idempotent, and each run takes one bounded batch.
                let events = crm.storage().outbox_prune(before, PRUNE_BATCH).await?;
                Ok(events as u64 + crm.webhooks().prune_log(tenant, before, PRUNE_BATCH).await?)
            }
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Job {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Job::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Job::ALL.iter().map(|j| j.as_str()).collect();
            format!("unknown job `{s}` (jobs: {})", names.join(", "))
        })
    }
}

/// Which jobs run, and how often: every job at its default period unless changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    periods: Vec<(Job, Duration)>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { periods: Job::ALL.into_iter().map(|j| (j, j.default_period())).collect() }
    }
}

impl Schedule {
    /// The jobs that run, with their periods.
    pub fn periods(&self) -> &[(Job, Duration)] {
        &self.periods
    }

    /// The shortest period (how often a runner should at least tick), if any job runs.
    pub fn shortest(&self) -> Option<Duration> {
        self.periods.iter().map(|(_, p)| *p).min()
    }

    /// Sets `job`'s period; `None` stops it.
    pub fn set(mut self, job: Job, period: Option<Duration>) -> Self {
        self.periods.retain(|(j, _)| *j != job);
        self.periods.extend(period.map(|p| (job, p)));
        self.periods.sort_by_key(|(j, _)| Job::ALL.iter().position(|a| a == j));
        self
    }
}

/// `job=period,…`, as [`Schedule::from_str`] reads it.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> =
            self.periods.iter().map(|(job, period)| format!("{job}={}", show_period(*period))).collect();
        f.write_str(&entries.join(","))
    }
}

/// A period in its largest whole unit (`90m`, `2h`).
fn show_period(period: Duration) -> String {
    let seconds = period.num_seconds();
    let units = [(86_400, 'd'), (3_600, 'h'), (60, 'm')];
    match units.into_iter().find(|(size, _)| seconds % size == 0) {
        Some((size, unit)) => format!("{}{unit}", seconds / size),
        None => format!("{seconds}s"),
    }
}

/// The defaults changed by `job=period,…` (`quote-expiry=1h,purge=15m`; a period is
/// a whole number of `s`, `m`, `h` or `d`, or `off`).
impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        s.split(',').map(str::trim).filter(|e| !e.is_empty()).try_fold(Schedule::default(), |schedule, entry| {
            let (job, period) = entry.split_once('=').ok_or_else(|| format!("`{entry}` is not job=period"))?;
            Ok(schedule.set(job.trim().parse()?, parse_period(period.trim())?))
        })
    }
}

/// `30s`, `15m`, `1h`, `1d` (at least a second), or `off` (`None`).
pub fn parse_period(text: &str) -> std::result::Result<Option<Duration>, String> {
    if text == "off" {
        return Ok(None);
    }
    let bad = || format!("`{text}` is not a period (a whole number of s, m, h or d, like 15m; or off)");
    let unit = text.chars().last().ok_or_else(bad)?;
    let count: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let period = match unit {
        's' => Duration::try_seconds(count),
        'm' => Duration::try_minutes(count),
        'h' => Duration::try_hours(count),
        'd' => Duration::try_days(count),
        _ => None,
    };
    period.filter(|p| *p >= Duration::seconds(1)).map(Some).ok_or_else(bad)
}

/// What one tick did with one due job.
#[derive(Debug)]
pub struct JobRun {
    /// The job.
    pub job: Job,
    /// The tenant it ran for.
    pub tenant: TenantId,
    /// The epoch of the lease it ran under (0: the lease store failed).
    pub epoch: u64,
    /// How many records it acted on, or why it failed (it runs again next period).
    pub outcome: Result<u64>,
}

/// Runs the jobs of a [`Schedule`] for some tenants, each under its lease (see the
/// module docs). One per process; its `holder` must differ from every other runner's.
pub struct Scheduler {
    crm: Crm,
    leases: Arc<dyn Leases>,
    holder: String,
    schedule: Schedule,
    tenants: Vec<TenantId>,
    /// The grant each job last ran under: the job is not due before it expires.
    ran: Mutex<HashMap<(Job, TenantId), Grant>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").field("holder", &self.holder).field("schedule", &self.schedule).finish()
    }
}

impl Scheduler {
    /// A runner named `holder`, running `schedule` for `tenants` under `leases`.
    pub fn new(crm: Crm, leases: Arc<dyn Leases>, holder: String, schedule: Schedule, tenants: Vec<TenantId>) -> Self {
        Self { crm, leases, holder, schedule, tenants, ran: Mutex::default() }
    }

    /// The schedule it runs.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Runs every job that is due and whose lease this runner gets; says what ran. A
    /// lease store that fails skips the job until the next tick.
    pub async fn tick(&self) -> Vec<JobRun> {
        let mut runs = Vec::new();
        for tenant in &self.tenants {
            for (job, period) in self.schedule.periods() {
                let (job, tenant) = (*job, *tenant);
                match self.claim(job, tenant, *period).await {
                    Ok(Some(epoch)) => {
                        runs.push(JobRun { job, tenant, epoch, outcome: job.run(&self.crm, tenant).await })
                    }
                    Ok(None) => {}
                    Err(e) => runs.push(JobRun { job, tenant, epoch: 0, outcome: Err(e) }),
                }
            }
        }
        runs
    }

    /// The epoch under which this runner runs `job` now, if it does: its last grant
    /// has expired (by the CRM's clock) and it got a new one. A grant is released before asking again, so a
    /// lease whose clock runs behind ours is never renewed into a period without a run.
    async fn claim(&self, job: Job, tenant: TenantId, period: Duration) -> Result<Option<u64>> {
        let key = (job, tenant);
        let last = self.ran.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if last.as_ref().is_some_and(|g| g.expires_at > self.crm.now()) {
            return Ok(None);
        }
        let lease = format!("schedule:{job}:{tenant}");
        if last.is_some() {
            self.leases.release(&lease, &self.holder).await?;
        }
        let Some(grant) = self.leases.acquire(&lease, &self.holder, period).await? else {
            return Ok(None);
        };
        let epoch = grant.epoch;
        self.ran.lock().unwrap_or_else(PoisonError::into_inner).insert(key, grant);
        Ok(Some(epoch))
    }
}
