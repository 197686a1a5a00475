//! The retry schedule of jobs: a pure value, so its numbers are held here exactly.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use crm_core::jobs::{Failed, RetryPolicy, jitter_random};

const HOUR: u64 = 3600;

fn policy(max_attempts: u32, base: u64, cap: u64, jitter: f64) -> RetryPolicy {
    RetryPolicy { max_attempts, base: Duration::from_secs(base), cap: Duration::from_secs(cap), jitter }
}

#[test]
fn backoff_doubles_from_base_up_to_cap() {
    let p = policy(10, 30, 300, 0.0);
    let waits: Vec<u64> = (1..=6).map(|n| p.backoff(n, 0.5).as_secs()).collect();
    assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
    assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_secs(300), "huge attempt numbers stay at the cap");
}

#[test]
fn jitter_only_shortens_a_wait_by_at_most_its_fraction() {
    let p = policy(10, 100, 1000, 0.2);
    assert_eq!(p.backoff(1, 0.0), Duration::from_secs(100), "random 0 waits the full time");
    assert_eq!(p.backoff(1, 0.5), Duration::from_secs(90));
    assert!(p.backoff(1, 0.999_999) > Duration::from_secs(80));
    for _ in 0..1000 {
        let r = jitter_random();
        assert!((0.0..1.0).contains(&r), "{r} is outside [0, 1)");
        let wait = p.backoff(2, r);
        assert!(wait > Duration::from_secs(160) && wait <= Duration::from_secs(200), "{wait:?}");
    }
}

#[test]
fn the_last_attempt_dead_letters() {
    let p = policy(3, 10, 60, 0.0);
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    assert_eq!(p.after_failure(1, now, 0.0), Failed::RetryAt(now + chrono::Duration::seconds(10)));
    assert_eq!(p.after_failure(2, now, 0.0), Failed::RetryAt(now + chrono::Duration::seconds(20)));
    assert_eq!(p.after_failure(3, now, 0.0), Failed::DeadLettered);
    assert_eq!(p.after_failure(4, now, 0.0), Failed::DeadLettered, "a job reclaimed past its attempts dies too");
}

#[test]
fn webhooks_retry_for_about_three_days_and_emails_for_hours() {
    let webhooks = RetryPolicy::WEBHOOKS.longest_schedule().as_secs();
    assert!((60 * HOUR..84 * HOUR).contains(&webhooks), "webhooks retry for {} h", webhooks / HOUR);
    let shortest = webhooks as f64 * (1.0 - RetryPolicy::WEBHOOKS.jitter);
    assert!(shortest > 48.0 * HOUR as f64, "even with jitter webhooks retry for two days");
    let emails = RetryPolicy::EMAILS.longest_schedule().as_secs();
    assert!((HOUR..6 * HOUR).contains(&emails), "emails retry for {} min", emails / 60);
    assert!(RetryPolicy::DEFAULT.longest_schedule() < Duration::from_secs(60));
}

/// Jobs live under the system tenant: a tenant's listing of `job` records (or of any
/// kind) never meets one, and the system tenant is no tenant anyone has.
#[tokio::test]
async fn storage_jobs_live_outside_every_tenant() {
    use std::sync::Arc;

    use crm_core::{
        SystemClock, TenantId,
        jobs::{JobQueue, NewJob, SYSTEM_TENANT, StorageJobQueue},
        storage::{EntityKind, ListQuery, Storage, memory::MemoryStorage},
    };

    let storage = MemoryStorage::shared();
    let queue = StorageJobQueue::new(storage.clone(), Arc::new(SystemClock));
    let tenant = TenantId(uuid::Uuid::now_v7());
    let id = queue.enqueue(NewJob::new("emails", serde_json::json!({ "tenant_id": tenant }))).await.unwrap();
    let everything = ListQuery { limit: 100, ..ListQuery::default() };
    let of_tenant = storage.list(tenant, EntityKind::Job, &everything).await.unwrap();
    assert!(of_tenant.items.is_empty(), "a tenant sees no job, not even one about itself");
    let of_system = storage.list(SYSTEM_TENANT, EntityKind::Job, &everything).await.unwrap();
    assert_eq!(of_system.items.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    assert_eq!(SYSTEM_TENANT.0, uuid::Uuid::nil());
    assert_ne!(tenant, SYSTEM_TENANT);
}
