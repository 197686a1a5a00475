//! What the Redis session store adds to the suite: instances racing through their own
//! connections, and keys that expire by themselves.

use chrono::{Duration, Utc};
use crm_cache_redis::{RedisSessionStore, testing};
use crm_core::{CrmError, Meta, TenantId, session_store::Session, session_store::SessionStore};
use uuid::Uuid;

fn session(tenant: TenantId, user: Uuid, expires_in: Duration) -> Session {
    let now = Utc::now();
    Session::from_parts(Meta::new(tenant, now), user, now + expires_in, false, Uuid::new_v4().simple().to_string())
}

fn next_version(s: &Session) -> Session {
    let mut next = s.clone();
    next.meta.version += 1;
    next.last_used_at = Some(Utc::now());
    next
}

/// Two server instances (each its own connection) refreshing one session at once:
/// exactly one replace wins, the other sees a conflict, many rounds over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_on_one_session_have_one_winner() {
    let prefix = testing::unique_prefix();
    let a = RedisSessionStore::new(testing::connection().await, prefix.clone());
    let b = RedisSessionStore::new(testing::connection().await, prefix);
    let tenant = TenantId(Uuid::now_v7());
    let mut current = session(tenant, Uuid::now_v7(), Duration::hours(1));
    a.insert(&current).await.unwrap();
    for round in 0..50 {
        let (from_a, from_b) = (next_version(&current), next_version(&current));
        let version = current.meta.version;
        let (ra, rb) = tokio::join!(a.replace(version, &from_a), b.replace(version, &from_b));
        let winner = match (ra, rb) {
            (Ok(()), Err(CrmError::Conflict { .. })) => from_a,
            (Err(CrmError::Conflict { .. }), Ok(())) => from_b,
            other => panic!("round {round}: one winner and one conflict expected, got {other:?}"),
        };
        let stored = b.get(tenant, current.meta.id.into()).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&winner), "round {round}: the stored session is the winner's");
        current = winner;
    }
}

/// A session's key expires `retention` after the session (Redis's own expiry, not a
/// purge), and the user's index forgets it then.
#[tokio::test]
async fn keys_expire_retention_after_the_session() {
    let prefix = testing::unique_prefix();
    let mut raw = testing::connection().await;
    let store =
        RedisSessionStore::new(testing::connection().await, prefix.clone()).with_retention(Duration::milliseconds(300));
    let (tenant, user) = (TenantId(Uuid::now_v7()), Uuid::now_v7());
    let live = session(tenant, user, Duration::hours(1));
    let short = session(tenant, user, Duration::zero());
    store.insert(&live).await.unwrap();
    store.insert(&short).await.unwrap();

    let key = format!("{prefix}session:{}:{}", tenant.0, live.meta.id);
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut raw).await.unwrap();
    let expected = (Duration::hours(1) + Duration::milliseconds(300)).num_milliseconds();
    assert!((expected - 2_000..=expected).contains(&ttl_ms), "TTL {ttl_ms} ms, expected about {expected} ms");
    assert_eq!(store.list_for_user(tenant, user).await.unwrap().len(), 2, "the expired one stays for now");

    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(store.get(tenant, short.meta.id.into()).await.unwrap(), None, "gone after its retention");
    let listed = store.list_for_user(tenant, user).await.unwrap();
    assert_eq!(listed, vec![live.clone()], "the user's index drops the expired key");
    let index = format!("{prefix}user-sessions:{}:{user}", tenant.0);
    let members: Vec<String> = redis::cmd("ZRANGE").arg(&index).arg(0).arg(-1).query_async(&mut raw).await.unwrap();
    assert_eq!(members, vec![live.meta.id.to_string()], "listing cleaned the index");
}
