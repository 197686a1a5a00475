//! Managing one's sessions (listing, revoking one, signing out everywhere), the
//! revocations a password or email change and an admin's password reset make, and
//! refreshing twice at once (the grace window), on every session store.

use std::{sync::Arc, time::Duration as StdDuration};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use crm_core::{
    CrmError, Id, Principal, TenantId,
    access::{
        sessions::{ClientInfo, IssuedSession, REFRESH_GRACE},
        users::UserPatch,
    },
    session_store::{MemorySessionStore, Session, SessionStore},
};
use uuid::Uuid;

use crate::support::{World, world, world_on_each_session_store, world_with_sessions};

/// A store whose reads take a while, so two refreshes started together both read the
/// session before either writes it: the race is certain, not left to the scheduler.
struct SlowReads(Arc<dyn SessionStore>);

#[async_trait]
impl SessionStore for SlowReads {
    fn name(&self) -> &str {
        "slow-reads"
    }
    async fn get(&self, tenant: TenantId, id: Id<Session>) -> crm_core::Result<Option<Session>> {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        self.0.get(tenant, id).await
    }
    async fn insert(&self, session: &Session) -> crm_core::Result<()> {
        self.0.insert(session).await
    }
    async fn replace(&self, expected_version: u64, session: &Session) -> crm_core::Result<()> {
        self.0.replace(expected_version, session).await
    }
    async fn list_for_user(&self, tenant: TenantId, user: Uuid) -> crm_core::Result<Vec<Session>> {
        self.0.list_for_user(tenant, user).await
    }
    async fn remove_expired(&self, tenant: TenantId, now: DateTime<Utc>, limit: usize) -> crm_core::Result<u64> {
        self.0.remove_expired(tenant, now, limit).await
    }
}

/// Every store of [`world_on_each_session_store`], and slow reads over memory.
async fn each_store() -> Vec<World> {
    let mut worlds = world_on_each_session_store().await;
    worlds.push(world_with_sessions(Some(Arc::new(SlowReads(Arc::new(MemorySessionStore::new()))))).await);
    worlds
}

fn client() -> ClientInfo {
    ClientInfo::default()
}

async fn start(w: &World, p: &Principal) -> IssuedSession {
    w.crm.sessions().start(p, &client()).await.unwrap()
}

/// The principal acting in `issued`, as an access token of it authenticates.
async fn in_session(w: &World, issued: &IssuedSession) -> Principal {
    let s = &issued.session;
    w.crm.sessions().authenticate(s.meta.tenant_id, s.meta.id.into(), s.user_id).await.unwrap()
}

async fn is_active(w: &World, issued: &IssuedSession) -> bool {
    let s = &issued.session;
    match w.crm.sessions().authenticate(s.meta.tenant_id, s.meta.id.into(), s.user_id).await {
        Ok(_) => true,
        Err(CrmError::Unauthenticated) => false,
        Err(e) => panic!("{e:?}"),
    }
}

/// Two refreshes with one token at once, on threads, ten times over and on every store:
/// both succeed with the same new token, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_refreshes_with_one_token_at_once_both_succeed() {
    for w in each_store().await {
        let w = Arc::new(w);
        let name = w.crm.storage().name().to_owned();
        let mut token = start(&w, &w.user).await.refresh_token;
        for round in 0..10 {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let (w, token) = (w.clone(), token.clone());
                    tokio::spawn(async move { w.crm.sessions().refresh(&token, &client()).await })
                })
                .collect();
            let mut pairs = Vec::new();
            for task in tasks {
                pairs.push(task.await.unwrap().unwrap_or_else(|e| panic!("{name}, round {round}: {e:?}")));
            }
            assert_eq!(pairs[0].refresh_token, pairs[1].refresh_token, "both get the same rotated token");
            assert_eq!(pairs[0].session.meta.id, pairs[1].session.meta.id);
            token = pairs[0].refresh_token.clone();
        }
        let last = w.crm.sessions().refresh(&token, &client()).await.unwrap();
        assert!(is_active(&w, &last).await, "the session survives");
    }
}

#[tokio::test]
async fn the_just_rotated_token_gets_the_same_pair_within_the_grace_window_only() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let first = start(&w, &w.user).await;
        let second = sessions.refresh(&first.refresh_token, &client()).await.unwrap();
        w.clock.set(w.crm.now() + REFRESH_GRACE - Duration::seconds(1));
        let again = sessions.refresh(&first.refresh_token, &client()).await.unwrap();
        assert_eq!(again.refresh_token, second.refresh_token, "the already-rotated token, again");
        assert!(is_active(&w, &first).await);
        w.clock.set(w.crm.now() + Duration::seconds(2));
        assert!(matches!(sessions.refresh(&first.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
        assert!(!is_active(&w, &first).await, "reuse after the window revokes the session");
        assert!(matches!(sessions.refresh(&second.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
    }
}

#[tokio::test]
async fn an_older_token_revokes_even_within_the_grace_window() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let first = start(&w, &w.user).await;
        let second = sessions.refresh(&first.refresh_token, &client()).await.unwrap();
        sessions.refresh(&second.refresh_token, &client()).await.unwrap();
        assert!(matches!(sessions.refresh(&first.refresh_token, &client()).await, Err(CrmError::Unauthenticated)));
        assert!(!is_active(&w, &first).await, "a token two rotations back is reuse");
    }
}

#[tokio::test]
async fn a_wrong_secret_for_a_real_session_is_refused_and_leaves_it_alone() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let issued = start(&w, &w.user).await;
        let token = &issued.refresh_token;
        let forged = format!("{}{}", &token[..token.len() - 64], "0".repeat(64));
        assert_ne!(&forged, token);
        assert!(matches!(sessions.refresh(&forged, &client()).await, Err(CrmError::Unauthenticated)));
        assert!(is_active(&w, &issued).await, "a guessed secret must not end the session");
        sessions.refresh(token, &client()).await.unwrap();
    }
}

#[tokio::test]
async fn changing_the_password_revokes_the_users_other_sessions_only() {
    for w in each_store().await {
        let (current, other, another) = (start(&w, &w.user).await, start(&w, &w.user).await, start(&w, &w.user).await);
        let someone_else = start(&w, &w.other_user).await;
        let p = in_session(&w, &current).await;
        w.crm.users().change_password(&p, "user-password", "a-new-password").await.unwrap();
        assert!(is_active(&w, &current).await, "the session that changed it stays");
        for gone in [&other, &another] {
            assert!(!is_active(&w, gone).await, "another session of the user is revoked");
            let refresh = w.crm.sessions().refresh(&gone.refresh_token, &client()).await;
            assert!(matches!(refresh, Err(CrmError::Unauthenticated)), "{refresh:?}");
        }
        assert!(is_active(&w, &someone_else).await, "another user's session is untouched");
    }
}

#[tokio::test]
async fn an_email_change_revokes_the_users_sessions() {
    let w = world().await;
    let (current, other) = (start(&w, &w.user).await, start(&w, &w.user).await);
    let p = in_session(&w, &current).await;
    let own = UserPatch { email: Some("renamed@acme.test".into()), ..UserPatch::default() };
    w.crm.users().update(&p, p.user_id(), own).await.unwrap();
    assert!(is_active(&w, &current).await, "the session that changed it stays");
    assert!(!is_active(&w, &other).await, "the user's other session is revoked");
    // An admin changing it ends all of them; a change of case is no change.
    let later = start(&w, &w.user).await;
    let same = UserPatch { email: Some("RENAMED@acme.test".into()), ..UserPatch::default() };
    w.crm.users().update(&w.admin, p.user_id(), same).await.unwrap();
    assert!(is_active(&w, &later).await);
    let by_admin = UserPatch { email: Some("moved@acme.test".into()), ..UserPatch::default() };
    w.crm.users().update(&w.admin, p.user_id(), by_admin).await.unwrap();
    assert!(!is_active(&w, &current).await && !is_active(&w, &later).await);
}

#[tokio::test]
async fn an_admin_password_reset_revokes_every_session_of_the_user() {
    for w in each_store().await {
        let (a, b) = (start(&w, &w.user).await, start(&w, &w.user).await);
        let admin_session = start(&w, &w.admin).await;
        let admin = in_session(&w, &admin_session).await;
        let users = w.crm.users();
        let target = w.user.user_id();
        assert!(matches!(
            users.reset_password(&w.manager, target, "reset-password").await,
            Err(CrmError::Forbidden(_))
        ));
        assert!(matches!(users.reset_password(&admin, target, "short").await, Err(CrmError::Validation(_))));
        assert!(is_active(&w, &a).await, "a refused reset revokes nothing");
        users.reset_password(&admin, target, "reset-password").await.unwrap();
        assert!(!is_active(&w, &a).await && !is_active(&w, &b).await, "every session of the user is revoked");
        assert!(is_active(&w, &admin_session).await, "the admin's own session stays");
        users.authenticate(w.user.tenant_id(), "user@acme.test", "reset-password").await.unwrap();
        assert!(matches!(
            users.authenticate(w.user.tenant_id(), "user@acme.test", "user-password").await,
            Err(CrmError::Unauthenticated)
        ));
    }
}

#[tokio::test]
async fn api_keys_reset_no_passwords_and_manage_no_sessions() {
    let w = world().await;
    let input = crm_core::access::api_keys::NewApiKey {
        name: "k".into(),
        owner_id: None,
        scopes: vec!["*:write".parse().unwrap()],
        expires_at: None,
    };
    let (_, token) = w.crm.api_keys().create(&w.admin, input).await.unwrap();
    let key = w.crm.api_keys().authenticate(&token).await.unwrap();
    let reset = w.crm.users().reset_password(&key, w.user.user_id(), "reset-password").await;
    assert!(matches!(reset, Err(CrmError::Forbidden(_))), "{reset:?}");
    assert!(matches!(w.crm.sessions().list(&key).await, Err(CrmError::Forbidden(_))));
    assert!(matches!(w.crm.sessions().sign_out_everywhere(&key).await, Err(CrmError::Forbidden(_))));
}

#[tokio::test]
async fn sessions_are_listed_to_their_user_with_client_current_and_last_use() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let browser = ClientInfo { user_agent: Some("Firefox/133\u{0}\n".into()), ip: Some("192.0.2.7".into()) };
        let laptop = sessions.start(&w.user, &browser).await.unwrap();
        w.clock.set(w.crm.now() + Duration::minutes(5));
        let phone = start(&w, &w.user).await;
        let revoked = start(&w, &w.user).await;
        sessions.sign_out(&w.user, revoked.session.meta.id.into()).await.unwrap();
        start(&w, &w.other_user).await;
        let p = in_session(&w, &phone).await;

        let listed = sessions.list(&p).await.unwrap();
        let ids: Vec<Uuid> = listed.iter().map(|s| s.id).collect();
        assert_eq!(ids, [phone.session.meta.id, laptop.session.meta.id], "own active sessions, last used first");
        assert!(listed[0].current && !listed[1].current, "the session of the request is marked current");
        assert_eq!(listed[1].user_agent.as_deref(), Some("Firefox/133"), "kept printable");
        assert_eq!(listed[1].ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(listed[1].last_used_at, laptop.session.meta.created_at);

        // A refresh moves the last use (and the client), and the order with it.
        w.clock.set(w.crm.now() + Duration::minutes(5));
        let moved = ClientInfo { user_agent: Some("Firefox/134".into()), ip: Some("198.51.100.1".into()) };
        sessions.refresh(&laptop.refresh_token, &moved).await.unwrap();
        let listed = sessions.list(&p).await.unwrap();
        assert_eq!(listed[0].id, laptop.session.meta.id);
        assert_eq!(listed[0].last_used_at, w.crm.now());
        assert_eq!(listed[0].ip.as_deref(), Some("198.51.100.1"));
    }
}

#[tokio::test]
async fn a_user_revokes_own_sessions_by_id_and_no_one_elses() {
    for w in each_store().await {
        let sessions = w.crm.sessions();
        let (mine, theirs) = (start(&w, &w.user).await, start(&w, &w.other_user).await);
        let foreign = sessions.revoke_own(&w.user, theirs.session.meta.id.into()).await;
        assert!(matches!(foreign, Err(CrmError::NotFound { .. })), "{foreign:?}");
        assert!(is_active(&w, &theirs).await);
        sessions.revoke_own(&w.user, mine.session.meta.id.into()).await.unwrap();
        assert!(!is_active(&w, &mine).await, "its access tokens stop at once");
        let refresh = sessions.refresh(&mine.refresh_token, &client()).await;
        assert!(matches!(refresh, Err(CrmError::Unauthenticated)));
    }
}

#[tokio::test]
async fn signing_out_everywhere_revokes_every_session_of_the_caller() {
    for w in each_store().await {
        let mine: Vec<IssuedSession> = vec![start(&w, &w.user).await, start(&w, &w.user).await];
        let theirs = start(&w, &w.other_user).await;
        let p = in_session(&w, &mine[0]).await;
        assert_eq!(w.crm.sessions().sign_out_everywhere(&p).await.unwrap(), 2);
        for issued in &mine {
            assert!(!is_active(&w, issued).await);
        }
        assert!(is_active(&w, &theirs).await);
        assert_eq!(w.crm.sessions().sign_out_everywhere(&p).await.unwrap(), 0, "nothing left");
    }
}
