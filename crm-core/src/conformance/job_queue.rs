//! The [`JobQueue`] conformance cases: what workers (webhook deliveries, emails, report
//! runs, the outbox relay) rely on from any queue (the CRM's storage, Redis…). Each case
//! builds a fresh queue from a factory given a [`ManualClock`], and panics, with a
//! message naming what broke, when the queue misbehaves.
//!
//! Delays and backoff are driven by the manual clock alone: a queue must take "now"
//! from the clock it was built with. A visibility timeout may be a timer of the backend
//! (Redis's idle time of a pending entry cannot follow a manual clock), so the cases
//! that wait one both move the clock and sleep a short real [`VISIBILITY`], and every
//! reservation of such a case asks for that same timeout (a Redis reserver judges
//! earlier reservations by its own timeout). Queue names
//! carry a random part, so queues sharing a server or database do not meet.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, DurationRound, Utc};
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::support::sleep;
use crate::{
    CrmError, ManualClock,
    crm::Clock,
    jobs::{Failed, JobQueue, NewJob, QueueDepth, Reservation, RetryPolicy, expired_error},
};

/// The visibility timeout of the cases that let a reservation expire: short, so the
/// suite stays fast on backends whose timer is real.
pub const VISIBILITY: Duration = Duration::from_millis(300);

/// A visibility timeout no case outlives.
const LONG: Duration = Duration::from_secs(3600);

/// Calls `$callback!($args; case, case, …)` with the list of every job-queue case: the
/// one place they are enumerated.
#[doc(hidden)]
#[macro_export]
macro_rules! __job_queue_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* ;
            due_jobs_come_first_in_first_out,
            delay_is_honoured,
            visibility_timeout_returns_an_unacked_job,
            stale_reservation_cannot_settle,
            late_settle_before_another_reservation_is_accepted,
            backoff_grows_then_dead_letters,
            crashed_attempts_dead_letter,
            batches_reserve_and_ack_many,
            dead_letters_are_listed_and_requeued,
            batch_is_all_or_nothing,
            queues_are_independent,
            concurrent_reservers_never_share_a_job,
            no_job_is_lost,
            payload_roundtrips,
            bad_input_is_refused_naming_the_field,
            depth_counts_jobs_by_state,
        }
    };
}

/// Every job-queue case, by name.
pub const CASES: &[&str] = crate::__job_queue_cases!(__conformance_names!());

/// Expands the job-queue suite for one implementation, like
/// [`session_store_suite!`](crate::session_store_suite) does for session stores:
///
/// ```ignore
/// mod job_queue_suite {
///     crm_core::job_queue_suite!(redis, |clock: Arc<ManualClock>| async move { my_queue(clock).await });
/// }
/// ```
///
/// That is a module named after the implementation with one `#[tokio::test]` per case
/// (a failure names both), and a check that the queue's `name()` is the module's name
/// or its first `_`-separated part (`storage_sled` runs a queue named `storage`). The
/// factory takes the clock the queue must read "now" from and returns a fresh
/// `Arc<dyn JobQueue>`. Wrapping the invocations in a module named `job_queue_suite` is
/// what `scripts/test.sh` counts.
#[macro_export]
macro_rules! job_queue_suite {
    ($implementation:ident, $factory:expr) => {
        mod $implementation {
            #[allow(unused_imports)]
            use super::*;
            $crate::__job_queue_cases!(__job_queue_emit!($implementation, $factory));
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __job_queue_emit {
    ($implementation:ident, $factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (clock, queue) = $crate::conformance::job_queue::build($factory).await;
                ::std::eprintln!(
                    "job-queue case `{}` on implementation `{}` (queue `{}`)",
                    ::std::stringify!($case),
                    ::std::stringify!($implementation),
                    queue.name(),
                );
                $crate::conformance::job_queue::$case(clock, queue).await;
            }
        )*

        /// Checks the factory builds the queue this suite is named after, and prints
        /// how many cases run on it.
        #[::tokio::test]
        async fn suite_runs_on_the_named_implementation() {
            let (_, queue) = $crate::conformance::job_queue::build($factory).await;
            let (module, name) = (::std::stringify!($implementation), queue.name());
            ::std::assert!(
                !name.is_empty() && (module == name || module.strip_prefix(name).is_some_and(|r| r.starts_with('_'))),
                "suite `{module}` runs on a queue named `{name}`",
            );
            ::std::eprintln!(
                "job-queue conformance: {} cases on implementation `{module}`",
                $crate::conformance::job_queue::CASES.len(),
            );
        }
    };
}

type Queue = Arc<dyn JobQueue>;

/// Calls the factory with a fresh manual clock (at a whole millisecond, as a backend
/// that keeps milliseconds would round it): gives a closure its signature.
#[doc(hidden)]
pub async fn build<F, Fut>(make: F) -> (Arc<ManualClock>, Queue)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Queue>,
{
    let start = Utc::now().duration_trunc(chrono::Duration::milliseconds(1)).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    (clock.clone(), make(clock).await)
}

/// A queue name no other case or run uses.
fn queue(name: &str) -> String {
    format!("{name}-{}", Uuid::new_v4().simple())
}

fn advance(clock: &ManualClock, by: Duration) -> DateTime<Utc> {
    let now = clock.now() + chrono::Duration::from_std(by).unwrap();
    clock.set(now);
    now
}

/// Lets a reservation of [`VISIBILITY`] expire, on the clock and in real time.
async fn outlive_visibility(clock: &ManualClock) {
    advance(clock, VISIBILITY * 2);
    sleep(VISIBILITY + Duration::from_millis(150)).await;
}

/// No jitter, so the cases can name the instants.
fn exact(max_attempts: u32, base_secs: u64, cap_secs: u64) -> RetryPolicy {
    RetryPolicy { max_attempts, base: Duration::from_secs(base_secs), cap: Duration::from_secs(cap_secs), jitter: 0.0 }
}

async fn reserve(q: &Queue, name: &str, visibility: Duration) -> Option<Reservation> {
    q.reserve(name, visibility).await.unwrap_or_else(|e| panic!("reserving from `{name}`: {e}"))
}

async fn reserve_some(q: &Queue, name: &str, visibility: Duration, why: &str) -> Reservation {
    reserve(q, name, visibility).await.unwrap_or_else(|| panic!("{why}: no job was reserved from `{name}`"))
}

async fn enqueue(q: &Queue, job: NewJob) -> Uuid {
    q.enqueue(job).await.unwrap_or_else(|e| panic!("enqueueing: {e}"))
}

fn assert_conflict(result: Result<impl std::fmt::Debug, CrmError>, what: &str) {
    assert!(matches!(result, Err(CrmError::Conflict { .. })), "{what}: expected Conflict, got {result:?}");
}

async fn depth(q: &Queue, name: &str) -> QueueDepth {
    q.depth(name).await.unwrap_or_else(|e| panic!("the depth of `{name}`: {e}"))
}

/// Due jobs are reserved earliest due first, then in the order they were enqueued.
pub async fn due_jobs_come_first_in_first_out(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("fifo");
    let late = enqueue(&q, NewJob::new(&name, json!("late")).delayed(Duration::from_secs(10))).await;
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(enqueue(&q, NewJob::new(&name, json!(i))).await);
    }
    advance(&clock, Duration::from_secs(20));
    expected.push(late);
    for (i, id) in expected.iter().enumerate() {
        let got = reserve_some(&q, &name, LONG, "every due job is reserved").await;
        assert_eq!(got.job.id, *id, "reservation {i} should be the job due and enqueued {i}th");
        assert_eq!(got.job.attempts, 1, "a first reservation is attempt 1");
    }
    assert!(reserve(&q, &name, LONG).await.is_none(), "a queue whose jobs are all reserved has nothing due");
}

/// A delayed job is not due a moment before its delay ends, and is at its end.
pub async fn delay_is_honoured(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("delay");
    let id = enqueue(&q, NewJob::new(&name, json!({})).delayed(Duration::from_secs(3600))).await;
    assert!(reserve(&q, &name, LONG).await.is_none(), "a job delayed an hour is not due at once");
    advance(&clock, Duration::from_secs(3599));
    assert!(reserve(&q, &name, LONG).await.is_none(), "a job delayed an hour is not due after 59:59");
    advance(&clock, Duration::from_secs(1));
    let got = reserve_some(&q, &name, LONG, "a delayed job is due when its delay ends").await;
    assert_eq!(got.job.id, id);
}

/// An unsettled reservation keeps its job from others until it expires; then the job
/// is due again, with a new token and its attempts counted.
pub async fn visibility_timeout_returns_an_unacked_job(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("visibility");
    let id = enqueue(&q, NewJob::new(&name, json!({}))).await;
    let first = reserve_some(&q, &name, VISIBILITY, "a due job is reserved").await;
    assert!(reserve(&q, &name, VISIBILITY).await.is_none(), "a reserved job is not handed out twice");
    outlive_visibility(&clock).await;
    let second = reserve_some(&q, &name, VISIBILITY, "an expired reservation's job is due again").await;
    assert_eq!(second.job.id, id);
    assert_eq!(second.job.attempts, 2, "the expired reservation counts as an attempt");
    assert_ne!(second.token, first.token, "each reservation has its own token");
}

/// A worker whose reservation expired and was taken by another can neither ack nor
/// fail the job; the other's ack stands.
pub async fn stale_reservation_cannot_settle(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("stale");
    enqueue(&q, NewJob::new(&name, json!({}))).await;
    let stale = reserve_some(&q, &name, VISIBILITY, "a due job is reserved").await;
    outlive_visibility(&clock).await;
    let current = reserve_some(&q, &name, VISIBILITY, "an expired reservation's job is due again").await;
    assert_conflict(q.ack(&stale).await, "ack of a reservation taken over by another");
    assert_conflict(q.fail(&stale, "late").await, "fail of a reservation taken over by another");
    q.ack(&current).await.unwrap();
    assert_conflict(q.ack(&current).await, "a second ack of an acked job");
    outlive_visibility(&clock).await;
    assert!(reserve(&q, &name, VISIBILITY).await.is_none(), "an acked job never comes back");
    assert!(q.dead_letters(&name, 10).await.unwrap().is_empty(), "the stale fail made no dead letter");
}

/// A reservation that expired while nobody reserved the job since still settles it.
pub async fn late_settle_before_another_reservation_is_accepted(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("late");
    enqueue(&q, NewJob::new(&name, json!(1))).await;
    enqueue(&q, NewJob::new(&name, json!(2)).retry(exact(3, 60, 60))).await;
    let acked = reserve_some(&q, &name, VISIBILITY, "a due job is reserved").await;
    let failed = reserve_some(&q, &name, VISIBILITY, "a due job is reserved").await;
    outlive_visibility(&clock).await;
    q.ack(&acked).await.unwrap_or_else(|e| panic!("a late ack nobody overtook: {e}"));
    let outcome = q.fail(&failed, "late").await.unwrap_or_else(|e| panic!("a late fail nobody overtook: {e}"));
    assert_eq!(outcome, Failed::RetryAt(clock.now() + chrono::Duration::seconds(60)));
    assert!(reserve(&q, &name, LONG).await.is_none(), "the acked job is gone, the failed one waits its backoff");
}

/// Each failure waits longer (base, doubling, capped), then the last attempt's failure
/// dead-letters the job.
pub async fn backoff_grows_then_dead_letters(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("backoff");
    let id = enqueue(&q, NewJob::new(&name, json!({})).retry(exact(3, 10, 15))).await;
    for (attempt, wait) in [(1, 10), (2, 15)] {
        let r = reserve_some(&q, &name, LONG, "the job is due").await;
        assert_eq!((r.job.id, r.job.attempts), (id, attempt));
        let outcome = q.fail(&r, &format!("failure {attempt}")).await.unwrap();
        let at = clock.now() + chrono::Duration::seconds(wait);
        assert_eq!(outcome, Failed::RetryAt(at), "attempt {attempt} fails into a wait of {wait} s");
        advance(&clock, Duration::from_secs(wait as u64 - 1));
        assert!(reserve(&q, &name, LONG).await.is_none(), "a failed job is not due before its backoff ends");
        advance(&clock, Duration::from_secs(1));
    }
    let last = reserve_some(&q, &name, LONG, "the job is due for its last attempt").await;
    assert_eq!(last.job.attempts, 3);
    assert_eq!(last.job.last_error.as_deref(), Some("failure 2"), "a retried job carries its last error");
    assert_eq!(q.fail(&last, "failure 3").await.unwrap(), Failed::DeadLettered);
    advance(&clock, Duration::from_secs(86_400));
    assert!(reserve(&q, &name, LONG).await.is_none(), "a dead letter is never due");
}

/// A poison job whose workers die before settling it (every reservation expires) is
/// dead-lettered once its attempts are used up, with an error saying so, instead of
/// being handed out forever; the reservation that finds it moves on to the next job,
/// and the last dead worker can no longer settle it.
pub async fn crashed_attempts_dead_letter(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("poison");
    let poison = enqueue(&q, NewJob::new(&name, json!("poison")).retry(exact(2, 1, 1))).await;
    let mut last = None;
    for attempt in 1..=2 {
        let r = reserve_some(&q, &name, VISIBILITY, "the poison job has attempts left").await;
        assert_eq!((r.job.id, r.job.attempts), (poison, attempt), "attempt {attempt} of the poison job");
        outlive_visibility(&clock).await;
        last = Some(r);
    }
    let healthy = enqueue(&q, NewJob::new(&name, json!("healthy"))).await;
    let next = reserve_some(&q, &name, VISIBILITY, "the job behind a used-up poison job").await;
    assert_eq!(next.job.id, healthy, "the used-up poison job is not handed out a third time");
    let dead = q.dead_letters(&name, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.job.id).collect::<Vec<_>>(), [poison], "the poison job is a dead letter");
    assert_eq!(dead[0].job.attempts, 2, "both lost attempts are counted");
    assert_eq!(dead[0].job.last_error, Some(expired_error(2)), "the dead letter says its reservations expired");
    assert_conflict(q.ack(&last.unwrap()).await, "ack by the poison job's last, long-dead worker");
    q.ack(&next).await.unwrap();
    outlive_visibility(&clock).await;
    assert!(reserve(&q, &name, VISIBILITY).await.is_none(), "a dead letter is never due");
    q.requeue(&name, poison).await.unwrap();
    let again = reserve_some(&q, &name, VISIBILITY, "a requeued poison job is due").await;
    assert_eq!((again.job.id, again.job.attempts), (poison, 1), "a requeued poison job starts afresh");
}

/// `reserve_many` takes due jobs in the order `reserve` would, each with its own token;
/// `ack_many` acks each (an already acked one is a `Conflict`, the others still go), and
/// acked jobs never come back.
pub async fn batches_reserve_and_ack_many(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("many");
    let jobs: Vec<NewJob> = (0..5).map(|i| NewJob::new(&name, json!(i))).collect();
    let ids = q.enqueue_batch(jobs).await.unwrap();
    let first = q.reserve_many(&name, VISIBILITY, 3).await.unwrap();
    let rest = q.reserve_many(&name, VISIBILITY, 10).await.unwrap();
    let taken: Vec<&Reservation> = first.iter().chain(&rest).collect();
    assert_eq!((first.len(), rest.len()), (3, 2), "at most `max` jobs, all that are due");
    assert_eq!(taken.iter().map(|r| r.job.id).collect::<Vec<_>>(), ids, "in the order they were enqueued");
    assert!(taken.iter().all(|r| r.job.attempts == 1), "each is a first attempt: {taken:?}");
    let tokens: HashSet<Uuid> = taken.iter().map(|r| r.token).collect();
    assert_eq!(tokens.len(), 5, "each reservation has its own token");
    assert!(q.reserve_many(&name, VISIBILITY, 10).await.unwrap().is_empty(), "nothing else is due");

    q.ack(&rest[0]).await.unwrap();
    let batch: Vec<Reservation> = taken.iter().map(|r| (*r).clone()).collect();
    let outcomes = q.ack_many(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 5, "one outcome per reservation");
    for (i, outcome) in outcomes.into_iter().enumerate() {
        if i == 3 {
            assert_conflict(outcome, "ack_many of an already acked job");
        } else {
            outcome.unwrap_or_else(|e| panic!("ack_many of reservation {i}: {e}"));
        }
    }
    outlive_visibility(&clock).await;
    assert!(reserve(&q, &name, VISIBILITY).await.is_none(), "acked jobs never come back");
    assert!(q.ack_many(&[]).await.unwrap().is_empty(), "an empty batch is no error");
    let zero = q.reserve_many(&name, VISIBILITY, 0).await;
    assert!(matches!(&zero, Err(CrmError::Validation(e)) if e.fields[0].field == "max"), "max 0: {zero:?}");
}

/// Dead letters are listed per queue, oldest first, with their last error, and a
/// requeued one is due at once with its attempts counted afresh.
pub async fn dead_letters_are_listed_and_requeued(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("dead");
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(enqueue(&q, NewJob::new(&name, json!({ "n": i })).retry(exact(1, 1, 1))).await);
        let r = reserve_some(&q, &name, LONG, "the job is due").await;
        assert_eq!(q.fail(&r, &format!("boom {i}\u{1}")).await.unwrap(), Failed::DeadLettered);
        advance(&clock, Duration::from_secs(1));
    }
    let dead = q.dead_letters(&name, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.job.id).collect::<Vec<_>>(), ids, "both dead letters, first failed first");
    assert_eq!(dead[0].job.payload, json!({ "n": 0 }));
    assert!(dead[0].job.last_error.as_deref().is_some_and(|e| e.starts_with("boom 0")), "{:?}", dead[0]);
    assert_eq!(dead[0].failed_at, clock.now() - chrono::Duration::seconds(2));
    assert_eq!(q.dead_letters(&name, 1).await.unwrap().len(), 1, "the limit holds");

    q.requeue(&name, ids[0]).await.unwrap();
    let again = reserve_some(&q, &name, LONG, "a requeued job is due at once").await;
    assert_eq!((again.job.id, again.job.attempts), (ids[0], 1), "a requeued job starts its attempts afresh");
    assert_eq!(q.dead_letters(&name, 10).await.unwrap().len(), 1, "a requeued job is no dead letter");
    let not_dead = q.requeue(&name, ids[0]).await;
    assert!(matches!(not_dead, Err(CrmError::NotFound { .. })), "requeue of a reserved job: {not_dead:?}");
    let unknown = q.requeue(&name, Uuid::now_v7()).await;
    assert!(matches!(unknown, Err(CrmError::NotFound { .. })), "requeue of an unknown job: {unknown:?}");
}

/// A batch with one bad job enqueues nothing; a good one enqueues all, ids in order.
pub async fn batch_is_all_or_nothing(_clock: Arc<ManualClock>, q: Queue) {
    let (a, b) = (queue("batch-a"), queue("batch-b"));
    let bad = vec![NewJob::new(&a, json!(1)), NewJob::new(&b, json!(2)), NewJob::new("Not A Queue", json!(3))];
    match q.enqueue_batch(bad).await {
        Err(CrmError::Validation(errors)) => {
            assert!(
                errors.fields.iter().any(|f| f.field == "jobs[2].queue"),
                "the bad job's field is named: {errors:?}"
            )
        }
        other => panic!("a batch with a bad job must be refused, got {other:?}"),
    }
    assert!(reserve(&q, &a, LONG).await.is_none(), "a refused batch enqueued nothing in `a`");
    assert!(reserve(&q, &b, LONG).await.is_none(), "a refused batch enqueued nothing in `b`");
    assert!(q.enqueue_batch(Vec::new()).await.unwrap().is_empty(), "an empty batch is no error");

    let good = vec![NewJob::new(&a, json!(1)), NewJob::new(&b, json!(2)), NewJob::new(&a, json!(3))];
    let ids = q.enqueue_batch(good).await.unwrap();
    assert_eq!(ids.len(), 3);
    let first = reserve_some(&q, &a, LONG, "the batch's first job").await;
    let third = reserve_some(&q, &a, LONG, "the batch's third job").await;
    let second = reserve_some(&q, &b, LONG, "the batch's second job").await;
    assert_eq!([first.job.id, second.job.id, third.job.id], [ids[0], ids[1], ids[2]]);
    assert_eq!([first.job.payload, second.job.payload, third.job.payload], [json!(1), json!(2), json!(3)]);
}

/// Jobs, reservations and dead letters of one queue never show in another.
pub async fn queues_are_independent(_clock: Arc<ManualClock>, q: Queue) {
    let (a, b) = (queue("a"), queue("b"));
    let in_a = enqueue(&q, NewJob::new(&a, json!("a")).retry(exact(1, 1, 1))).await;
    let in_b = enqueue(&q, NewJob::new(&b, json!("b"))).await;
    let got = reserve_some(&q, &a, LONG, "a's job").await;
    assert_eq!(got.job.id, in_a);
    assert!(reserve(&q, &a, LONG).await.is_none(), "b's job is not reserved from a");
    assert_eq!(q.fail(&got, "x").await.unwrap(), Failed::DeadLettered);
    assert!(q.dead_letters(&b, 10).await.unwrap().is_empty(), "a's dead letter is not b's");
    let wrong = q.requeue(&b, in_a).await;
    assert!(matches!(wrong, Err(CrmError::NotFound { .. })), "requeue under another queue: {wrong:?}");
    assert_eq!(reserve_some(&q, &b, LONG, "b's job").await.job.id, in_b);
}

/// Many reservers racing on one queue: each job goes to exactly one of them.
pub async fn concurrent_reservers_never_share_a_job(_clock: Arc<ManualClock>, q: Queue) {
    let name = queue("race");
    let jobs: Vec<NewJob> = (0..40).map(|i| NewJob::new(&name, json!(i))).collect();
    let enqueued: HashSet<Uuid> = q.enqueue_batch(jobs).await.unwrap().into_iter().collect();
    let reservers = (0..8).map(|_| {
        let (q, name) = (q.clone(), name.clone());
        async move {
            let mut got = Vec::new();
            while let Some(r) = reserve(&q, &name, LONG).await {
                got.push(r.job.id);
            }
            got
        }
    });
    let all: Vec<Uuid> = join_all(reservers).await.into_iter().flatten().collect();
    let distinct: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a job was reserved by two reservers at once");
    assert_eq!(distinct, enqueued, "every job was reserved exactly once");
}

/// Acked jobs are gone and failed ones come back: after the dust settles every job
/// was acked exactly once, nothing is left, nothing dead.
pub async fn no_job_is_lost(clock: Arc<ManualClock>, q: Queue) {
    let name = queue("lost");
    let jobs: Vec<NewJob> = (0..24).map(|i| NewJob::new(&name, json!(i)).retry(exact(5, 1, 1))).collect();
    let enqueued: HashSet<Uuid> = q.enqueue_batch(jobs).await.unwrap().into_iter().collect();
    let mut acked = HashSet::new();
    for round in 0..3 {
        let mut held = Vec::new();
        while let Some(r) = reserve(&q, &name, LONG).await {
            held.push(r);
        }
        let settles = held.iter().enumerate().map(|(i, r)| {
            let q = q.clone();
            async move {
                // Every round fails every other job it holds, the last round none.
                if round < 2 && i % 2 == 0 {
                    q.fail(r, "again").await.map(|_| None)
                } else {
                    q.ack(r).await.map(|()| Some(r.job.id))
                }
            }
        });
        for settled in join_all(settles).await {
            if let Some(id) = settled.unwrap() {
                assert!(acked.insert(id), "job {id} was acked twice");
            }
        }
        advance(&clock, Duration::from_secs(1));
    }
    assert_eq!(acked, enqueued, "every enqueued job was acked");
    assert!(reserve(&q, &name, LONG).await.is_none(), "nothing is left");
    assert!(q.dead_letters(&name, 100).await.unwrap().is_empty(), "nothing died");
}

/// Whatever JSON a job carries comes back as it was.
pub async fn payload_roundtrips(_clock: Arc<ManualClock>, q: Queue) {
    let name = queue("payload");
    let payload = json!({
        "tenant_id": Uuid::now_v7(),
        "text": "tab\tnull\u{0}bell\u{7} 日本語 \"quoted\"",
        "numbers": [0, -1, 1.5, 12345678901234567_i64],
        "nested": { "empty": {}, "list": [], "none": null, "yes": true },
    });
    for p in [payload, json!(null), json!("just text"), json!(42)] {
        enqueue(&q, NewJob::new(&name, p.clone())).await;
        let got = reserve_some(&q, &name, LONG, "the job is due").await;
        assert_eq!(got.job.payload, p, "the payload comes back as enqueued");
        assert_eq!(got.job.queue, name);
        q.ack(&got).await.unwrap();
    }
}

/// Bad arguments are a validation error naming the field, and change nothing.
pub async fn bad_input_is_refused_naming_the_field(_clock: Arc<ManualClock>, q: Queue) {
    fn field_of<T: std::fmt::Debug>(result: Result<T, CrmError>) -> String {
        match result {
            Err(CrmError::Validation(errors)) => {
                errors.fields.iter().map(|f| f.field.clone()).collect::<Vec<_>>().join(",")
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    let name = queue("input");
    let zero_attempts = RetryPolicy { max_attempts: 0, ..RetryPolicy::DEFAULT };
    let huge = json!("x".repeat(crate::jobs::MAX_PAYLOAD_BYTES + 1));
    assert_eq!(field_of(q.enqueue(NewJob::new("", json!(1))).await), "jobs[0].queue");
    assert_eq!(
        field_of(q.enqueue(NewJob::new(&name, json!(1)).retry(zero_attempts)).await),
        "jobs[0].retry.max_attempts"
    );
    assert_eq!(field_of(q.enqueue(NewJob::new(&name, huge)).await), "jobs[0].payload");
    assert_eq!(field_of(q.reserve("a b", LONG).await), "queue");
    assert_eq!(field_of(q.reserve(&name, Duration::ZERO).await), "visibility");
    assert_eq!(field_of(q.dead_letters(&"q".repeat(65), 1).await), "queue");
    assert!(reserve(&q, &name, LONG).await.is_none(), "refused jobs were not enqueued");
}

/// The queue of the process-kill test every adapter runs (its child and parent halves
/// below): a worker killed between reserve and ack sees its job run again.
pub const KILLED_WORKER_QUEUE: &str = "killed-worker";

/// The visibility timeout of the process-kill test: long enough for the parent to see
/// the job still reserved after the kill, short enough to wait out.
pub const KILLED_WORKER_VISIBILITY: Duration = Duration::from_secs(2);

/// The child process's half of the process-kill test: enqueues a job, reserves it,
/// prints `reserved <job id>` and waits (a minute at most) for the parent's SIGKILL.
pub async fn reserve_then_wait_to_be_killed(q: Queue) {
    let id = enqueue(&q, NewJob::new(KILLED_WORKER_QUEUE, json!({ "crash": true }))).await;
    let held = reserve_some(&q, KILLED_WORKER_QUEUE, KILLED_WORKER_VISIBILITY, "the child's job").await;
    assert_eq!(held.job.id, id);
    println!("reserved {id}");
    sleep(Duration::from_secs(60)).await;
}

/// The job id a line of the child's output reports, if it is that line.
pub fn reported_job(line: &str) -> Option<Uuid> {
    line.split_once("reserved ")?.1.trim().parse().ok()
}

/// The parent's half, once the child that reserved job `id` was killed: the job stays
/// reserved until the visibility timeout ends, then is reserved again (attempt 2) and
/// acked; nothing else remains.
pub async fn killed_workers_job_runs_again(q: Queue, id: Uuid) {
    let visibility = KILLED_WORKER_VISIBILITY;
    assert!(reserve(&q, KILLED_WORKER_QUEUE, visibility).await.is_none(), "the killed worker's job is still reserved");
    let deadline = std::time::Instant::now() + visibility * 5;
    let again = loop {
        sleep(Duration::from_millis(200)).await;
        if let Some(r) = reserve(&q, KILLED_WORKER_QUEUE, visibility).await {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the killed worker's job never came back");
    };
    assert_eq!((again.job.id, again.job.attempts), (id, 2), "the killed worker's job runs again, as attempt 2");
    q.ack(&again).await.unwrap();
    assert!(reserve(&q, KILLED_WORKER_QUEUE, visibility).await.is_none(), "nothing else was queued");
}

/// `depth` counts a queue's jobs by where they stand (due, delayed, reserved, dead) as
/// they move, and only that queue's.
pub async fn depth_counts_jobs_by_state(clock: Arc<ManualClock>, q: Queue) {
    let (name, other) = (queue("depth"), queue("depth-other"));
    assert_eq!(depth(&q, &name).await, QueueDepth::default(), "a queue never used holds no job");
    for i in 0..3 {
        enqueue(&q, NewJob::new(&name, json!(i)).retry(exact(1, 1, 1))).await;
    }
    enqueue(&q, NewJob::new(&name, json!("later")).delayed(Duration::from_secs(60))).await;
    enqueue(&q, NewJob::new(&other, json!("elsewhere"))).await;
    let counts = |due, delayed, reserved, dead| QueueDepth { due, delayed, reserved, dead };
    assert_eq!(depth(&q, &name).await, counts(3, 1, 0, 0), "three jobs due, one delayed");
    let first = reserve_some(&q, &name, LONG, "a due job").await;
    let second = reserve_some(&q, &name, LONG, "a second due job").await;
    assert_eq!(depth(&q, &name).await, counts(1, 1, 2, 0), "two reserved jobs are no longer due");
    assert_eq!(q.fail(&first, "boom").await.unwrap(), Failed::DeadLettered, "its only attempt failed");
    q.ack(&second).await.unwrap();
    assert_eq!(depth(&q, &name).await, counts(1, 1, 0, 1), "a failed last attempt is a dead letter, an ack is gone");
    advance(&clock, Duration::from_secs(61));
    assert_eq!(depth(&q, &name).await, counts(2, 0, 0, 1), "a delayed job is due once its delay ended");
    assert_eq!(depth(&q, &other).await, counts(1, 0, 0, 0), "another queue counts its own jobs only");
}
