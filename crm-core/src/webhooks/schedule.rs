//! When a failed delivery is tried again: the Standard Webhooks (Svix) schedule,
//! immediately and then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h,
//! about three days in all. Each wait is stretched by up to 10 % of jitter so that the
//! deliveries of one burst of events do not retry all at the same second. The jitter
//! is derived from the delivery's id and attempt number, so the schedule is a pure
//! value: the same delivery always gets the same times (tests replay it on a manual clock).

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The waits before each retry; the first attempt is immediate.
const WAITS: [Duration; 9] = [
    Duration::seconds(5),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
    Duration::hours(5),
    Duration::hours(10),
    Duration::hours(14),
    Duration::hours(20),
    Duration::hours(24),
];

/// The most a wait is stretched, in per mille of itself.
const JITTER_PER_MILLE: i64 = 100;

/// The retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetrySchedule;

impl RetrySchedule {
    /// How many attempts a delivery gets in all (the first one and the retries).
    pub const fn max_attempts(self) -> u32 {
        WAITS.len() as u32 + 1
    }

    /// The wait after `attempts` failed attempts, before jitter; `None` once they are
    /// all spent (the delivery has failed for good and its endpoint is disabled).
    pub fn base_wait(self, attempts: u32) -> Option<Duration> {
        let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
        WAITS.get(index).copied()
    }

    /// When delivery `delivery` is tried next after its `attempts`-th attempt failed at
    /// `failed_at`; `None` when that was the last one.
    pub fn next_attempt(self, delivery: Uuid, attempts: u32, failed_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let wait = self.base_wait(attempts)?;
        let stretch = wait.num_milliseconds() * jitter_per_mille(delivery, attempts) / 1000;
        Some(failed_at + wait + Duration::milliseconds(stretch))
    }
}

/// A number in `0..=JITTER_PER_MILLE` that only depends on the delivery and attempt.
fn jitter_per_mille(delivery: Uuid, attempts: u32) -> i64 {
    let digest = Sha256::new().chain_update(delivery.as_bytes()).chain_update(attempts.to_be_bytes()).finalize();
    let sample = u16::from_be_bytes([digest[0], digest[1]]);
    i64::from(sample) % (JITTER_PER_MILLE + 1)
}
