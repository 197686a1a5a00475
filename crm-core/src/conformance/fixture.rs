//! A ready-made tenant with one principal per role, over any storage: the starting
//! point of every flow case and of the core's own tests.

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use crate::{
    Crm, CrmBuilder, ManualClock, Principal, Role,
    access::users::{Bootstrap, NewUser},
    customers::companies::{Company, NewCompany},
    passwords::PasswordPolicy,
    storage::Storage,
};

/// A tenant with an admin, a manager, two users, and a client of one customer company.
pub struct World {
    /// The CRM under test (fast password hashing, manual clock).
    pub crm: Crm,
    /// The clock the CRM reads; starts at 2026-03-15 12:00 UTC.
    pub clock: Arc<ManualClock>,
    /// The tenant's admin.
    pub admin: Principal,
    /// A manager.
    pub manager: Principal,
    /// A user.
    pub user: Principal,
    /// Another user, to test ownership.
    pub other_user: Principal,
    /// The client's customer company.
    pub client_company: Company,
    /// A client user of `client_company`.
    pub client: Principal,
}

impl World {
    /// Sets up the world on `storage`; a second call on the same storage makes a
    /// second, separate tenant.
    pub async fn new(storage: Arc<dyn Storage>) -> Self {
        Self::with(storage, |builder| builder).await
    }

    /// [`World::new`] with a CRM built further by `build` (a job queue, `http://`
    /// webhook targets…).
    pub async fn with(storage: Arc<dyn Storage>, build: impl FnOnce(CrmBuilder) -> CrmBuilder) -> Self {
        let clock =
            Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).single().unwrap_or_default()));
        let builder = Crm::builder(storage).clock(clock.clone()).passwords(PasswordPolicy::insecure_fast());
        let crm = build(builder).build();
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
            .expect("bootstrap");
        let client_company = crm
            .companies()
            .create(&admin, NewCompany { name: "Client Co".into(), ..NewCompany::default() })
            .await
            .expect("client company");
        let make = async |email: &str, role: Role, company: Option<&Company>| {
            let user = crm
                .users()
                .create(
                    &admin,
                    NewUser {
                        email: email.into(),
                        password: "user-password".into(),
                        first_name: role.as_str().into(),
                        last_name: "Tester".into(),
                        role,
                        company_id: company.map(|c| c.meta.id),
                    },
                )
                .await
                .expect("create user");
            crm.users().principal(admin.tenant_id(), crate::entity::Entity::id(&user)).await.expect("principal")
        };
        let manager = make("manager@acme.test", Role::Manager, None).await;
        let user = make("user@acme.test", Role::User, None).await;
        let other_user = make("other@acme.test", Role::User, None).await;
        let client = make("client@client.test", Role::Client, Some(&client_company)).await;
        Self { crm, clock, admin, manager, user, other_user, client_company, client }
    }

    /// Every principal with its role name, for table-driven tests.
    pub fn principals(&self) -> [(&'static str, &Principal); 4] {
        [("admin", &self.admin), ("manager", &self.manager), ("user", &self.user), ("client", &self.client)]
    }
}
