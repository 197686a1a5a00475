//! [`RedisJobQueue`]: the job queue on Redis Streams, for several server instances and
//! workers sharing one Redis.
//!
//! Keys (after the prefix):
//! - `jobs:<queue>:stream`: the queue's due jobs, one entry (`j` = job id) each, read by
//!   the consumer group `workers` (one consumer per `RedisJobQueue` value);
//! - `jobs:<queue>:delayed`: a sorted set of job ids that are not due yet (delayed or
//!   waiting out a backoff), scored by when they are due, in microseconds of the clock;
//! - `jobs:<queue>:dead`: a sorted set of dead letters, scored by when they died;
//! - `job:<id>`: a hash of the job: `q` queue, `p` payload (JSON), `a` attempts, `r`
//!   retry policy (JSON), `e` enqueued at (µs), `t` the current reservation's token,
//!   `s` its stream entry, `x` the last error, `f` when it died (µs).
//!
//! Every operation is one Lua script, so it is atomic with its checks; `reserve_many` and
//! `ack_many` are one script for the whole batch. A reservation moves the due part of the sorted set into the stream, then takes the oldest entry
//! whose reservation expired (`XAUTOCLAIM`, whose idle time is the reserving call's
//! visibility timeout) or else the next new one (`XREADGROUP`), and gives the job a
//! fresh token; a claimed job that already used its last attempt (its workers kept dying)
//! is dead-lettered instead and the next one taken. Acks and failures check the token first: a worker whose entry was
//! claimed by another has a token that is no longer the job's.
//!
//! Time: due times come from the [`Clock`] (so tests drive delays and backoff with a
//! manual clock); a reservation's expiry is Redis's own idle time of the pending entry,
//! which is why the workers of one queue should all ask for the same visibility
//! timeout: a reserver judges earlier reservations by its own. Each `RedisJobQueue`
//! value is a consumer of the groups it reads; a gone process's consumer stays listed
//! (its pending entries are claimed by others) until `XGROUP DELCONSUMER` removes it.

use std::{sync::Arc, sync::LazyLock, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::{
    Clock, CrmError, Result,
    jobs::{
        DeadLetter, EXPIRED_ERROR, Failed, Job, JobQueue, NewJob, QueueDepth, Reservation, RetryPolicy, check_ack_many,
        check_new_jobs, check_queue, check_reserve, check_reserve_many, error_text, jitter_random,
    },
    storage::EntityKind,
};
use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use crate::crm_error;

/// Enqueues a batch: ARGV[1] key prefix, then per job its id, queue, payload, retry
/// policy, enqueue time and due time (µs; due 0 = at once).
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local prefix = ARGV[1]
for i = 2, #ARGV, 6 do
  local id, queue, due = ARGV[i], ARGV[i + 1], ARGV[i + 5]
  redis.call('HSET', prefix .. 'job:' .. id, 'q', queue, 'p', ARGV[i + 2], 'a', 0, 'r', ARGV[i + 3], 'e', ARGV[i + 4])
  if due == '0' then
    redis.call('XADD', prefix .. 'jobs:' .. queue .. ':stream', '*', 'j', id)
  else
    redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':delayed', due, id)
  end
end
return 1
",
    )
});

/// Reserves up to as many jobs of a queue as tokens are given (KEYS: stream, delayed,
/// dead; ARGV: key prefix, now µs, consumer, visibility ms, [`EXPIRED_ERROR`], then one
/// token per job): per job its token then its fields; none when none is due. Expired
/// reservations come first (oldest first), then new entries; a claimed entry whose job
/// used its last attempt is dead-lettered instead.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stream, delayed, dead = KEYS[1], KEYS[2], KEYS[3]
local prefix, now, consumer, idle, expired = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local slots = #ARGV - 5
for _, id in ipairs(redis.call('ZRANGE', delayed, '-inf', now, 'BYSCORE', 'LIMIT', 0, 100)) do
  redis.call('XADD', stream, '*', 'j', id)
  redis.call('ZREM', delayed, id)
end
local function claim()
  return redis.pcall('XAUTOCLAIM', stream, 'workers', consumer, idle, '0-0', 'COUNT', 1)
end
local claimed = claim()
if claimed.err then
  -- No stream or no group yet: the group starts at the stream's first entry.
  if redis.call('EXISTS', stream) == 0 then return {} end
  redis.call('XGROUP', 'CREATE', stream, 'workers', '0')
  claimed = claim()
end
local entries, entry = {}, claimed[2][1]
while entry do
  local key = prefix .. 'job:' .. entry[2][2]
  local held = redis.call('HMGET', key, 'a', 'r')
  if held[1] and tonumber(held[1]) >= cjson.decode(held[2]).max_attempts then
    -- Its last attempt's reservation expired: a dead letter, not a reservation.
    redis.call('XACK', stream, 'workers', entry[1])
    redis.call('XDEL', stream, entry[1])
    redis.call('HDEL', key, 't', 's')
    redis.call('HSET', key, 'x', (string.gsub(expired, '{attempts}', held[1])), 'f', now)
    redis.call('ZADD', dead, now, entry[2][2])
  else
    table.insert(entries, entry)
    if #entries == slots then break end
  end
  entry = claim()[2][1]
end
if #entries < slots then
  local read = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', slots - #entries, 'STREAMS', stream, '>')
  if read then
    for _, e in ipairs(read[1][2]) do table.insert(entries, e) end
  end
end
local out = {}
for i, e in ipairs(entries) do
  local id = e[2][2]
  local key = prefix .. 'job:' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('XACK', stream, 'workers', e[1])
    redis.call('XDEL', stream, e[1])
  else
    redis.call('HINCRBY', key, 'a', 1)
    redis.call('HSET', key, 't', ARGV[5 + i], 's', e[1])
    local job = redis.call('HMGET', key, 'q', 'p', 'a', 'r', 'e', 'x')
    table.insert(job, 1, id)
    table.insert(job, 1, ARGV[5 + i])
    table.insert(out, job)
  end
end
return out
",
    )
});

/// Acks reservations (ARGV: key prefix, then per reservation its queue, job id and
/// token): per reservation 1 acked, 0 stale.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local prefix, out = ARGV[1], {}
for i = 2, #ARGV, 3 do
  local key = prefix .. 'job:' .. ARGV[i + 1]
  local current = redis.call('HMGET', key, 't', 's')
  if current[1] == ARGV[i + 2] then
    local stream = prefix .. 'jobs:' .. ARGV[i] .. ':stream'
    redis.call('XACK', stream, 'workers', current[2])
    redis.call('XDEL', stream, current[2])
    redis.call('DEL', key)
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
end
return out
",
    )
});

/// Settles a failed reservation (KEYS: stream, delayed, dead; ARGV: job key, token,
/// outcome `retry` | `dead`, score µs, error, job id): 1 done, 0 stale.
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key, token, outcome = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HMGET', key, 't', 's')
if current[1] ~= token then return 0 end
redis.call('XACK', KEYS[1], 'workers', current[2])
redis.call('XDEL', KEYS[1], current[2])
redis.call('HDEL', key, 't', 's')
redis.call('HSET', key, 'x', ARGV[5])
if outcome == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
else
  redis.call('HSET', key, 'f', ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
end
return 1
",
    )
});

/// Up to ARGV[2] dead letters (KEYS[1]: dead set; ARGV[1]: job key prefix), oldest first.
static DEAD_LETTERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local job = redis.call('HMGET', ARGV[1] .. id, 'q', 'p', 'a', 'r', 'e', 'x', 'f')
  table.insert(job, 1, id)
  table.insert(out, job)
end
return out
",
    )
});

/// Requeues a dead letter (KEYS: dead set, stream; ARGV: job key, id): 1 done, 0 not dead.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[1], 'a', 0)
redis.call('HDEL', ARGV[1], 'f')
redis.call('XADD', KEYS[2], '*', 'j', ARGV[2])
return 1
",
    )
});

/// A queue's depth (KEYS: stream, delayed, dead; ARGV: now µs): due (stream entries not
/// delivered, and delayed jobs whose time came), delayed, reserved (the group's pending
/// entries), dead.
static DEPTH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stream, delayed, dead, now = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local pending = 0
local summary = redis.pcall('XPENDING', stream, 'workers')
-- No stream or no group yet: nothing was ever reserved.
if not summary.err then pending = summary[1] end
local ripe = redis.call('ZCOUNT', delayed, '-inf', now)
local waiting = redis.call('ZCARD', delayed) - ripe
return {redis.call('XLEN', stream) - pending + ripe, waiting, pending, redis.call('ZCARD', dead)}
",
    )
});

/// The job queue on Redis Streams (see the module docs). Cheap to clone; clones share
/// the connection and the consumer name.
#[derive(Clone)]
pub struct RedisJobQueue {
    connection: ConnectionManager,
    prefix: String,
    clock: Arc<dyn Clock>,
    consumer: String,
}

impl std::fmt::Debug for RedisJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobQueue").field("prefix", &self.prefix).field("consumer", &self.consumer).finish()
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(field: &str, text: Option<&str>) -> Result<DateTime<Utc>> {
    text.and_then(|t| t.parse().ok())
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| CrmError::Internal(format!("a job stored in Redis: bad `{field}`")))
}

/// A job from a script's reply: id, queue, payload, attempts, retry, enqueued at, error.
fn decode_job(fields: &[Option<String>]) -> Result<Job> {
    let bad = |what: &str| CrmError::Internal(format!("a job stored in Redis: bad {what}"));
    let field = |i: usize| fields.get(i).and_then(Option::as_deref);
    let id: Uuid = field(0).and_then(|t| t.parse().ok()).ok_or_else(|| bad("id"))?;
    let retry: RetryPolicy = field(4).and_then(|t| serde_json::from_str(t).ok()).ok_or_else(|| bad("retry policy"))?;
    Ok(Job {
        id,
        queue: field(1).ok_or_else(|| bad("queue"))?.to_owned(),
        payload: field(2).and_then(|t| serde_json::from_str(t).ok()).ok_or_else(|| bad("payload"))?,
        attempts: field(3).and_then(|t| t.parse().ok()).ok_or_else(|| bad("attempts"))?,
        retry,
        enqueued_at: from_micros("enqueued at", field(5))?,
        last_error: field(6).map(str::to_owned),
    })
}

impl RedisJobQueue {
    /// Jobs under keys starting with `prefix` (e.g. [`crate::DEFAULT_PREFIX`]), due
    /// times read from `clock`. Each value is one consumer of every queue's group.
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        let consumer = format!("consumer-{}", Uuid::now_v7().simple());
        Self { connection, prefix: prefix.into(), clock, consumer }
    }

    fn queue_key(&self, queue: &str, part: &str) -> String {
        format!("{}jobs:{queue}:{part}", self.prefix)
    }

    fn job_key(&self, id: Uuid) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// Runs RESERVE for up to `max` jobs (arguments checked by the caller).
    async fn reserve_batch(&self, queue: &str, visibility: Duration, max: usize) -> Result<Vec<Reservation>> {
        let now = self.clock.now();
        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(self.queue_key(queue, "stream"))
            .key(self.queue_key(queue, "delayed"))
            .key(self.queue_key(queue, "dead"))
            .arg(&self.prefix)
            .arg(micros(now))
            .arg(&self.consumer)
            .arg(u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(EXPIRED_ERROR);
        for _ in 0..max {
            invocation.arg(Uuid::new_v4().to_string());
        }
        let reply: Vec<Vec<Option<String>>> =
            invocation.invoke_async(&mut self.connection.clone()).await.map_err(|e| crm_error(&e))?;
        let expires_at = now + chrono::Duration::from_std(visibility).unwrap_or(chrono::Duration::MAX);
        reply
            .iter()
            .map(|fields| {
                let token = fields.first().and_then(Option::as_deref).and_then(|t| t.parse().ok());
                let token = token.ok_or_else(|| CrmError::Internal("a reservation from Redis: bad token".into()))?;
                Ok(Reservation { job: decode_job(fields.get(1..).unwrap_or_default())?, token, expires_at })
            })
            .collect()
    }

    /// Runs ACK for reservations (their number checked by the caller): a stale one is
    /// a conflict, the others are acked.
    async fn ack_batch(&self, reservations: &[Reservation]) -> Result<Vec<Result<()>>> {
        if reservations.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = ACK.prepare_invoke();
        invocation.arg(&self.prefix);
        for r in reservations {
            invocation.arg(&r.job.queue).arg(r.job.id.to_string()).arg(r.token.to_string());
        }
        let acked: Vec<i64> = invocation.invoke_async(&mut self.connection.clone()).await.map_err(|e| crm_error(&e))?;
        Ok(reservations
            .iter()
            .zip(acked.iter().chain(std::iter::repeat(&0)))
            .map(
                |(r, &done)| {
                    if done == 1 { Ok(()) } else { Err(CrmError::Conflict { kind: EntityKind::Job, id: r.job.id }) }
                },
            )
            .collect())
    }

    /// Runs SETTLE for a reservation; a token that is no longer the job's is a conflict.
    async fn settle(&self, reservation: &Reservation, outcome: &str, score: i64, error: &str) -> Result<()> {
        let job = &reservation.job;
        let done: i64 = SETTLE
            .key(self.queue_key(&job.queue, "stream"))
            .key(self.queue_key(&job.queue, "delayed"))
            .key(self.queue_key(&job.queue, "dead"))
            .arg(self.job_key(job.id))
            .arg(reservation.token.to_string())
            .arg(outcome)
            .arg(score)
            .arg(error)
            .arg(job.id.to_string())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))?;
        if done == 1 { Ok(()) } else { Err(CrmError::Conflict { kind: EntityKind::Job, id: job.id }) }
    }
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    fn name(&self) -> &str {
        "redis"
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Uuid>> {
        let payloads = check_new_jobs(&jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation.arg(&self.prefix);
        let mut ids = Vec::with_capacity(jobs.len());
        for (job, payload) in jobs.iter().zip(payloads) {
            let id = Uuid::now_v7();
            let retry =
                serde_json::to_string(&job.retry).map_err(|e| CrmError::Internal(format!("retry policy: {e}")))?;
            let due = if job.delay.is_zero() {
                0
            } else {
                micros(now + chrono::Duration::from_std(job.delay).unwrap_or(chrono::Duration::MAX))
            };
            invocation.arg(id.to_string()).arg(&job.queue).arg(payload).arg(retry).arg(micros(now)).arg(due);
            ids.push(id);
        }
        let _: i64 = invocation.invoke_async(&mut self.connection.clone()).await.map_err(|e| crm_error(&e))?;
        Ok(ids)
    }

    async fn reserve(&self, queue: &str, visibility: Duration) -> Result<Option<Reservation>> {
        check_reserve(queue, visibility)?;
        Ok(self.reserve_batch(queue, visibility, 1).await?.into_iter().next())
    }

    async fn reserve_many(&self, queue: &str, visibility: Duration, max: usize) -> Result<Vec<Reservation>> {
        check_reserve_many(queue, visibility, max)?;
        self.reserve_batch(queue, visibility, max).await
    }

    async fn ack(&self, reservation: &Reservation) -> Result<()> {
        let outcome = self.ack_batch(std::slice::from_ref(reservation)).await?.into_iter().next();
        outcome.unwrap_or_else(|| Err(CrmError::Internal("Redis acked no reservation".into())))
    }

    async fn ack_many(&self, reservations: &[Reservation]) -> Result<Vec<Result<()>>> {
        check_ack_many(reservations)?;
        self.ack_batch(reservations).await
    }

    async fn fail(&self, reservation: &Reservation, error: &str) -> Result<Failed> {
        let now = self.clock.now();
        let failed = reservation.job.retry.after_failure(reservation.job.attempts, now, jitter_random());
        let (outcome, at) = match failed {
            Failed::RetryAt(at) => ("retry", at),
            Failed::DeadLettered => ("dead", now),
        };
        self.settle(reservation, outcome, micros(at), &error_text(error)).await?;
        Ok(failed)
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        check_queue(queue)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let listed: Vec<Vec<Option<String>>> = DEAD_LETTERS
            .key(self.queue_key(queue, "dead"))
            .arg(format!("{}job:", self.prefix))
            .arg(limit.min(100_000))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))?;
        listed
            .iter()
            .map(|fields| {
                let failed_at = from_micros("failed at", fields.get(7).and_then(Option::as_deref))?;
                Ok(DeadLetter { job: decode_job(fields)?, failed_at })
            })
            .collect()
    }

    async fn requeue(&self, queue: &str, id: Uuid) -> Result<()> {
        check_queue(queue)?;
        let done: i64 = REQUEUE
            .key(self.queue_key(queue, "dead"))
            .key(self.queue_key(queue, "stream"))
            .arg(self.job_key(id))
            .arg(id.to_string())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))?;
        if done == 1 { Ok(()) } else { Err(CrmError::NotFound { kind: EntityKind::Job, id }) }
    }
    async fn depth(&self, queue: &str) -> Result<QueueDepth> {
        check_queue(queue)?;
        let counts: Vec<i64> = DEPTH
            .key(self.queue_key(queue, "stream"))
            .key(self.queue_key(queue, "delayed"))
            .key(self.queue_key(queue, "dead"))
            .arg(micros(self.clock.now()))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))?;
        let count = |i: usize| counts.get(i).map_or(0, |&n| u64::try_from(n).unwrap_or(0));
        Ok(QueueDepth { due: count(0), delayed: count(1), reserved: count(2), dead: count(3) })
    }
}
