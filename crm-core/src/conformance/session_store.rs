//! The [`SessionStore`] conformance cases: what `Sessions` relies on from any store
//! (memory, the CRM's storage, Redis…). Each case takes a fresh store and panics, with a
//! message naming what broke, when the store misbehaves.
//!
//! The cases make their own tenants (random ids), so a store shared between cases (one
//! Redis server, one database) only needs each factory call to be isolated from earlier
//! runs, not emptied. Times are real (around `Utc::now()`, so a store with a native
//! expiry keeps live sessions alive) and carry microseconds: a store must keep at least
//! that precision. The errors a store answers with are part of the contract:
//! `AlreadyExists` for an insert of a taken id, `Conflict` for a replace from a version
//! the session is no longer at, `NotFound` for a replace of a session the tenant does
//! not have. Expired sessions stay readable until `remove_expired` takes them.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Timelike, Utc};
use futures::future::join_all;
use uuid::Uuid;

use crate::{
    CrmError, Id, Meta, TenantId,
    session_store::{Session, SessionStore},
    storage::EntityKind,
};

type Store = Arc<dyn SessionStore>;

/// Calls `$callback!($args; case, case, …)` with the list of every session-store case:
/// the one place they are enumerated.
#[doc(hidden)]
#[macro_export]
macro_rules! __session_store_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* ;
            get_missing_is_none,
            insert_get_roundtrip,
            insert_existing_id_is_refused,
            replace_with_expected_version_bumps,
            replace_with_stale_version_conflicts,
            replace_missing_is_not_found,
            concurrent_replaces_have_one_winner,
            concurrent_inserts_have_one_winner,
            tenants_are_isolated,
            remove_expired_takes_only_expired_of_the_tenant,
            remove_expired_respects_limit,
            revoked_sessions_roundtrip,
            expired_sessions_stay_until_removed,
            list_for_user_finds_exactly_the_users_sessions,
            list_for_user_sees_every_session_as_last_stored,
        }
    };
}

/// Every session-store case, by name.
pub const CASES: &[&str] = crate::__session_store_cases!(__conformance_names!());

/// Expands the session-store suite for one implementation, like
/// [`conformance_suite!`](crate::conformance_suite) does for storages:
///
/// ```ignore
/// mod session_store_suite {
///     crm_core::session_store_suite!(redis, || async { my_fresh_store().await });
/// }
/// ```
///
/// That is a module named after the implementation with one `#[tokio::test]` per case
/// (a failure names both), and a check that the store's `name()` is the module's name
/// or its first `_`-separated part (`storage_sled` runs a store named `storage`). The
/// factory is called once per case and returns an `Arc<dyn SessionStore>`. Wrapping
/// the invocations in a module named `session_store_suite` is what `scripts/test.sh`
/// counts.
#[macro_export]
macro_rules! session_store_suite {
    ($implementation:ident, $factory:expr) => {
        mod $implementation {
            #[allow(unused_imports)]
            use super::*;
            $crate::__session_store_cases!(__session_store_emit!($implementation, $factory));
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __session_store_emit {
    ($implementation:ident, $factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::session_store::SessionStore> = ($factory)().await;
                ::std::eprintln!(
                    "session-store case `{}` on implementation `{}` (store `{}`)",
                    ::std::stringify!($case),
                    ::std::stringify!($implementation),
                    store.name(),
                );
                $crate::conformance::session_store::$case(store).await;
            }
        )*

        /// Checks the factory builds the store this suite is named after, and prints
        /// how many cases run on it.
        #[::tokio::test]
        async fn suite_runs_on_the_named_implementation() {
            let store: ::std::sync::Arc<dyn $crate::session_store::SessionStore> = ($factory)().await;
            let (module, name) = (::std::stringify!($implementation), store.name());
            ::std::assert!(
                !name.is_empty() && (module == name || module.strip_prefix(name).is_some_and(|r| r.starts_with('_'))),
                "suite `{module}` runs on a store named `{name}`",
            );
            ::std::eprintln!(
                "session-store conformance: {} cases on implementation `{module}`",
                $crate::conformance::session_store::CASES.len(),
            );
        }
    };
}

/// Now, with a known sub-second part (123.456 ms) so a store that drops microseconds shows.
fn now() -> DateTime<Utc> {
    Utc::now().with_nanosecond(123_456_000).unwrap()
}

fn new_tenant() -> TenantId {
    TenantId(Uuid::now_v7())
}

/// A refresh-token hash as `Sessions` stores one (64 hex digits).
fn hash() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A new session (version 1) of `tenant` that expires at `expires_at`.
fn session(tenant: TenantId, expires_at: DateTime<Utc>) -> Session {
    let now = now();
    let meta = Meta {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        version: 1,
        created_at: now - Duration::minutes(5),
        updated_at: now,
    };
    let mut session = Session::from_parts(meta, Uuid::now_v7(), expires_at, false, hash());
    session.last_used_at = Some(now);
    session.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 «ü»".into());
    session.ip = Some("2001:db8::7".into());
    session
}

/// A live session of `tenant` (expires in a day).
fn live(tenant: TenantId) -> Session {
    session(tenant, now() + Duration::days(1))
}

/// The next version of `before` as a rotation makes it: a new hash, a later `updated_at`.
fn rotated(before: &Session) -> Session {
    let mut meta = before.meta.clone();
    meta.version += 1;
    meta.updated_at += Duration::seconds(1);
    let mut after = Session::from_parts(meta, before.user_id, before.expires_at, before.revoked, hash());
    after.last_used_at = Some(after.meta.updated_at);
    after.user_agent = Some("curl/8.5.0".into());
    after.ip = Some("192.0.2.10".into());
    after.retired_hashes = [before.refresh_hash.clone()].into_iter().chain(before.retired_hashes.clone()).collect();
    after.rotated_at = Some(after.meta.updated_at);
    after.rotation_nonce = Some(hash());
    after
}

/// `sessions` by id, to compare listings whatever their order.
fn by_id(sessions: Vec<Session>) -> std::collections::BTreeMap<Uuid, Session> {
    sessions.into_iter().map(|s| (s.meta.id, s)).collect()
}

async fn get(s: &Store, session: &Session) -> Option<Session> {
    s.get(session.meta.tenant_id, session.meta.id.into()).await.unwrap()
}

/// A missing id reads as `None`, in an empty tenant and next to a stored session.
pub async fn get_missing_is_none(s: Store) {
    let tenant = new_tenant();
    assert_eq!(s.get(tenant, Id::generate()).await.unwrap(), None, "an unknown id in an unknown tenant");
    s.insert(&live(tenant)).await.unwrap();
    assert_eq!(s.get(tenant, Id::generate()).await.unwrap(), None, "an unknown id next to a stored session");
}

/// What is inserted is read back equal, field by field (hash and microseconds included).
pub async fn insert_get_roundtrip(s: Store) {
    let tenant = new_tenant();
    let a = live(tenant);
    let b = session(tenant, now() + Duration::hours(1));
    s.insert(&a).await.unwrap();
    s.insert(&b).await.unwrap();
    let read = get(&s, &a).await.expect("an inserted session is found");
    assert_eq!(read, a, "a session reads back exactly as inserted");
    assert_eq!(read.meta.version, 1);
    assert_eq!(get(&s, &b).await.as_ref(), Some(&b), "a second session of the tenant is its own");
}

/// An insert of an id the tenant already has is `AlreadyExists` and keeps the stored one.
pub async fn insert_existing_id_is_refused(s: Store) {
    let tenant = new_tenant();
    let first = live(tenant);
    s.insert(&first).await.unwrap();
    let mut again = live(tenant);
    again.meta.id = first.meta.id;
    let err = s.insert(&again).await.unwrap_err();
    assert!(matches!(err, CrmError::AlreadyExists { kind: EntityKind::Session, .. }), "{err:?}");
    assert_eq!(get(&s, &first).await.as_ref(), Some(&first), "a refused insert changes nothing");
}

/// A replace from the current version stores the next one, every field of it.
pub async fn replace_with_expected_version_bumps(s: Store) {
    let tenant = new_tenant();
    let v1 = live(tenant);
    s.insert(&v1).await.unwrap();
    let v2 = rotated(&v1);
    s.replace(1, &v2).await.unwrap();
    assert_eq!(get(&s, &v1).await.as_ref(), Some(&v2), "the replacement is stored whole");
    let mut v3 = rotated(&v2);
    v3.expires_at = now() + Duration::hours(2);
    v3.revoked = true;
    s.replace(2, &v3).await.unwrap();
    let read = get(&s, &v1).await.unwrap();
    assert_eq!(read, v3, "expiry, revocation and hash move with a replace");
    assert_eq!(read.meta.version, 3);
}

/// A replace from a version the session is not at is `Conflict` and changes nothing.
pub async fn replace_with_stale_version_conflicts(s: Store) {
    let tenant = new_tenant();
    let v1 = live(tenant);
    s.insert(&v1).await.unwrap();
    let v2 = rotated(&v1);
    s.replace(1, &v2).await.unwrap();
    // A writer that read version 1, and one claiming a version that never was.
    let late = rotated(&v1);
    let mut ahead = rotated(&v2);
    ahead.meta.version = 8;
    for (expected, attempt) in [(1, &late), (7, &ahead)] {
        let err = s.replace(expected, attempt).await.unwrap_err();
        assert!(matches!(err, CrmError::Conflict { kind: EntityKind::Session, .. }), "from {expected}: {err:?}");
        assert_eq!(get(&s, &v1).await.as_ref(), Some(&v2), "a conflicting replace from {expected} changed the session");
    }
}

/// A replace of a session that is not there is `NotFound` and creates nothing.
pub async fn replace_missing_is_not_found(s: Store) {
    let tenant = new_tenant();
    let never = rotated(&live(tenant));
    let err = s.replace(1, &never).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { kind: EntityKind::Session, .. }), "{err:?}");
    assert_eq!(get(&s, &never).await, None, "a replace of a missing session must not insert it");
}

/// Of many replaces from the same version, exactly one wins; the others are `Conflict`,
/// and the stored session is the winner's.
pub async fn concurrent_replaces_have_one_winner(s: Store) {
    let tenant = new_tenant();
    let v1 = live(tenant);
    s.insert(&v1).await.unwrap();
    let attempts: Vec<Session> = (0..16).map(|_| rotated(&v1)).collect();
    let results = join_all(attempts.iter().map(|a| s.replace(1, a))).await;
    let winners: Vec<&Session> = attempts.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(a, _)| a).collect();
    assert_eq!(winners.len(), 1, "exactly one replace from version 1 may win, got {}", winners.len());
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CrmError::Conflict { .. }), "losers must see a conflict, got {e:?}");
        }
    }
    assert_eq!(get(&s, &v1).await.as_ref(), Some(winners[0]), "the stored session is the winner's");
}

/// Of many inserts of one id, exactly one wins; the others are `AlreadyExists`.
pub async fn concurrent_inserts_have_one_winner(s: Store) {
    let tenant = new_tenant();
    let id = Uuid::now_v7();
    let attempts: Vec<Session> = (0..16)
        .map(|_| {
            let mut a = live(tenant);
            a.meta.id = id;
            a
        })
        .collect();
    let results = join_all(attempts.iter().map(|a| s.insert(a))).await;
    let winners: Vec<&Session> = attempts.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(a, _)| a).collect();
    assert_eq!(winners.len(), 1, "exactly one insert of an id may win, got {}", winners.len());
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CrmError::AlreadyExists { .. }), "losers must see AlreadyExists, got {e:?}");
        }
    }
    assert_eq!(s.get(tenant, id.into()).await.unwrap().as_ref(), Some(winners[0]));
}

/// Another tenant neither sees, replaces nor removes a session, even by its exact id.
pub async fn tenants_are_isolated(s: Store) {
    let (a, b) = (new_tenant(), new_tenant());
    let expired = session(a, now() - Duration::hours(1));
    s.insert(&expired).await.unwrap();
    assert_eq!(s.get(b, expired.meta.id.into()).await.unwrap(), None, "tenant b reads tenant a's session");
    let mut hijack = rotated(&expired);
    hijack.meta.tenant_id = b;
    let err = s.replace(1, &hijack).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { kind: EntityKind::Session, .. }), "{err:?}");
    assert_eq!(s.remove_expired(b, now(), 100).await.unwrap(), 0, "tenant b has nothing expired");
    assert_eq!(get(&s, &expired).await.as_ref(), Some(&expired), "tenant a's session is untouched");
    assert_eq!(s.get(b, expired.meta.id.into()).await.unwrap(), None, "a refused replace inserts nothing");
}

/// `remove_expired` takes exactly the tenant's sessions that expired strictly before
/// `now` (revoked or not, expired by a replace too), reports how many, and keeps
/// the rest: live ones, one expiring at `now`, revoked live ones, other tenants' ones.
pub async fn remove_expired_takes_only_expired_of_the_tenant(s: Store) {
    let (tenant, other) = (new_tenant(), new_tenant());
    let now = now();
    let mut expired: Vec<Session> = (1..=3).map(|h| session(tenant, now - Duration::hours(h))).collect();
    let mut revoked_expired = session(tenant, now - Duration::microseconds(1));
    revoked_expired.revoked = true;
    expired.push(revoked_expired);
    let mut revoked_live = live(tenant);
    revoked_live.revoked = true;
    let kept = vec![live(tenant), session(tenant, now), revoked_live, session(other, now - Duration::hours(1))];
    for x in expired.iter().chain(&kept) {
        s.insert(x).await.unwrap();
    }
    // A live session whose replacement moved its expiry into the past is expired.
    let moved = live(tenant);
    s.insert(&moved).await.unwrap();
    let mut moved_v2 = rotated(&moved);
    moved_v2.expires_at = now - Duration::minutes(1);
    s.replace(1, &moved_v2).await.unwrap();
    expired.push(moved_v2);

    assert_eq!(s.remove_expired(tenant, now, 100).await.unwrap(), 5, "the count of removed sessions");
    for x in &expired {
        assert_eq!(get(&s, x).await, None, "an expired session (expires {}) is still there", x.expires_at);
    }
    for x in &kept {
        assert_eq!(get(&s, x).await.as_ref(), Some(x), "a session that must stay was removed or changed");
    }
    assert_eq!(s.remove_expired(tenant, now, 100).await.unwrap(), 0, "nothing is left to remove");
}

/// `remove_expired` removes at most `limit` sessions a call (none for 0) and its count
/// is what it removed, so repeated calls drain the expired sessions exactly.
pub async fn remove_expired_respects_limit(s: Store) {
    let tenant = new_tenant();
    let now = now();
    let expired: Vec<Session> = (1..=5).map(|m| session(tenant, now - Duration::minutes(m))).collect();
    let live = live(tenant);
    for x in expired.iter().chain([&live]) {
        s.insert(x).await.unwrap();
    }
    let still_there = async || {
        let mut n = 0;
        for x in &expired {
            n += u64::from(get(&s, x).await.is_some());
        }
        n
    };
    assert_eq!(s.remove_expired(tenant, now, 0).await.unwrap(), 0, "a limit of 0 removes nothing");
    assert_eq!(still_there().await, 5);
    let mut left = 5;
    for expected in [2, 2, 1, 0] {
        let removed = s.remove_expired(tenant, now, 2).await.unwrap();
        assert_eq!(removed, expected, "with a limit of 2 and {left} expired sessions");
        left -= removed;
        assert_eq!(still_there().await, left, "the reported count is what was removed");
    }
    assert_eq!(get(&s, &live).await.as_ref(), Some(&live));
}

/// A revoked session reads back revoked, inserted so or revoked by a replace.
pub async fn revoked_sessions_roundtrip(s: Store) {
    let tenant = new_tenant();
    let mut born_revoked = live(tenant);
    born_revoked.revoked = true;
    s.insert(&born_revoked).await.unwrap();
    let read = get(&s, &born_revoked).await.unwrap();
    assert!(read.revoked && read == born_revoked, "a session inserted revoked reads back revoked");

    let active = live(tenant);
    s.insert(&active).await.unwrap();
    let mut revoked = rotated(&active);
    revoked.revoked = true;
    s.replace(1, &revoked).await.unwrap();
    let read = get(&s, &active).await.unwrap();
    assert!(read.revoked && read == revoked, "a session revoked by a replace reads back revoked");
    assert!(!read.is_active(now()), "a revoked session is not active");
}

/// Expired sessions stay readable (and replaceable, to revoke them) until removed.
pub async fn expired_sessions_stay_until_removed(s: Store) {
    let tenant = new_tenant();
    let expired = session(tenant, now() - Duration::days(1));
    s.insert(&expired).await.unwrap();
    assert_eq!(get(&s, &expired).await.as_ref(), Some(&expired), "an expired session is still readable");
    let mut revoked = rotated(&expired);
    revoked.revoked = true;
    s.replace(1, &revoked).await.unwrap();
    assert_eq!(get(&s, &expired).await.as_ref(), Some(&revoked));
}

/// `list_for_user` returns every session of the user in the tenant (live, revoked and
/// expired ones alike) and nothing else: not another user's, not the same user id's in
/// another tenant.
pub async fn list_for_user_finds_exactly_the_users_sessions(s: Store) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let user = Uuid::now_v7();
    let of_user = |mut x: Session| {
        x.user_id = user;
        x
    };
    let mut revoked = of_user(live(tenant));
    revoked.revoked = true;
    let mine = vec![of_user(live(tenant)), revoked, of_user(session(tenant, now() - Duration::hours(1)))];
    let others = vec![live(tenant), of_user(live(other_tenant))];
    assert!(s.list_for_user(tenant, user).await.unwrap().is_empty(), "a user without sessions has none listed");
    for x in mine.iter().chain(&others) {
        s.insert(x).await.unwrap();
    }
    let listed = by_id(s.list_for_user(tenant, user).await.unwrap());
    assert_eq!(listed, by_id(mine), "the user's sessions of the tenant, each as stored, and only those");
    assert!(s.list_for_user(tenant, Uuid::now_v7()).await.unwrap().is_empty(), "an unknown user has none");
}

/// `list_for_user` lists many sessions whole (more than one page of a storage's listing)
/// and each at its latest version after replaces; removed sessions are gone from it.
pub async fn list_for_user_sees_every_session_as_last_stored(s: Store) {
    let tenant = new_tenant();
    let user = Uuid::now_v7();
    let mut sessions: Vec<Session> = (0..120)
        .map(|i| {
            let mut x = session(tenant, now() + Duration::hours(if i % 3 == 0 { -1 } else { 1 }));
            x.user_id = user;
            x
        })
        .collect();
    for x in &sessions {
        s.insert(x).await.unwrap();
    }
    for x in sessions.iter_mut().skip(1).step_by(3) {
        let next = rotated(x);
        s.replace(1, &next).await.unwrap();
        *x = next;
    }
    let listed = by_id(s.list_for_user(tenant, user).await.unwrap());
    assert_eq!(listed.len(), 120, "every one of 120 sessions is listed");
    assert_eq!(listed, by_id(sessions.clone()), "each session is listed at its latest version");
    assert_eq!(s.remove_expired(tenant, now(), 1000).await.unwrap(), 40);
    let live: Vec<Session> = sessions.into_iter().filter(|x| x.expires_at > now()).collect();
    assert_eq!(by_id(s.list_for_user(tenant, user).await.unwrap()), by_id(live), "removed sessions are not listed");
}
