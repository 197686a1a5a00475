//! Sign-in: what an unknown email costs next to a real account, imported hashes and
//! their ceiling, and the throttling rule (per address and account pair, with back-off).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::TimeZone as _;
use chrono::Utc;
use crm_core::{
    Clock as _, Crm, CrmError, ManualClock, Role, TenantId,
    access::users::{Bootstrap, ImportedUser, NewUser},
    passwords::{BlockingJob, HashCost, Inline, JobDone, Offload, PasswordPolicy, PasswordWork},
    rate_limit::{
        RateDecision, RateLimiter,
        sign_in::{SignInAttempt, SignInPolicy, SignInThrottle},
    },
    storage::memory::MemoryStorage,
};

/// Runs jobs inline and records what each password job computed.
#[derive(Default)]
struct Recorder(Mutex<Vec<PasswordWork>>);

impl Recorder {
    fn take(&self) -> Vec<PasswordWork> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Offload for Recorder {
    fn run(&self, job: BlockingJob) -> JobDone {
        Inline.run(job)
    }
    fn run_password_work(&self, work: PasswordWork, job: BlockingJob) -> JobDone {
        self.0.lock().unwrap().push(work);
        self.run(job)
    }
}

struct Setup {
    crm: Crm,
    tenant: TenantId,
    admin: crm_core::Principal,
    work: Arc<Recorder>,
}

async fn setup() -> Setup {
    let work = Arc::new(Recorder::default());
    let crm =
        Crm::builder(MemoryStorage::shared()).passwords(PasswordPolicy::insecure_fast()).offload(work.clone()).build();
    let (_, _, admin) = crm
        .users()
        .bootstrap(Bootstrap {
            tenant_name: "Acme".into(),
            admin_email: "admin@acme.test".into(),
            admin_password: "admin-password".into(),
            admin_first_name: "Ada".into(),
            admin_last_name: "Admin".into(),
        })
        .await
        .unwrap();
    let new_user = NewUser {
        email: "user@acme.test".into(),
        password: "user-password".into(),
        first_name: "Uma".into(),
        last_name: "User".into(),
        role: Role::User,
        company_id: None,
    };
    crm.users().create(&admin, new_user).await.unwrap();
    work.take();
    let tenant = admin.tenant_id();
    Setup { crm, tenant, admin, work }
}

fn imported(email: &str, password_hash: String) -> ImportedUser {
    ImportedUser {
        email: email.into(),
        first_name: "Imre".into(),
        last_name: "Imported".into(),
        role: Role::User,
        company_id: None,
        active: true,
        password_hash,
    }
}

/// An argon2id hash of `password` at these parameters.
fn argon2id(password: &str, m: u32, t: u32, p: u32) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(m, t, p, None).unwrap());
    hasher.hash_password(password.as_bytes()).unwrap().to_string()
}

async fn refused(s: &Setup, email: &str, password: &str) {
    let err = s.crm.users().authenticate(s.tenant, email, password).await.unwrap_err();
    assert!(matches!(err, CrmError::Unauthenticated), "{email}: {err:?}");
}

#[tokio::test]
async fn an_unknown_email_costs_the_one_verification_a_wrong_password_does() {
    let s = setup().await;
    let current = PasswordWork::Verify(PasswordPolicy::insecure_fast().cost());
    refused(&s, "user@acme.test", "wrong-password").await;
    assert_eq!(s.work.take(), [current], "a wrong password for a real account");
    refused(&s, "nobody@acme.test", "wrong-password").await;
    assert_eq!(s.work.take(), [current], "an unknown email: the same one verification at the same cost");
    let inactive = imported("gone@acme.test", argon2id("gone-password", 64, 1, 1));
    let inactive = ImportedUser { active: false, ..inactive };
    s.crm.users().import(&s.admin, inactive).await.unwrap();
    s.work.take();
    refused(&s, "gone@acme.test", "gone-password").await;
    assert_eq!(s.work.take(), [current], "an inactive account");
}

#[tokio::test]
async fn legacy_hashes_are_replaced_at_sign_in_so_every_account_costs_the_same() {
    let s = setup().await;
    let current = PasswordWork::Verify(PasswordPolicy::insecure_fast().cost());
    let legacy = [
        ("bcrypt@acme.test", bcrypt::hash("legacy-password", 4).unwrap(), HashCost::Bcrypt { cost: 4 }),
        (
            "argon@acme.test",
            argon2id("legacy-password", 128, 2, 1),
            HashCost::Argon2id { memory_kib: 128, iterations: 2, parallelism: 1 },
        ),
    ];
    for (email, hash, cost) in legacy {
        s.crm.users().import(&s.admin, imported(email, hash)).await.unwrap();
        s.work.take();
        refused(&s, email, "wrong-password").await;
        assert_eq!(s.work.take(), [PasswordWork::Verify(cost)], "{email} before its first sign-in");
        s.crm.users().authenticate(s.tenant, email, "legacy-password").await.unwrap();
        s.work.take();
        refused(&s, email, "wrong-password").await;
        assert_eq!(s.work.take(), [current], "{email} after its first sign-in costs what an unknown email does");
    }
}

#[tokio::test]
async fn imported_hashes_beyond_the_ceiling_are_refused_naming_the_field() {
    let s = setup().await;
    let real = argon2id("pw", 64, 1, 1);
    let (_, tail) = real.split_once("m=64,t=1,p=1").unwrap();
    let argon = |params: &str| format!("$argon2id$v=19${params}{tail}");
    let bcrypt_at = |cost: u32| format!("$2b${cost:02}${}", "a".repeat(53));
    let too_dear = [
        (bcrypt_at(15), "bcrypt cost 15"),
        (argon("m=65537,t=1,p=1"), "memory of 65537 KiB"),
        (argon("m=65536,t=11,p=1"), "iterations 11"),
        (argon("m=65536,t=1,p=17"), "parallelism 17"),
        ("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(), "must be a bcrypt or argon2id hash"),
        ("plain text".into(), "must be a bcrypt or argon2id hash"),
    ];
    for (i, (hash, says)) in too_dear.into_iter().enumerate() {
        let err = s.crm.users().import(&s.admin, imported(&format!("dear{i}@acme.test"), hash.clone())).await;
        let Err(CrmError::Validation(errors)) = err else { panic!("{hash} was not refused: {err:?}") };
        assert_eq!(errors.fields.len(), 1, "{errors}");
        assert_eq!(errors.fields[0].field, "password_hash", "{errors}");
        assert!(errors.fields[0].message.contains(says), "{hash}: {errors}");
    }
    // At the ceiling is accepted.
    for (i, hash) in [bcrypt_at(14), argon("m=65536,t=10,p=16")].into_iter().enumerate() {
        s.crm.users().import(&s.admin, imported(&format!("ceiling{i}@acme.test"), hash)).await.unwrap();
    }
}

/// A limiter that allows `limit` requests per key and never refills.
struct Counting {
    limit: u32,
    seen: Mutex<std::collections::HashMap<String, u32>>,
}

#[async_trait::async_trait]
impl RateLimiter for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    async fn check(&self, key: &str) -> crm_core::Result<RateDecision> {
        let mut seen = self.seen.lock().unwrap();
        let used = seen.entry(key.to_owned()).or_default();
        let allowed = *used < self.limit;
        if allowed {
            *used += 1;
        }
        let remaining = self.limit - *used;
        Ok(RateDecision { allowed, limit: self.limit, remaining, reset_after: Duration::from_secs(3600) })
    }
}

fn throttle(per_client: u32, policy: SignInPolicy) -> (SignInThrottle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()));
    let limiter = Arc::new(Counting { limit: per_client, seen: Mutex::default() });
    (SignInThrottle::new(limiter, policy).with_clock(clock.clone()), clock)
}

fn policy(free_failures: u32) -> SignInPolicy {
    SignInPolicy {
        free_failures,
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        forget_after: Duration::from_secs(3600),
        failure_floor: Duration::ZERO,
    }
}

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

fn tenant() -> TenantId {
    TenantId(uuid::Uuid::nil())
}

/// One attempt that gets as far as a wrong password (if admitted); its decision.
async fn fail(t: &SignInThrottle, attempt: &SignInAttempt) -> RateDecision {
    let d = t.admit(attempt).await.unwrap();
    if d.allowed {
        t.settle::<()>(attempt, &Err(CrmError::Unauthenticated)).await.unwrap();
    }
    d
}

#[tokio::test]
async fn a_locked_pair_leaves_other_addresses_and_accounts_free() {
    let (t, _) = throttle(1000, policy(3));
    let ax = SignInAttempt::new(tenant(), "x@acme.test", Some(A));
    for i in 0..3 {
        let d = fail(&t, &ax).await;
        assert!(d.allowed && d.remaining == 2 - i, "failure {} of 3 is free: {d:?}", i + 1);
    }
    let locked = fail(&t, &ax).await;
    assert!(!locked.allowed && locked.reset_after == Duration::from_secs(1), "(A, x) waits: {locked:?}");
    let same_account_elsewhere = SignInAttempt::new(tenant(), " X@Acme.test ", Some(B));
    assert!(t.admit(&same_account_elsewhere).await.unwrap().allowed, "(B, x) is not locked by A's failures");
    let same_address_other_account = SignInAttempt::new(tenant(), "y@acme.test", Some(A));
    assert!(t.admit(&same_address_other_account).await.unwrap().allowed, "(A, y) is not locked");
    let other_tenant = SignInAttempt::new(TenantId(uuid::Uuid::max()), "x@acme.test", Some(A));
    assert!(t.admit(&other_tenant).await.unwrap().allowed, "x in another tenant is another account");
    assert!(!t.admit(&ax).await.unwrap().allowed, "(A, x) itself stays locked");
}

#[tokio::test]
async fn back_off_doubles_up_to_the_cap_and_success_clears_the_pair() {
    let (t, clock) = throttle(1000, policy(2));
    let ax = SignInAttempt::new(tenant(), "x@acme.test", Some(A));
    let mut waits = Vec::new();
    for _ in 0..2 {
        assert!(fail(&t, &ax).await.allowed);
    }
    for _ in 0..6 {
        let refused = fail(&t, &ax).await;
        assert!(!refused.allowed, "{refused:?}");
        waits.push(refused.reset_after.as_secs());
        clock.set(clock.now() + chrono::Duration::from_std(refused.reset_after).unwrap());
        assert!(fail(&t, &ax).await.allowed, "admitted once the announced wait is over");
    }
    assert_eq!(waits, [1, 2, 4, 8, 8, 8], "the wait doubles after each further failure, up to the cap");
    // A success clears the pair: its failures are free again.
    clock.set(clock.now() + chrono::Duration::seconds(8));
    let admitted = t.admit(&ax).await.unwrap();
    assert!(admitted.allowed);
    t.settle(&ax, &Ok(())).await.unwrap();
    for _ in 0..2 {
        assert!(fail(&t, &ax).await.allowed, "free again after a success");
    }
    assert!(!fail(&t, &ax).await.allowed);
}

#[tokio::test]
async fn concurrent_attempts_are_charged_before_their_passwords_are_checked() {
    let (t, _) = throttle(1000, policy(3));
    let ax = SignInAttempt::new(tenant(), "x@acme.test", Some(A));
    // Admitted but not yet settled: still hashing.
    let admitted: Vec<bool> = futures::future::join_all((0..10).map(|_| t.admit(&ax)))
        .await
        .into_iter()
        .map(|d| d.unwrap().allowed)
        .collect();
    assert_eq!(admitted.iter().filter(|a| **a).count(), 3, "{admitted:?}");
    // An attempt that ended for another reason than a wrong password is refunded.
    let (t, _) = throttle(1000, policy(1));
    assert!(t.admit(&ax).await.unwrap().allowed);
    t.settle::<()>(&ax, &Err(CrmError::Unavailable("storage down".into()))).await.unwrap();
    assert!(
        t.admit(&ax).await.unwrap().allowed,
        "a failure that was not a wrong password is not held against the pair"
    );
}

#[tokio::test]
async fn one_address_is_limited_across_accounts_more_loosely() {
    let (t, _) = throttle(5, policy(3));
    for i in 0..5 {
        let d = fail(&t, &SignInAttempt::new(tenant(), &format!("user{i}@acme.test"), Some(A))).await;
        assert!(d.allowed, "attempt {} from A: {d:?}", i + 1);
    }
    let spraying = fail(&t, &SignInAttempt::new(tenant(), "user9@acme.test", Some(A))).await;
    assert!(!spraying.allowed, "the sixth account from one address in the window is refused: {spraying:?}");
    assert!(t.admit(&SignInAttempt::new(tenant(), "user9@acme.test", Some(B))).await.unwrap().allowed);
}

#[tokio::test]
async fn an_ipv6_client_is_one_slash_64() {
    let (t, _) = throttle(1000, policy(1));
    let host = |last: u16| Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last)));
    assert!(fail(&t, &SignInAttempt::new(tenant(), "x@acme.test", host(1))).await.allowed);
    let rotated = fail(&t, &SignInAttempt::new(tenant(), "x@acme.test", host(2))).await;
    assert!(!rotated.allowed, "another address of the same /64 is the same client: {rotated:?}");
    let next_net = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1)));
    assert!(fail(&t, &SignInAttempt::new(tenant(), "x@acme.test", next_net)).await.allowed);
}

#[test]
fn a_refusal_is_held_until_the_failure_floor() {
    let floor = SignInPolicy { failure_floor: Duration::from_millis(500), ..policy(1) };
    assert_eq!(floor.hold_refusal(Duration::from_millis(120)), Duration::from_millis(380));
    assert_eq!(floor.hold_refusal(Duration::from_millis(900)), Duration::ZERO, "a slow refusal is not held longer");
    assert_eq!(policy(1).hold_refusal(Duration::ZERO), Duration::ZERO, "no floor by default");
}
