//! The [`Leases`] conformance cases: what the outbox relay and the scheduler rely on
//! from any lease implementation. Each case takes a factory that builds the leases
//! around a [`ManualClock`] and panics, naming what broke, when they misbehave.
//!
//! Time passes in two ways at once, so one suite serves implementations on the
//! CRM's clock (moved by hand) and on a server's own clock (Redis's, which only
//! real time moves): [`pass`] moves the manual clock and then sleeps as long. The
//! cases that need time to pass use short leases; the others use long ones. Lease
//! names carry a random part, so implementations sharing a server do not meet.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{future::Future, sync::Arc};

use chrono::{Duration, TimeZone, Utc};
use futures::future::join_all;
use uuid::Uuid;

use super::support::sleep;
use crate::{
    crm::{Clock, ManualClock},
    leases::Leases,
};

/// Calls `$callback!($args; case, case, …)` with the list of every lease case: the
/// one place they are enumerated.
#[doc(hidden)]
#[macro_export]
macro_rules! __lease_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* ;
            unknown_lease_has_no_holder,
            one_holder_at_a_time_under_racing_tasks,
            expiry_hands_over_with_a_greater_epoch,
            renewal_keeps_the_lease_and_its_epoch,
            release_frees_only_for_its_holder,
            epochs_grow_with_every_grant,
            names_are_independent,
        }
    };
}

/// Every lease case, by name.
pub const CASES: &[&str] = crate::__lease_cases!(__conformance_names!());

/// Expands the lease suite for one implementation, like
/// [`streak_store_suite!`](crate::streak_store_suite): a module named after the
/// implementation with one `#[tokio::test]` per case, and a check that the leases'
/// `name()` is the module's name or its first `_`-separated part. The factory takes
/// an `Arc<ManualClock>` (the clock to time leases by, where the implementation
/// takes one) and returns a fresh `Arc<dyn Leases>`. Wrapping the invocations in a
/// module named `lease_suite` is what `scripts/test.sh` counts.
#[macro_export]
macro_rules! lease_suite {
    ($implementation:ident, $factory:expr) => {
        mod $implementation {
            #[allow(unused_imports)]
            use super::*;
            $crate::__lease_cases!(__lease_emit!($implementation, $factory));
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __lease_emit {
    ($implementation:ident, $factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                ::std::eprintln!(
                    "lease case `{}` on implementation `{}`",
                    ::std::stringify!($case),
                    ::std::stringify!($implementation),
                );
                $crate::conformance::leases::$case($factory).await;
            }
        )*

        /// Checks the factory builds the leases this suite is named after, and prints
        /// how many cases run on it.
        #[::tokio::test]
        async fn suite_runs_on_the_named_implementation() {
            let (leases, _) = $crate::conformance::leases::build($factory).await;
            let (module, name) = (::std::stringify!($implementation), leases.name());
            ::std::assert!(
                !name.is_empty() && (module == name || module.strip_prefix(name).is_some_and(|r| r.starts_with('_'))),
                "suite `{module}` runs on leases named `{name}`",
            );
            ::std::eprintln!(
                "lease conformance: {} cases on implementation `{module}`",
                $crate::conformance::leases::CASES.len(),
            );
        }
    };
}

/// A lease nothing lets lapse while a case runs.
const LONG: Duration = Duration::hours(1);
/// A lease short enough to watch lapse, long enough to outlast a slow call.
const SHORT: Duration = Duration::milliseconds(1500);

/// Calls the factory with a fresh manual clock; gives a closure its signature.
#[doc(hidden)]
pub async fn build<F, Fut>(make: F) -> (Arc<dyn Leases>, Arc<ManualClock>)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()));
    (make(clock.clone()).await, clock)
}

/// Lets `d` pass on the manual clock and in real time.
pub async fn pass(clock: &ManualClock, d: Duration) {
    clock.set(clock.now() + d);
    sleep(d.to_std().unwrap()).await;
}

/// A lease name no other case or run uses.
fn lease(name: &str) -> String {
    format!("conformance:{}:{name}", Uuid::new_v4().simple())
}

/// A lease never acquired has no holder, and releasing it frees nothing.
pub async fn unknown_lease_has_no_holder<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, _) = build(make).await;
    let name = lease("unknown");
    assert_eq!(leases.holder(&name).await.unwrap(), None);
    assert!(!leases.release(&name, "a").await.unwrap(), "releasing a lease nobody holds");
}

/// 32 holders race for one free lease: exactly one gets it, and it is the holder read back.
pub async fn one_holder_at_a_time_under_racing_tasks<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, _) = build(make).await;
    let name = lease("race");
    let holders: Vec<String> = (0..32).map(|i| format!("holder-{i}")).collect();
    let grants = join_all(holders.iter().map(|h| leases.acquire(&name, h, LONG))).await;
    let won: Vec<_> = grants.into_iter().filter_map(|g| g.unwrap()).collect();
    assert_eq!(won.len(), 1, "32 racing acquirers of a free lease: {} won", won.len());
    assert_eq!(leases.holder(&name).await.unwrap().map(|g| g.holder), Some(won[0].holder.clone()));
    let again = join_all(holders.iter().filter(|h| **h != won[0].holder).map(|h| leases.acquire(&name, h, LONG))).await;
    assert!(again.into_iter().all(|g| g.unwrap().is_none()), "a held lease was granted to another holder");
}

/// A lease not renewed lapses: another holder gets it under a greater epoch, and the
/// old holder can no longer renew it.
pub async fn expiry_hands_over_with_a_greater_epoch<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, clock) = build(make).await;
    let name = lease("expiry");
    let first = leases.acquire(&name, "a", SHORT).await.unwrap().expect("a free lease is granted");
    assert_eq!(leases.acquire(&name, "b", SHORT).await.unwrap(), None, "b got a's live lease");
    pass(&clock, SHORT + Duration::milliseconds(100)).await;
    assert_eq!(leases.holder(&name).await.unwrap(), None, "an expired lease still has a holder");
    let second = leases.acquire(&name, "b", LONG).await.unwrap().expect("an expired lease is granted");
    assert_eq!(second.holder, "b");
    assert!(second.epoch > first.epoch, "epoch {} after {}", second.epoch, first.epoch);
    assert_eq!(leases.acquire(&name, "a", LONG).await.unwrap(), None, "a renewed a lease it lost");
    assert!(!leases.release(&name, "a").await.unwrap(), "a released a lease it lost");
    assert_eq!(leases.holder(&name).await.unwrap().map(|g| g.holder), Some("b".into()));
}

/// Renewing before expiry keeps the lease (with its epoch) past the first grant's end.
pub async fn renewal_keeps_the_lease_and_its_epoch<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, clock) = build(make).await;
    let name = lease("renew");
    // Renewed at 2/3 of the lease, then checked at 4/3: past the first grant's end,
    // inside the renewal's (with a third of the lease to spare for slow calls).
    let ttl = SHORT * 2;
    let step = ttl * 2 / 3;
    let first = leases.acquire(&name, "a", ttl).await.unwrap().expect("a free lease is granted");
    pass(&clock, step).await;
    let renewed = leases.acquire(&name, "a", ttl).await.unwrap().expect("the holder renews");
    assert_eq!(renewed.epoch, first.epoch, "a renewal changed the epoch");
    assert!(renewed.expires_at > first.expires_at, "a renewal did not push the expiry");
    pass(&clock, step).await;
    assert_eq!(leases.acquire(&name, "b", ttl).await.unwrap(), None, "b got a renewed lease");
    let held = leases.holder(&name).await.unwrap().expect("the renewed lease is held");
    assert_eq!((held.holder.as_str(), held.epoch), ("a", first.epoch));
}

/// Release frees a lease at once, but only for its holder.
pub async fn release_frees_only_for_its_holder<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, _) = build(make).await;
    let name = lease("release");
    let first = leases.acquire(&name, "a", LONG).await.unwrap().expect("a free lease is granted");
    assert!(!leases.release(&name, "b").await.unwrap(), "b released a's lease");
    assert_eq!(leases.holder(&name).await.unwrap().map(|g| g.holder), Some("a".into()));
    assert!(leases.release(&name, "a").await.unwrap(), "the holder's release");
    assert_eq!(leases.holder(&name).await.unwrap(), None, "a released lease still has a holder");
    assert!(!leases.release(&name, "a").await.unwrap(), "a second release");
    let next = leases.acquire(&name, "b", LONG).await.unwrap().expect("a released lease is granted");
    assert!(next.epoch > first.epoch, "epoch {} after {}", next.epoch, first.epoch);
}

/// Every grant that is not a renewal has a greater epoch than all before it, the same
/// holder coming back after a release included.
pub async fn epochs_grow_with_every_grant<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, _) = build(make).await;
    let name = lease("epochs");
    let mut last = 0;
    for holder in ["a", "b", "b", "a", "c"] {
        let grant = leases.acquire(&name, holder, LONG).await.unwrap().expect("a free lease is granted");
        assert!(grant.epoch > last, "{holder} got epoch {} after {last}", grant.epoch);
        last = grant.epoch;
        assert!(leases.release(&name, holder).await.unwrap());
    }
}

/// Leases of different names, however alike, are held apart.
pub async fn names_are_independent<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Leases>>,
{
    let (leases, _) = build(make).await;
    let base = lease("relay");
    let others = [format!("{base} "), format!("{base}:x"), base.to_uppercase(), format!("{base}ünï/κ"), lease("")];
    assert!(leases.acquire(&base, "a", LONG).await.unwrap().is_some());
    for other in &others {
        assert_eq!(leases.holder(other).await.unwrap(), None, "{other:?} sees {base:?}'s holder");
        assert!(leases.acquire(other, "b", LONG).await.unwrap().is_some(), "{other:?} is its own lease");
    }
    assert_eq!(leases.holder(&base).await.unwrap().map(|g| g.holder), Some("a".into()));
}
