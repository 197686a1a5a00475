//! The [`StreakStore`] conformance cases: what the sign-in rule relies on from any
//! store of sign-in streaks (in process, Redis…). Each case takes a factory that
//! builds a store, and panics, with a message naming what broke, when the store
//! misbehaves. Pairs carry a random part, so stores sharing a server do not meet.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use futures::future::join_all;
use uuid::Uuid;

use crate::rate_limit::sign_in::{Streak, StreakStore};

/// Calls `$callback!($args; case, case, …)` with the list of every streak-store case:
/// the one place they are enumerated.
#[doc(hidden)]
#[macro_export]
macro_rules! __streak_store_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* ;
            unknown_pair_has_no_streak,
            swap_from_the_current_streak_replaces_it,
            swap_from_a_stale_streak_changes_nothing,
            pairs_are_independent,
            concurrent_swaps_from_one_streak_have_one_winner,
        }
    };
}

/// Every streak-store case, by name.
pub const CASES: &[&str] = crate::__streak_store_cases!(__conformance_names!());

/// Expands the streak-store suite for one implementation, like
/// [`rate_limiter_suite!`](crate::rate_limiter_suite): a module named after the
/// implementation with one `#[tokio::test]` per case, and a check that the store's
/// `name()` is the module's name or its first `_`-separated part. The factory takes no
/// argument and returns a fresh `Arc<dyn StreakStore>`. Wrapping the invocations in a
/// module named `streak_store_suite` is what `scripts/test.sh` counts.
#[macro_export]
macro_rules! streak_store_suite {
    ($implementation:ident, $factory:expr) => {
        mod $implementation {
            #[allow(unused_imports)]
            use super::*;
            $crate::__streak_store_cases!(__streak_store_emit!($implementation, $factory));
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __streak_store_emit {
    ($implementation:ident, $factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                ::std::eprintln!(
                    "streak-store case `{}` on implementation `{}`",
                    ::std::stringify!($case),
                    ::std::stringify!($implementation),
                );
                $crate::conformance::streak_store::$case($factory).await;
            }
        )*

        /// Checks the factory builds the store this suite is named after, and prints
        /// how many cases run on it.
        #[::tokio::test]
        async fn suite_runs_on_the_named_implementation() {
            let store = ($factory)().await;
            let (module, name) = (::std::stringify!($implementation), store.name());
            ::std::assert!(
                !name.is_empty() && (module == name || module.strip_prefix(name).is_some_and(|r| r.starts_with('_'))),
                "suite `{module}` runs on a store named `{name}`",
            );
            ::std::eprintln!(
                "streak-store conformance: {} cases on implementation `{module}`",
                $crate::conformance::streak_store::CASES.len(),
            );
        }
    };
}

/// Long enough that nothing is forgotten while a case runs.
const KEEP: Duration = Duration::from_secs(3600);

/// A pair no other case or run uses.
fn pair(name: &str) -> String {
    format!("conformance:{}|{name}", Uuid::new_v4().simple())
}

/// A streak at a whole microsecond (what stores that count in microseconds keep).
fn streak(failures: u32, micros: i64) -> Streak {
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    Streak { failures, last: base + chrono::Duration::microseconds(micros) }
}

/// A pair never swapped has no streak.
pub async fn unknown_pair_has_no_streak<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StreakStore>>,
{
    let store = make().await;
    assert_eq!(store.get(&pair("unknown")).await.unwrap(), None);
}

/// Swapping from what is stored replaces it: created from none, changed, removed.
pub async fn swap_from_the_current_streak_replaces_it<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StreakStore>>,
{
    let store = make().await;
    let p = pair("replace");
    let (first, second) = (streak(1, 1), streak(2, 500_001));
    assert!(store.swap(&p, None, Some(first), KEEP).await.unwrap(), "creating from none");
    assert_eq!(store.get(&p).await.unwrap(), Some(first));
    assert!(store.swap(&p, Some(first), Some(second), KEEP).await.unwrap(), "replacing the current streak");
    assert_eq!(store.get(&p).await.unwrap(), Some(second));
    assert!(store.swap(&p, Some(second), None, KEEP).await.unwrap(), "removing the current streak");
    assert_eq!(store.get(&p).await.unwrap(), None);
}

/// Swapping from anything but what is stored changes nothing and says so.
pub async fn swap_from_a_stale_streak_changes_nothing<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StreakStore>>,
{
    let store = make().await;
    let p = pair("stale");
    let (stored, stale) = (streak(2, 10), streak(1, 10));
    assert!(store.swap(&p, None, Some(stored), KEEP).await.unwrap());
    assert!(!store.swap(&p, None, Some(streak(9, 9)), KEEP).await.unwrap(), "creating over a stored streak");
    assert!(!store.swap(&p, Some(stale), Some(streak(9, 9)), KEEP).await.unwrap(), "replacing from a stale one");
    assert!(!store.swap(&p, Some(stale), None, KEEP).await.unwrap(), "removing from a stale one");
    assert!(!store.swap(&p, Some(streak(2, 11)), None, KEEP).await.unwrap(), "a different time is another streak");
    assert_eq!(store.get(&p).await.unwrap(), Some(stored), "the stored streak is untouched");
    let absent = pair("absent");
    assert!(!store.swap(&absent, Some(stored), None, KEEP).await.unwrap(), "a pair without streak");
    assert_eq!(store.get(&absent).await.unwrap(), None);
}

/// Pairs are stored apart, however alike their names.
pub async fn pairs_are_independent<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StreakStore>>,
{
    let store = make().await;
    let base = pair("10.0.0.1|t:x@acme.test");
    let others = [format!("{base} "), format!("{base}*"), base.to_uppercase(), format!("{base}ünï/κ"), pair("")];
    assert!(store.swap(&base, None, Some(streak(3, 3)), KEEP).await.unwrap());
    for other in &others {
        assert_eq!(store.get(other).await.unwrap(), None, "{other:?} sees {base:?}'s streak");
        assert!(store.swap(other, None, Some(streak(1, 1)), KEEP).await.unwrap(), "{other:?} is its own pair");
    }
    assert_eq!(store.get(&base).await.unwrap(), Some(streak(3, 3)));
}

/// Many swaps from one streak at once: exactly one wins.
pub async fn concurrent_swaps_from_one_streak_have_one_winner<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StreakStore>>,
{
    let store = make().await;
    let p = pair("race");
    let start = streak(1, 1);
    assert!(store.swap(&p, None, Some(start), KEEP).await.unwrap());
    let next: Vec<Streak> = (0..32).map(|i| streak(2, 100 + i)).collect();
    let won = join_all(next.iter().map(|n| store.swap(&p, Some(start), Some(*n), KEEP))).await;
    let winners: Vec<Streak> =
        won.into_iter().zip(&next).filter(|(r, _)| *r.as_ref().unwrap()).map(|(_, n)| *n).collect();
    assert_eq!(winners.len(), 1, "32 swaps from one streak: {} won", winners.len());
    assert_eq!(store.get(&p).await.unwrap(), Some(winners[0]), "the winner's streak is stored");
}
