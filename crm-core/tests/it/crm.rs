//! Users, companies, contacts, leads, deals and notifications through their services.

use chrono::Duration;
use crm_core::{
    CrmError, PageRequest, Role, StateMachine,
    access::users::{NewUser, UserPatch},
    customers::companies::NewCompany,
    customers::contacts::{ContactFilter, ContactPatch, NewContact},
    customers::deals::{DealPatch, DealStage, NewDeal},
    customers::leads::{ConvertCompany, ConvertDeal, ConvertLead, LeadFilter, LeadSource, LeadStatus, NewLead},
    entity::Entity,
    money::Currency,
    storage::EntityKind,
};
use rust_decimal_macros::dec;

use crate::support::{World, world};

fn lead(owner: Option<crm_core::Id<crm_core::access::users::User>>) -> NewLead {
    NewLead {
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        email: Some("grace@globex.test".into()),
        phone: None,
        company_name: Some("Globex".into()),
        source: LeadSource::Referral,
        score: Some(70),
        owner_id: owner,
        notes: None,
    }
}

fn deal(title: &str) -> NewDeal {
    NewDeal {
        title: title.into(),
        company_id: None,
        contact_id: None,
        owner_id: None,
        amount: dec!(1000.00),
        currency: Currency::EUR,
        stage: None,
        expected_close_date: None,
    }
}

fn field_names(err: &CrmError) -> Vec<String> {
    match err {
        CrmError::Validation(v) => v.fields.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn unread_titles(w: &World, p: &crm_core::Principal) -> Vec<String> {
    let page = w.crm.notifications().list(p, true, &PageRequest::default()).await.unwrap();
    page.items.into_iter().map(|n| n.title).collect()
}

#[tokio::test]
async fn sign_in_gives_the_same_answer_for_unknown_users_and_wrong_passwords() {
    let w = world().await;
    let t = w.admin.tenant_id();
    let (user, principal) = w.crm.users().authenticate(t, "USER@acme.test", "user-password").await.unwrap();
    assert_eq!((principal.role(), user.last_login_at.is_some()), (Role::User, true));
    for (email, password) in [("user@acme.test", "wrong-password"), ("nobody@acme.test", "user-password")] {
        let err = w.crm.users().authenticate(t, email, password).await.unwrap_err();
        assert!(matches!(err, CrmError::Unauthenticated), "{err:?}");
    }
    let deactivate = UserPatch { active: Some(false), ..UserPatch::default() };
    w.crm.users().update(&w.admin, w.user.user_id(), deactivate).await.unwrap();
    let err = w.crm.users().authenticate(t, "user@acme.test", "user-password").await.unwrap_err();
    assert!(matches!(err, CrmError::Unauthenticated));
    assert!(matches!(w.crm.users().principal(t, w.user.user_id()).await, Err(CrmError::Unauthenticated)));
    // The hash never shows in Debug output or in the audit log.
    assert!(format!("{user:?}").contains("<redacted>"));
    let audit = w.crm.audit().list(&w.admin, &Default::default(), &PageRequest::first(500)).await.unwrap();
    assert!(audit.items.iter().all(|e| !e.changes.to_string().contains("argon2")));
}

#[tokio::test]
async fn only_admins_change_roles_and_users_edit_only_themselves() {
    let w = world().await;
    let promote = UserPatch { role: Some(Role::Admin), ..UserPatch::default() };
    let err = w.crm.users().update(&w.user, w.user.user_id(), promote.clone()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let rename = UserPatch { first_name: Some("Renamed".into()), ..UserPatch::default() };
    assert_eq!(w.crm.users().update(&w.user, w.user.user_id(), rename.clone()).await.unwrap().first_name, "Renamed");
    let err = w.crm.users().update(&w.user, w.other_user.user_id(), rename).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { .. }), "users cannot even see each other: {err:?}");
    let err = w
        .crm
        .users()
        .update(&w.admin, w.admin.user_id(), UserPatch { role: Some(Role::User), ..UserPatch::default() })
        .await
        .unwrap_err();
    assert_eq!(field_names(&err), ["role"]);
    let client = NewUser {
        email: "c2@client.test".into(),
        password: "long enough".into(),
        first_name: "C".into(),
        last_name: "Two".into(),
        role: Role::Client,
        company_id: None,
    };
    let err = w.crm.users().create(&w.admin, client).await.unwrap_err();
    assert_eq!(field_names(&err), ["company_id"]);
    let err = w
        .crm
        .users()
        .create(
            &w.manager,
            NewUser {
                email: "x@acme.test".into(),
                password: "long enough".into(),
                first_name: "X".into(),
                last_name: "Y".into(),
                role: Role::User,
                company_id: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)));
}

#[tokio::test]
async fn passwords_change_only_with_the_current_one() {
    let w = world().await;
    let err = w.crm.users().change_password(&w.user, "wrong", "new password").await.unwrap_err();
    assert_eq!(field_names(&err), ["current_password"]);
    let err = w.crm.users().change_password(&w.user, "user-password", "short").await.unwrap_err();
    assert_eq!(field_names(&err), ["new_password"]);
    w.crm.users().change_password(&w.user, "user-password", "a new password").await.unwrap();
    let t = w.user.tenant_id();
    assert!(w.crm.users().authenticate(t, "user@acme.test", "a new password").await.is_ok());
    assert!(w.crm.users().authenticate(t, "user@acme.test", "user-password").await.is_err());
}

#[tokio::test]
async fn validation_names_every_bad_field() {
    let w = world().await;
    let bad = NewContact {
        first_name: " ".into(),
        last_name: "".into(),
        email: Some("not-an-email".into()),
        ..NewContact::default()
    };
    let err = w.crm.contacts().create(&w.admin, bad).await.unwrap_err();
    assert_eq!(field_names(&err), ["first_name", "last_name", "email"]);
    let err = w.crm.companies().create(&w.admin, NewCompany::default()).await.unwrap_err();
    assert_eq!(field_names(&err), ["name"]);
    let err =
        w.crm.deals().create(&w.admin, NewDeal { amount: dec!(-1), title: "".into(), ..deal("x") }).await.unwrap_err();
    assert_eq!(field_names(&err), ["title", "amount"]);
    let page = PageRequest { limit: Some(0), sort: Some("password".into()), ..PageRequest::default() };
    let err = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &page).await.unwrap_err();
    assert_eq!(field_names(&err), ["limit", "sort"]);
}

#[tokio::test]
async fn users_edit_what_they_own_and_clients_read_only_their_company() {
    let w = world().await;
    let theirs = w
        .crm
        .contacts()
        .create(
            &w.other_user,
            NewContact { first_name: "T".into(), last_name: "Theirs".into(), ..NewContact::default() },
        )
        .await
        .unwrap();
    let patch = ContactPatch { position: Some(Some("CEO".into())), ..ContactPatch::default() };
    assert!(w.crm.contacts().get(&w.user, theirs.id()).await.is_ok(), "users read the whole tenant");
    let err = w.crm.contacts().update(&w.user, theirs.id(), patch.clone()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    assert!(w.crm.contacts().update(&w.manager, theirs.id(), patch).await.is_ok());
    let at_client = w
        .crm
        .contacts()
        .create(
            &w.admin,
            NewContact {
                first_name: "C".into(),
                last_name: "Client".into(),
                company_id: Some(w.client_company.id()),
                ..NewContact::default()
            },
        )
        .await
        .unwrap();
    let seen = w.crm.contacts().list(&w.client, &ContactFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(seen.items.iter().map(|c| c.meta.id).collect::<Vec<_>>(), vec![at_client.meta.id]);
    let err = w.crm.contacts().get(&w.client, theirs.id()).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { .. }));
    let err = w
        .crm
        .contacts()
        .create(&w.client, NewContact { first_name: "A".into(), last_name: "B".into(), ..NewContact::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)));
    let err = w.crm.leads().list(&w.client, &LeadFilter::default(), &PageRequest::default()).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)));
}

#[tokio::test]
async fn lead_status_follows_its_state_machine() {
    let w = world().await;
    let l = w.crm.leads().create(&w.user, lead(None)).await.unwrap();
    let l = w.crm.leads().change_status(&w.user, l.id(), LeadStatus::Contacted, Some(1)).await.unwrap();
    let l = w.crm.leads().change_status(&w.user, l.id(), LeadStatus::Unqualified, None).await.unwrap();
    let err = w.crm.leads().change_status(&w.user, l.id(), LeadStatus::Qualified, None).await.unwrap_err();
    assert!(
        matches!(&err, CrmError::InvalidTransition { kind: EntityKind::Lead, from, to } if from == "unqualified" && to == "qualified"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "lead cannot go from `unqualified` to `qualified`");
    let err = w.crm.leads().convert(&w.user, l.id(), ConvertLead::default()).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }));
    let err = w.crm.leads().change_status(&w.user, l.id(), LeadStatus::Contacted, Some(1)).await.unwrap_err();
    assert!(matches!(err, CrmError::Conflict { .. }), "stale version: {err:?}");
    assert!(LeadStatus::New.can_become(LeadStatus::Converted));
    assert!(LeadStatus::Converted.next().is_empty());
}

#[tokio::test]
async fn converting_a_lead_is_all_or_nothing() {
    let w = world().await;
    let l = w.crm.leads().create(&w.user, lead(None)).await.unwrap();
    let storage = w.crm.storage().clone();
    let count = async |kind| {
        let q = crm_core::storage::ListQuery { with_total: true, ..Default::default() };
        storage.list(w.user.tenant_id(), kind, &q).await.unwrap().total.unwrap()
    };
    let before = (count(EntityKind::Company).await, count(EntityKind::Contact).await, count(EntityKind::Deal).await);
    // An invalid deal fails the whole conversion: no company, contact or deal appears.
    let bad = ConvertLead {
        company: ConvertCompany::New(None),
        deal: Some(ConvertDeal { title: "".into(), amount: dec!(10), currency: Currency::EUR }),
        ..ConvertLead::default()
    };
    let err = w.crm.leads().convert(&w.user, l.id(), bad).await.unwrap_err();
    assert_eq!(field_names(&err), ["deal.title"]);
    assert_eq!(
        before,
        (count(EntityKind::Company).await, count(EntityKind::Contact).await, count(EntityKind::Deal).await)
    );
    assert_eq!(w.crm.leads().get(&w.user, l.id()).await.unwrap().status, LeadStatus::New);

    let good = ConvertLead {
        company: ConvertCompany::New(None),
        deal: Some(ConvertDeal { title: "Globex rollout".into(), amount: dec!(12000.00), currency: Currency::EUR }),
        version: Some(1),
    };
    let done = w.crm.leads().convert(&w.user, l.id(), good).await.unwrap();
    let company = done.company.unwrap();
    let deal = done.deal.unwrap();
    assert_eq!((company.name.as_str(), done.contact.company_id), ("Globex", Some(company.id())));
    assert_eq!(
        (deal.contact_id, deal.company_id, deal.stage),
        (Some(done.contact.id()), Some(company.id()), DealStage::Prospecting)
    );
    assert_eq!(
        (done.lead.status, done.lead.deal_id, done.lead.contact_id),
        (LeadStatus::Converted, Some(deal.id()), Some(done.contact.id()))
    );
    let events = w.crm.storage().outbox_pending(1000).await.unwrap();
    assert!(events.iter().any(|e| e.name == "lead.converted" && e.entity_id == l.meta.id));
    let err = w.crm.leads().convert(&w.user, l.id(), ConvertLead::default()).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }), "converting twice: {err:?}");
}

#[tokio::test]
async fn conversion_into_an_existing_company_checks_it() {
    let w = world().await;
    let acme = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Existing".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let l = w.crm.leads().create(&w.admin, lead(None)).await.unwrap();
    let done = w
        .crm
        .leads()
        .convert(
            &w.admin,
            l.id(),
            ConvertLead { company: ConvertCompany::Existing(acme.id()), ..ConvertLead::default() },
        )
        .await
        .unwrap();
    assert_eq!(done.contact.company_id, Some(acme.id()));
    let other = w.crm.leads().create(&w.admin, lead(None)).await.unwrap();
    let err = w
        .crm
        .leads()
        .convert(
            &w.admin,
            other.id(),
            ConvertLead { company: ConvertCompany::Existing(crm_core::Id::generate()), ..ConvertLead::default() },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::NotFound { kind: EntityKind::Company, .. }), "{err:?}");
    let nameless = w.crm.leads().create(&w.admin, NewLead { company_name: None, ..lead(None) }).await.unwrap();
    let err = w
        .crm
        .leads()
        .convert(&w.admin, nameless.id(), ConvertLead { company: ConvertCompany::New(None), ..ConvertLead::default() })
        .await
        .unwrap_err();
    assert_eq!(field_names(&err), ["company"]);
}

#[tokio::test]
async fn assignments_notify_the_assignee_and_nobody_else() {
    let w = world().await;
    w.crm.leads().create(&w.manager, lead(Some(w.user.user_id()))).await.unwrap();
    w.crm.leads().create(&w.user, lead(None)).await.unwrap();
    let d = w.crm.deals().create(&w.manager, deal("Mine")).await.unwrap();
    w.crm
        .deals()
        .update(&w.manager, d.id(), DealPatch { owner_id: Some(w.user.user_id()), ..DealPatch::default() })
        .await
        .unwrap();
    let mut titles = unread_titles(&w, &w.user).await;
    titles.sort();
    assert_eq!(titles, ["Deal assigned to you: Mine", "Lead assigned to you: Grace Hopper"]);
    assert!(unread_titles(&w, &w.manager).await.is_empty());
    assert!(unread_titles(&w, &w.other_user).await.is_empty());
    // Notifications are private: another user cannot read or mark them.
    let mine = w.crm.notifications().list(&w.user, false, &PageRequest::default()).await.unwrap().items;
    let err = w.crm.notifications().mark_read(&w.other_user, mine[0].id()).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound { .. }));
    w.crm.notifications().mark_read(&w.user, mine[0].id()).await.unwrap();
    assert_eq!(unread_titles(&w, &w.user).await.len(), 1);
    assert_eq!(w.crm.notifications().mark_all_read(&w.user).await.unwrap(), 1);
    assert!(unread_titles(&w, &w.user).await.is_empty());
}

#[tokio::test]
async fn deal_stages_set_probability_and_close_for_good() {
    let w = world().await;
    let d = w
        .crm
        .deals()
        .create(
            &w.user,
            NewDeal {
                expected_close_date: Some(w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(30)),
                ..deal("Big")
            },
        )
        .await
        .unwrap();
    assert_eq!((d.stage, d.probability, d.weighted_amount()), (DealStage::Prospecting, 10, dec!(100.00)));
    let d = w.crm.deals().change_stage(&w.user, d.id(), DealStage::Negotiation, None, Some(1)).await.unwrap();
    assert_eq!((d.probability, d.weighted_amount()), (75, dec!(750.00)));
    let err = w.crm.deals().change_stage(&w.user, d.id(), DealStage::ClosedLost, None, None).await.unwrap_err();
    assert_eq!(field_names(&err), ["lost_reason"]);
    let d =
        w.crm.deals().change_stage(&w.user, d.id(), DealStage::ClosedLost, Some("Budget".into()), None).await.unwrap();
    assert_eq!((d.probability, d.closed_at.is_some()), (0, true));
    let err = w.crm.deals().change_stage(&w.user, d.id(), DealStage::Proposal, None, None).await.unwrap_err();
    assert!(matches!(&err, CrmError::InvalidTransition { from, to, .. } if from == "closed_lost" && to == "proposal"));
    let names: Vec<String> = w.crm.storage().outbox_pending(100).await.unwrap().into_iter().map(|e| e.name).collect();
    assert!(names.contains(&"deal.stage_changed".to_string()) && names.contains(&"deal.lost".to_string()), "{names:?}");
    let err =
        w.crm.deals().create(&w.user, NewDeal { stage: Some(DealStage::ClosedWon), ..deal("x") }).await.unwrap_err();
    assert_eq!(field_names(&err), ["stage"]);
}
