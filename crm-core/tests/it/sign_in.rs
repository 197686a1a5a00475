//! Sign-in: what an unknown email costs next to a real account, imported hashes and
//! their ceiling, and the throttling rule (per address and account pair, with back-off).

use std::sync::{Arc, Mutex};

use crm_core::{
    Crm, CrmError, Role, TenantId,
    access::users::{Bootstrap, ImportedUser, NewUser},
    passwords::{BlockingJob, HashCost, Inline, JobDone, Offload, PasswordPolicy, PasswordWork},
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
