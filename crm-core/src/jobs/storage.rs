//! [`StorageJobQueue`]: jobs as `job` records of the CRM's own storage, under
//! [`SYSTEM_TENANT`]. Every change of a job is a versioned update, so of two workers
//! reserving one job only one commit wins; the other moves on to the next candidate.
//! Time is the CRM's [`Clock`]: a delay, a backoff or a visibility timeout ends when
//! the clock says so.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    DeadLetter, Failed, Job, JobQueue, NewJob, QueueDepth, Reservation, RetryPolicy, SYSTEM_TENANT, ack_each,
    check_ack_many, check_new_jobs, check_queue, check_reserve, check_reserve_many, error_text, expired_error,
    jitter_random,
};
use crate::{
    authz::Resource,
    clock::Clock,
    entity::{Entity, entity_meta, from_stored, to_record},
    error::{CrmError, Result},
    fields::indexed_fields,
    id::Meta,
    storage::{
        AggregateQuery, EntityKind, FieldValue, Filter, GroupKey, ListQuery, Sort, Storage, StorageError, WriteBatch,
        WriteOp,
    },
};

/// Candidates read per reservation round: enough that racing reservers find one of
/// them still free.
const CANDIDATES: usize = 16;

/// Where a stored job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting until `due_at`.
    Ready,
    /// Held by a worker until `due_at`.
    Reserved,
    /// Out of attempts since `due_at`.
    Dead,
}

impl JobState {
    /// Every state.
    pub const ALL: &'static [Self] = &[Self::Ready, Self::Reserved, Self::Dead];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Reserved => "reserved",
            Self::Dead => "dead",
        }
    }
}

/// A job as a `job` record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Common metadata; `created_at` is when the job was enqueued.
    pub meta: Meta,
    /// The queue's name.
    pub queue: String,
    /// Ready, reserved or dead.
    pub state: JobState,
    /// Ready: when it is due; reserved: when the reservation expires; dead: when it died.
    pub due_at: DateTime<Utc>,
    /// The payload as JSON text (kept as text, so any JSON value is stored as given).
    pub payload: String,
    /// Reservations so far.
    pub attempts: u32,
    /// Its retry schedule.
    pub retry: RetryPolicy,
    /// The current reservation's token.
    pub token: Option<Uuid>,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
}

impl Entity for JobRecord {
    const KIND: EntityKind = EntityKind::Job;
    // Never read through a service: only the queue touches these records.
    const RESOURCE: Resource = Resource::Users;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        queue: Text [] = |e| e.queue.as_str(),
        state: Text [] = |e| e.state.as_str(),
        due_at: Timestamp [] = |e| e.due_at,
    }
}

impl JobRecord {
    fn job(&self) -> Result<Job> {
        let payload = serde_json::from_str(&self.payload)
            .map_err(|e| CrmError::Internal(format!("job {}: payload: {e}", self.meta.id)))?;
        Ok(Job {
            id: self.meta.id,
            queue: self.queue.clone(),
            payload,
            attempts: self.attempts,
            retry: self.retry,
            enqueued_at: self.meta.created_at,
            last_error: self.last_error.clone(),
        })
    }

    /// The next version of this ready (or expired) job: reserved by a fresh token.
    fn reserved_until(&self, now: DateTime<Utc>, visibility: Duration) -> Self {
        self.next(now, |r| {
            r.state = JobState::Reserved;
            r.due_at = after(now, visibility);
            r.token = Some(Uuid::new_v4());
            r.attempts += 1;
        })
    }

    /// The reservation this reserved job's record stands for.
    fn reservation(&self) -> Result<Reservation> {
        let token =
            self.token.ok_or_else(|| CrmError::Internal(format!("job {}: reserved without token", self.meta.id)))?;
        Ok(Reservation { job: self.job()?, token, expires_at: self.due_at })
    }

    /// Whether `reservation` is this job's current one.
    fn held_by(&self, reservation: &Reservation) -> bool {
        self.state == JobState::Reserved && self.token == Some(reservation.token)
    }

    /// The next version of this record, changed by `change`, at `now`.
    fn next(&self, now: DateTime<Utc>, change: impl FnOnce(&mut Self)) -> Self {
        let mut next = self.clone();
        next.meta.version += 1;
        next.meta.updated_at = now;
        change(&mut next);
        next
    }
}

/// "At or before `now`" for a `Lt` filter: timestamps are kept to the microsecond.
fn up_to(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::microseconds(1)
}

fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

/// Jobs as records of the CRM's storage (see the module docs).
#[derive(Clone)]
pub struct StorageJobQueue {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    /// Taken by each reservation round (list, then commit): reservers of one process
    /// all read the same head of the queue, so unordered they mostly lose their commits
    /// to each other (a batch of 64 almost always did); in turn, each wins. Reservers in
    /// other processes still race, and the versioned commits decide.
    reserving: Arc<futures::lock::Mutex<()>>,
}

impl std::fmt::Debug for StorageJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageJobQueue").field("storage", &self.storage.name()).finish()
    }
}

impl StorageJobQueue {
    /// Jobs kept in `storage`, timed by `clock` (the one the CRM was built with).
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Self {
        Self { storage, clock, reserving: Arc::default() }
    }

    async fn commit(&self, op: WriteOp) -> std::result::Result<(), StorageError> {
        self.storage.commit(SYSTEM_TENANT, WriteBatch { ops: vec![op], ..WriteBatch::default() }).await
    }

    async fn update(&self, expected_version: u64, record: &JobRecord) -> Result<()> {
        Ok(self.commit(WriteOp::Update { record: to_record(record)?, expected_version }).await?)
    }

    /// The job a reservation holds, if the reservation is still the job's.
    async fn reserved(&self, reservation: &Reservation) -> Result<JobRecord> {
        let id = reservation.job.id;
        let stale = CrmError::Conflict { kind: EntityKind::Job, id };
        let Some(stored) = self.storage.get(SYSTEM_TENANT, EntityKind::Job, id).await? else {
            return Err(stale);
        };
        let record: JobRecord = from_stored(stored)?;
        if !record.held_by(reservation) {
            return Err(stale);
        }
        Ok(record)
    }

    /// Up to `limit` jobs of `queue` due at `now` (ready, or reserved and expired),
    /// earliest due first.
    async fn due(&self, queue: &str, now: DateTime<Utc>, limit: usize) -> Result<Vec<JobRecord>> {
        let states = [JobState::Ready, JobState::Reserved].map(|s| FieldValue::from(s.as_str()));
        let query = ListQuery {
            filters: vec![
                Filter::eq("queue", queue),
                Filter::one_of("state", states),
                Filter::lt("due_at", up_to(now)),
            ],
            sort: Sort { field: Some("due_at"), descending: false },
            limit,
            ..ListQuery::default()
        };
        let page = self.storage.list(SYSTEM_TENANT, EntityKind::Job, &query).await?;
        page.items.into_iter().map(from_stored).collect()
    }

    /// Reserves all of `candidates` in one commit; `None` when a racing reserver took
    /// one of them first (so nothing was reserved).
    async fn take_all(
        &self,
        candidates: &[JobRecord],
        now: DateTime<Utc>,
        visibility: Duration,
    ) -> Result<Option<Vec<Reservation>>> {
        let taken: Vec<JobRecord> = candidates.iter().map(|c| c.reserved_until(now, visibility)).collect();
        let ops = candidates
            .iter()
            .zip(&taken)
            .map(|(c, t)| Ok(WriteOp::Update { record: to_record(t)?, expected_version: c.meta.version }))
            .collect::<Result<Vec<_>>>()?;
        match self.storage.commit(SYSTEM_TENANT, WriteBatch { ops, ..WriteBatch::default() }).await {
            Ok(()) => Ok(Some(taken.iter().map(JobRecord::reservation).collect::<Result<_>>()?)),
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Dead-letters a candidate whose expired reservation was its last attempt; losing
    /// the race for it to another reserver (who dead-letters it too) is no error.
    async fn bury(&self, candidate: &JobRecord, now: DateTime<Utc>) -> Result<()> {
        let dead = candidate.next(now, |r| {
            r.state = JobState::Dead;
            r.due_at = now;
            r.token = None;
            r.last_error = Some(expired_error(r.attempts));
        });
        match self.update(candidate.meta.version, &dead).await {
            Ok(()) | Err(CrmError::Conflict { .. } | CrmError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tries to take one of `candidates`, the first first; `None` when others took them
    /// all first (or they were dead-lettered). After a lost race the rest are tried from
    /// a random one on, so racing reservers spread over the candidates instead of all
    /// losing the same next one.
    async fn take_one(
        &self,
        mut candidates: Vec<JobRecord>,
        now: DateTime<Utc>,
        visibility: Duration,
    ) -> Result<Option<Reservation>> {
        let mut lost = false;
        while !candidates.is_empty() {
            let candidate = if lost {
                candidates.swap_remove((jitter_random() * candidates.len() as f64) as usize % candidates.len())
            } else {
                candidates.remove(0)
            };
            if candidate.retry.used_up(candidate.attempts) {
                self.bury(&candidate, now).await?;
                continue;
            }
            let taken = candidate.reserved_until(now, visibility);
            match self.update(candidate.meta.version, &taken).await {
                Ok(()) => return Ok(Some(taken.reservation()?)),
                Err(CrmError::Conflict { .. } | CrmError::NotFound { .. }) => lost = true,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl JobQueue for StorageJobQueue {
    fn name(&self) -> &str {
        "storage"
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Uuid>> {
        let payloads = check_new_jobs(&jobs)?;
        let now = self.clock.now();
        let mut ops = Vec::with_capacity(jobs.len());
        let mut ids = Vec::with_capacity(jobs.len());
        for (job, payload) in jobs.into_iter().zip(payloads) {
            let record = JobRecord {
                meta: Meta::new(SYSTEM_TENANT, now),
                queue: job.queue,
                state: JobState::Ready,
                due_at: after(now, job.delay),
                payload,
                attempts: 0,
                retry: job.retry,
                token: None,
                last_error: None,
            };
            ids.push(record.meta.id);
            ops.push(WriteOp::Insert(to_record(&record)?));
        }
        if !ops.is_empty() {
            self.storage.commit(SYSTEM_TENANT, WriteBatch { ops, ..WriteBatch::default() }).await?;
        }
        Ok(ids)
    }

    async fn reserve(&self, queue: &str, visibility: Duration) -> Result<Option<Reservation>> {
        check_reserve(queue, visibility)?;
        // Each round that finds candidates but wins none lost them to reservers that won:
        // the rounds end when the queue has no due job left or this one wins.
        loop {
            let _turn = self.reserving.lock().await;
            let now = self.clock.now();
            let candidates = self.due(queue, now, CANDIDATES).await?;
            if candidates.is_empty() {
                return Ok(None);
            }
            if let Some(reservation) = self.take_one(candidates, now, visibility).await? {
                return Ok(Some(reservation));
            }
        }
    }

    async fn reserve_many(&self, queue: &str, visibility: Duration, max: usize) -> Result<Vec<Reservation>> {
        check_reserve_many(queue, visibility, max)?;
        loop {
            let _turn = self.reserving.lock().await;
            let now = self.clock.now();
            let due = self.due(queue, now, max).await?;
            if due.is_empty() {
                return Ok(Vec::new());
            }
            let mut fresh = Vec::with_capacity(due.len());
            for candidate in due {
                if candidate.retry.used_up(candidate.attempts) {
                    self.bury(&candidate, now).await?;
                } else {
                    fresh.push(candidate);
                }
            }
            if fresh.is_empty() {
                continue;
            }
            if let Some(all) = self.take_all(&fresh, now, visibility).await? {
                return Ok(all);
            }
            // A racing reserver took one of them: take what is left one at a time.
            if let Some(one) = self.take_one(fresh, now, visibility).await? {
                return Ok(vec![one]);
            }
        }
    }

    async fn ack_many(&self, reservations: &[Reservation]) -> Result<Vec<Result<()>>> {
        check_ack_many(reservations)?;
        let ids: Vec<Uuid> = reservations.iter().map(|r| r.job.id).collect();
        let stored = self.storage.get_many(SYSTEM_TENANT, EntityKind::Job, &ids).await?;
        let records: HashMap<Uuid, JobRecord> =
            stored.into_iter().map(|s| from_stored(s).map(|r: JobRecord| (r.meta.id, r))).collect::<Result<_>>()?;
        let (mut outcomes, mut ops, mut acked) = (Vec::new(), Vec::new(), HashSet::new());
        for reservation in reservations {
            let id = reservation.job.id;
            match records.get(&id) {
                Some(record) if record.held_by(reservation) && acked.insert(id) => {
                    ops.push(WriteOp::Delete { kind: EntityKind::Job, id, expected_version: record.meta.version });
                    outcomes.push(Ok(()));
                }
                _ => outcomes.push(Err(CrmError::Conflict { kind: EntityKind::Job, id })),
            }
        }
        if ops.is_empty() {
            return Ok(outcomes);
        }
        match self.storage.commit(SYSTEM_TENANT, WriteBatch { ops, ..WriteBatch::default() }).await {
            Ok(()) => Ok(outcomes),
            // One of them was reserved again since it was read: settle each on its own.
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => ack_each(self, reservations).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn ack(&self, reservation: &Reservation) -> Result<()> {
        let record = self.reserved(reservation).await?;
        let op = WriteOp::Delete { kind: EntityKind::Job, id: record.meta.id, expected_version: record.meta.version };
        Ok(self.commit(op).await?)
    }

    async fn fail(&self, reservation: &Reservation, error: &str) -> Result<Failed> {
        let record = self.reserved(reservation).await?;
        let now = self.clock.now();
        let failed = record.retry.after_failure(record.attempts, now, jitter_random());
        let next = record.next(now, |r| {
            r.token = None;
            r.last_error = Some(error_text(error));
            (r.state, r.due_at) = match failed {
                Failed::RetryAt(at) => (JobState::Ready, at),
                Failed::DeadLettered => (JobState::Dead, now),
            };
        });
        self.update(record.meta.version, &next).await?;
        Ok(failed)
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        check_queue(queue)?;
        let query = ListQuery {
            filters: vec![Filter::eq("queue", queue), Filter::eq("state", JobState::Dead.as_str())],
            sort: Sort { field: Some("due_at"), descending: false },
            limit,
            ..ListQuery::default()
        };
        let page = self.storage.list(SYSTEM_TENANT, EntityKind::Job, &query).await?;
        page.items
            .into_iter()
            .map(|stored| {
                let record: JobRecord = from_stored(stored)?;
                Ok(DeadLetter { job: record.job()?, failed_at: record.due_at })
            })
            .collect()
    }

    async fn requeue(&self, queue: &str, id: Uuid) -> Result<()> {
        check_queue(queue)?;
        let missing = CrmError::NotFound { kind: EntityKind::Job, id };
        let Some(stored) = self.storage.get(SYSTEM_TENANT, EntityKind::Job, id).await? else {
            return Err(missing);
        };
        let record: JobRecord = from_stored(stored)?;
        if record.state != JobState::Dead || record.queue != queue {
            return Err(missing);
        }
        let now = self.clock.now();
        let next = record.next(now, |r| {
            r.state = JobState::Ready;
            r.due_at = now;
            r.attempts = 0;
        });
        self.update(record.meta.version, &next).await
    }
    async fn depth(&self, queue: &str) -> Result<QueueDepth> {
        check_queue(queue)?;
        let now = self.clock.now();
        let by_state = AggregateQuery {
            filters: vec![Filter::eq("queue", queue)],
            group_by: vec![GroupKey::Field("state")],
            ..AggregateQuery::default()
        };
        let due = AggregateQuery {
            filters: vec![
                Filter::eq("queue", queue),
                Filter::eq("state", JobState::Ready.as_str()),
                Filter::lt("due_at", up_to(now)),
            ],
            ..AggregateQuery::default()
        };
        let (states, due) = futures::future::try_join(
            self.storage.aggregate(SYSTEM_TENANT, EntityKind::Job, &by_state),
            self.storage.aggregate(SYSTEM_TENANT, EntityKind::Job, &due),
        )
        .await?;
        let count = |state: JobState| {
            let key = FieldValue::from(state.as_str());
            states.iter().find(|row| row.key.first() == Some(&key)).map_or(0, |row| row.count)
        };
        // The two reads are not one snapshot: a job due between them is not counted twice.
        let due = due.first().map_or(0, |row| row.count).min(count(JobState::Ready));
        Ok(QueueDepth {
            due,
            delayed: count(JobState::Ready) - due,
            reserved: count(JobState::Reserved),
            dead: count(JobState::Dead),
        })
    }
}
