//! The job-queue contract: background work (webhook deliveries, emails, report runs,
//! the outbox relay's jobs) handed from whoever decides it to whichever worker runs it,
//! at least once. [`JobQueue`] is the contract, [`RetryPolicy`] the one backoff rule,
//! [`StorageJobQueue`] the default implementation on the CRM's own storage (so one
//! server on sled needs no Redis); crm-cache-redis has one on Redis Streams. Every
//! implementation runs `job_queue_suite!`.
//!
//! The life of a job: enqueued (due at once or after a delay) → reserved by one worker
//! for a visibility timeout, with a fresh token → acked (gone), or failed (due again
//! after the policy's backoff, or dead-lettered once its attempts are used up), or not
//! settled in time (a crashed worker): due again, and the next reservation gets a new
//! token. A settle call with a token that is no longer the job's is refused with
//! [`CrmError::Conflict`], so a stale worker never acks or fails another's run. A job
//! whose workers keep dying before they settle it (a poison job that crashes them) is
//! dead-lettered too: a reservation that would hand out a job that already used its
//! `max_attempts` dead-letters it instead, with [`expired_error`] as its last error, and
//! moves on. Dead letters stay until requeued.
//!
//! Jobs are infrastructure of every tenant (one relay serves them all): they live outside
//! any tenant's data, under [`SYSTEM_TENANT`] on the storage; a job that concerns a
//! tenant names it in its payload.

mod storage;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::storage::{JobRecord, JobState, StorageJobQueue};
use crate::{
    error::{CrmError, Result, Validator},
    id::TenantId,
};

/// The tenant id jobs are stored under: the nil UUID, which no tenant has (tenant ids
/// are UUID v7), so no tenant's listing or purge ever meets a job.
pub const SYSTEM_TENANT: TenantId = TenantId(Uuid::nil());

/// The longest queue name, in bytes.
pub const MAX_QUEUE_NAME: usize = 64;

/// The largest payload, as JSON text, in bytes: jobs carry ids and small documents,
/// not files.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The longest error text kept with a failed job, in characters (longer ones are cut).
pub const MAX_ERROR_CHARS: usize = 2000;

/// The most jobs one [`JobQueue::reserve_many`] or [`JobQueue::ack_many`] call takes.
pub const MAX_BATCH: usize = 1000;

/// The longest visibility timeout a reservation may ask for.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(24 * 3600);

/// When a failed job runs again: exponential backoff with jitter, up to a number of
/// attempts. Chosen per job at enqueue (webhooks retry for days, emails for hours) and
/// kept with it.
///
/// The wait after the `n`th failed attempt is `min(cap, base × 2^(n-1))`, shortened by
/// a random part of up to `jitter` of itself (so retries of many jobs that failed
/// together spread out instead of arriving together).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; the job is dead-lettered when the last fails.
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub cap: Duration,
    /// The fraction (0 to 1) of each wait that is random.
    pub jitter: f64,
}

/// What a failed attempt leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// The job is due again at this instant.
    RetryAt(DateTime<Utc>),
    /// The job used its last attempt and is a dead letter now.
    DeadLettered,
}

impl RetryPolicy {
    /// Webhook deliveries: 17 attempts over about three days (30 s, 1 min, 2 min, …
    /// doubling to 12 h, then every 12 h), as receivers expect of Standard Webhooks.
    pub const WEBHOOKS: Self =
        Self { max_attempts: 17, base: Duration::from_secs(30), cap: Duration::from_secs(12 * 3600), jitter: 0.2 };
    /// Emails: 8 attempts over about two hours (1 min doubling to 1 h).
    pub const EMAILS: Self =
        Self { max_attempts: 8, base: Duration::from_secs(60), cap: Duration::from_secs(3600), jitter: 0.2 };
    /// Anything else: 5 attempts within half a minute (1 s doubling).
    pub const DEFAULT: Self =
        Self { max_attempts: 5, base: Duration::from_secs(1), cap: Duration::from_secs(300), jitter: 0.2 };

    /// The wait after `failed_attempts` failures (1 for the first), given `random`, a
    /// number in `[0, 1)` (0 waits longest).
    pub fn backoff(&self, failed_attempts: u32, random: f64) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(64) as i32;
        let exponential = self.base.as_secs_f64() * 2f64.powi(doublings);
        let full = Duration::try_from_secs_f64(exponential).map_or(self.cap, |d| d.min(self.cap));
        let shortened = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(1.0 - shortened)
    }

    /// What the failure of attempt number `attempts` (1 for the first) at `now` leads
    /// to, given `random` in `[0, 1)` for the jitter.
    pub fn after_failure(&self, attempts: u32, now: DateTime<Utc>, random: f64) -> Failed {
        if self.used_up(attempts) {
            return Failed::DeadLettered;
        }
        let wait = chrono::Duration::from_std(self.backoff(attempts, random)).unwrap_or(chrono::Duration::MAX);
        Failed::RetryAt(now.checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC))
    }

    /// Whether a job that made `attempts` attempts has none left: its failure
    /// dead-letters it, and so does a reservation that finds its last one expired.
    pub fn used_up(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }

    /// The longest time from the first failure to the dead letter (every wait without
    /// jitter): how long a receiver may be down before its job is given up.
    pub fn longest_schedule(&self) -> Duration {
        (1..self.max_attempts).map(|n| self.backoff(n, 0.0)).sum()
    }

    fn validate(&self, prefix: &str, v: &mut Validator) {
        v.check((1..=100).contains(&self.max_attempts), format!("{prefix}max_attempts"), "must be between 1 and 100");
        v.check(!self.base.is_zero(), format!("{prefix}base"), "must be longer than zero");
        v.check(self.cap >= self.base, format!("{prefix}cap"), "must not be shorter than base");
        v.check(self.cap <= Duration::from_secs(7 * 24 * 3600), format!("{prefix}cap"), "must be at most 7 days");
        v.check((0.0..=1.0).contains(&self.jitter), format!("{prefix}jitter"), "must be between 0 and 1");
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A random number in `[0, 1)` for the jitter. Without randomness the middle serves:
/// the jitter only spreads retries, it secures nothing.
pub fn jitter_random() -> f64 {
    let bits = getrandom::u64().unwrap_or(u64::MAX / 2);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A job to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The queue's name: 1 to [`MAX_QUEUE_NAME`] bytes of `a-z`, `0-9`, `.`, `_`, `-`.
    pub queue: String,
    /// What the worker needs (a tenant id, a record id, an event…).
    pub payload: serde_json::Value,
    /// How long after enqueueing the job becomes due.
    pub delay: Duration,
    /// Its retry schedule.
    pub retry: RetryPolicy,
}

impl NewJob {
    /// A job due at once, with the default retry policy.
    pub fn new(queue: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { queue: queue.into(), payload, delay: Duration::ZERO, retry: RetryPolicy::DEFAULT }
    }

    /// The same job, due `delay` after it is enqueued.
    pub fn delayed(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }

    /// The same job with another retry policy.
    pub fn retry(self, retry: RetryPolicy) -> Self {
        Self { retry, ..self }
    }

    /// Its payload as JSON text, or the bad fields, each named after `prefix`.
    fn validate(&self, prefix: &str, v: &mut Validator) -> Option<String> {
        check_queue_name(&format!("{prefix}queue"), &self.queue, v);
        v.check(self.delay <= Duration::from_secs(366 * 24 * 3600), format!("{prefix}delay"), "must be at most a year");
        self.retry.validate(&format!("{prefix}retry."), v);
        let text = serde_json::to_string(&self.payload).ok();
        let fits = text.as_ref().is_some_and(|t| t.len() <= MAX_PAYLOAD_BYTES);
        v.check(fits, format!("{prefix}payload"), format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"));
        text
    }
}

fn check_queue_name(field: &str, queue: &str, v: &mut Validator) {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let ok = !queue.is_empty() && queue.len() <= MAX_QUEUE_NAME && queue.chars().all(allowed);
    v.check(ok, field, format!("must be 1 to {MAX_QUEUE_NAME} characters of a-z, 0-9, '.', '_' and '-'"));
}

/// Checks a batch before anything of it is written, naming bad fields `jobs[i].…`;
/// returns each job's payload as JSON text. Every implementation calls it first.
pub fn check_new_jobs(jobs: &[NewJob]) -> Result<Vec<String>> {
    let mut v = Validator::new();
    let texts: Vec<Option<String>> =
        jobs.iter().enumerate().map(|(i, job)| job.validate(&format!("jobs[{i}]."), &mut v)).collect();
    v.finish()?;
    Ok(texts.into_iter().map(Option::unwrap_or_default).collect())
}

/// Checks the arguments of a reservation; every implementation calls it first.
pub fn check_reserve(queue: &str, visibility: Duration) -> Result<()> {
    let mut v = Validator::new();
    check_reservation(queue, visibility, &mut v);
    v.finish()
}

/// Checks the arguments of [`JobQueue::reserve_many`]; every implementation calls it first.
pub fn check_reserve_many(queue: &str, visibility: Duration, max: usize) -> Result<()> {
    let mut v = Validator::new();
    check_reservation(queue, visibility, &mut v);
    v.check((1..=MAX_BATCH).contains(&max), "max", format!("must be between 1 and {MAX_BATCH}"));
    v.finish()
}

/// Checks the size of an [`JobQueue::ack_many`] batch; every implementation calls it first.
pub fn check_ack_many(reservations: &[Reservation]) -> Result<()> {
    let mut v = Validator::new();
    v.check(reservations.len() <= MAX_BATCH, "reservations", format!("must be at most {MAX_BATCH}"));
    v.finish()
}

fn check_reservation(queue: &str, visibility: Duration, v: &mut Validator) {
    check_queue_name("queue", queue, v);
    let ok = visibility >= Duration::from_millis(1) && visibility <= MAX_VISIBILITY;
    v.check(ok, "visibility", "must be between 1 ms and 24 hours");
}

/// Checks a queue name given alone (dead letters, requeue).
pub fn check_queue(queue: &str) -> Result<()> {
    let mut v = Validator::new();
    check_queue_name("queue", queue, &mut v);
    v.finish()
}

/// An error text as kept with a job: at most [`MAX_ERROR_CHARS`] characters, control
/// characters replaced.
pub fn error_text(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The last error of a job dead-lettered because the reservation of its last attempt
/// expired unsettled (its worker died or hung), so no worker ever reported one.
pub fn expired_error(attempts: u32) -> String {
    EXPIRED_ERROR.replace("{attempts}", &attempts.to_string())
}

/// [`expired_error`]'s text, `{attempts}` standing for the number (for backends that
/// fill it in where they keep the count, like Redis's scripts).
pub const EXPIRED_ERROR: &str =
    "the reservation of attempt {attempts} (the last) expired unsettled: its worker stopped before ack or fail";

/// A job as a worker sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its id (UUID v7: ids order as jobs were enqueued).
    pub id: Uuid,
    /// Its queue.
    pub queue: String,
    /// What it carries.
    pub payload: serde_json::Value,
    /// Reservations so far, this one included (1 on the first run).
    pub attempts: u32,
    /// Its retry schedule.
    pub retry: RetryPolicy,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// The error its last failed attempt gave, if any.
    pub last_error: Option<String>,
}

/// A job reserved by one worker until `expires_at`; settle it with
/// [`JobQueue::ack`] or [`JobQueue::fail`].
#[derive(Clone, Debug, PartialEq)]
pub struct Reservation {
    /// The job.
    pub job: Job,
    /// This reservation's token: another reservation of the same job gets another.
    pub token: Uuid,
    /// When the job becomes due again if it is not settled.
    pub expires_at: DateTime<Utc>,
}

/// A job that used up its attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The job, with the error of its last attempt.
    pub job: Job,
    /// When its last attempt failed.
    pub failed_at: DateTime<Utc>,
}

/// How many jobs one queue holds, by where they stand: what a queue-depth gauge shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Due and waiting for a worker: the backlog.
    pub due: u64,
    /// Not due yet: delayed at enqueue, or waiting out the backoff after a failure.
    pub delayed: u64,
    /// Held by a worker, including reservations that expired unsettled and that no
    /// worker took again yet.
    pub reserved: u64,
    /// Dead letters, until requeued.
    pub dead: u64,
}

impl QueueDepth {
    /// Each count with its state's name (`due`, `delayed`, `reserved`, `dead`), as a
    /// gauge labels them.
    pub fn by_state(&self) -> [(&'static str, u64); 4] {
        [("due", self.due), ("delayed", self.delayed), ("reserved", self.reserved), ("dead", self.dead)]
    }
}

/// Acks reservations one at a time, as [`JobQueue::ack_many`] says: its default, and
/// what a backend falls back to when its one-round-trip batch lost a race.
pub async fn ack_each<Q: JobQueue + ?Sized>(queue: &Q, reservations: &[Reservation]) -> Result<Vec<Result<()>>> {
    let mut outcomes = Vec::with_capacity(reservations.len());
    for reservation in reservations {
        outcomes.push(match queue.ack(reservation).await {
            Err(stale @ CrmError::Conflict { .. }) => Err(stale),
            Err(e) => return Err(e),
            Ok(()) => Ok(()),
        });
    }
    Ok(outcomes)
}

/// Where background jobs wait for a worker; see the module docs for the life of a job.
/// Implementations keep jobs until acked (at least once: a job may run twice, never
/// zero times) and run `job_queue_suite!`.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// A short name for diagnostics (`storage`, `redis`).
    fn name(&self) -> &str;

    /// Enqueues every job of the batch or none (a bad job refuses the batch, naming
    /// `jobs[i].field`); returns their ids in order.
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Uuid>>;

    /// Enqueues one job; returns its id.
    async fn enqueue(&self, job: NewJob) -> Result<Uuid> {
        let ids = self.enqueue_batch(vec![job]).await?;
        ids.into_iter().next().ok_or_else(|| CrmError::Internal("an enqueued job has no id".into()))
    }

    /// Reserves the next due job of `queue` (the earliest due, then the earliest
    /// enqueued) for `visibility`, or `None` when none is due. A job whose reservation
    /// expired unsettled is due again, unless that was its last attempt: then it is
    /// dead-lettered (last error [`expired_error`]) and the next due job is taken. Two reservers never hold one job at once. The
    /// workers of one queue should ask for one visibility timeout: a backend may judge
    /// whether an earlier reservation expired by the reserving call's timeout (Redis does).
    async fn reserve(&self, queue: &str, visibility: Duration) -> Result<Option<Reservation>>;

    /// Reserves up to `max` (1 to [`MAX_BATCH`]) due jobs of `queue` in one call, in
    /// the order single reservations would take them, each with its own token and as
    /// `reserve` would reserve it (used-up jobs dead-lettered on the way). Empty only
    /// when no job is due; it may return fewer than are due when racing reservers took
    /// some. This default reserves one at a time; backends take a batch in one round trip.
    async fn reserve_many(&self, queue: &str, visibility: Duration, max: usize) -> Result<Vec<Reservation>> {
        check_reserve_many(queue, visibility, max)?;
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(reservation) = self.reserve(queue, visibility).await? else { break };
            taken.push(reservation);
        }
        Ok(taken)
    }

    /// Acks every reservation given (at most [`MAX_BATCH`]); the outcome of each, in
    /// order, is what [`ack`](Self::ack) would say (a stale one is a `Conflict` and keeps
    /// none of the others from being acked). An error of the backend is the call's error.
    /// This default acks one at a time; backends ack a batch in one round trip.
    async fn ack_many(&self, reservations: &[Reservation]) -> Result<Vec<Result<()>>> {
        check_ack_many(reservations)?;
        ack_each(self, reservations).await
    }

    /// Removes the reserved job: it is done. A reservation whose job was reserved again
    /// since (it expired and another worker took it) is [`CrmError::Conflict`]; an
    /// expired one nobody took yet is still accepted.
    async fn ack(&self, reservation: &Reservation) -> Result<()>;

    /// Records that the reserved job failed with `error`: due again after its policy's
    /// backoff, or a dead letter after its last attempt. Stale reservations as for `ack`.
    async fn fail(&self, reservation: &Reservation, error: &str) -> Result<Failed>;

    /// Up to `limit` dead letters of `queue`, those that failed first first.
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Makes a dead letter of `queue` due at once with its attempts counted afresh; a
    /// job that is not a dead letter of that queue is [`CrmError::NotFound`].
    async fn requeue(&self, queue: &str, id: Uuid) -> Result<()>;

    /// How many jobs `queue` holds, by state, "now" being the queue's clock; an unknown
    /// queue holds none. For metrics: the counts are a snapshot, not necessarily taken
    /// at one instant together, and cost up to one pass over the queue's jobs.
    async fn depth(&self, queue: &str) -> Result<QueueDepth>;
}

/// What happens after a commit, for one outbox event: the relay runs every reaction
/// of an event before it acknowledges the event (webhook deliveries to plan, emails to
/// enqueue…). At least once: after a crash between a reaction and the ack, the event
/// is relayed again, so a reaction must be idempotent (or its duplicates harmless).
#[async_trait]
pub trait Reaction: Send + Sync + 'static {
    /// A short name for logs (`webhooks`, `emails`).
    fn name(&self) -> &'static str;

    /// Does what `event` calls for. An error leaves the event unacknowledged, so the
    /// relay tries it again later.
    async fn react(&self, event: &crate::storage::OutboxEvent) -> Result<()>;

    /// Does what each of `events` (in commit order) calls for, in fewer round trips
    /// where it can. On an error the relay reacts to the events one at a time, to find
    /// the one that fails (so what succeeded here runs again: reactions are
    /// idempotent). This default reacts one at a time.
    async fn react_all(&self, events: &[crate::storage::OutboxEvent]) -> Result<()> {
        for event in events {
            self.react(event).await?;
        }
        Ok(())
    }
}
