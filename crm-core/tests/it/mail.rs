//! Emails decided in the core: the password reset flow (token stored hashed, single
//! use, 30 minutes, superseded, sessions revoked; unknown emails send nothing) and the
//! `EmailReaction` (an issued invoice emails its contact; an assignment its assignee).

use std::time::Duration as StdDuration;

use chrono::Duration;
use crm_core::{
    CrmError,
    access::sessions::ClientInfo,
    customers::{
        companies::NewCompany,
        contacts::NewContact,
        leads::{LeadSource, NewLead},
    },
    emails::EmailReaction,
    entity::Entity,
    jobs::{Job, Reaction},
    mail::{EMAILS, Email, escape_html},
    sales::{invoices::NewInvoice, lines::LineInput},
};
use rust_decimal_macros::dec;

use crate::support::{World, world};

const LINK: &str = "https://crm.example/app";

/// Every email waiting on the CRM's queue, taken off it.
async fn sent(w: &World) -> Vec<Email> {
    let mut emails = Vec::new();
    while let Some(r) = w.crm.jobs().reserve(EMAILS, StdDuration::from_secs(60)).await.unwrap() {
        let job: &Job = &r.job;
        emails.push(Email::of_job(job).unwrap());
        w.crm.jobs().ack(&r).await.unwrap();
    }
    emails
}

fn token_in(email: &Email) -> String {
    let start = email.text.find("token=").expect("a link with a token") + "token=".len();
    email.text[start..].split_whitespace().next().unwrap().to_owned()
}

fn names_token(e: &CrmError) -> bool {
    matches!(e, CrmError::Validation(errors) if errors.to_string().contains("token"))
}

#[tokio::test]
async fn forgot_password_emails_a_link_that_resets_once_and_revokes_sessions() {
    let w = world().await;
    let tenant = w.admin.tenant_id();
    let users = w.crm.users();
    let (_, principal) = users.authenticate(tenant, "user@acme.test", "user-password").await.unwrap();
    w.crm.sessions().start(&principal, &ClientInfo::default()).await.unwrap();

    users.forgot_password(tenant, "USER@acme.test", LINK).await.unwrap();
    let emails = sent(&w).await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].to, "user@acme.test");
    assert!(emails[0].text.contains(&format!("{LINK}/reset-password?token=crp_")), "{}", emails[0].text);
    let token = token_in(&emails[0]);

    let short = users.reset_password_with_token(&token, "short").await.unwrap_err();
    assert!(matches!(&short, CrmError::Validation(e) if e.to_string().contains("new_password")), "{short:?}");
    users.reset_password_with_token(&token, "a brand new password").await.unwrap();
    assert!(users.authenticate(tenant, "user@acme.test", "a brand new password").await.is_ok());
    assert!(users.authenticate(tenant, "user@acme.test", "user-password").await.is_err());
    let active = w.crm.sessions().list(&principal).await.unwrap();
    assert!(active.is_empty(), "every session revoked: {active:?}");

    let again = users.reset_password_with_token(&token, "another new password").await.unwrap_err();
    assert!(names_token(&again), "{again:?}");
}

#[tokio::test]
async fn a_reset_token_expires_after_30_minutes_and_a_new_request_supersedes_it() {
    let w = world().await;
    let tenant = w.admin.tenant_id();
    let users = w.crm.users();
    users.forgot_password(tenant, "user@acme.test", LINK).await.unwrap();
    let first = token_in(&sent(&w).await[0]);
    users.forgot_password(tenant, "user@acme.test", LINK).await.unwrap();
    let second = token_in(&sent(&w).await[0]);
    let superseded = users.reset_password_with_token(&first, "a brand new password").await.unwrap_err();
    assert!(names_token(&superseded), "{superseded:?}");

    w.clock.set(w.crm.now() + Duration::minutes(30));
    let expired = users.reset_password_with_token(&second, "a brand new password").await.unwrap_err();
    assert!(names_token(&expired), "{expired:?}");
    assert!(users.authenticate(tenant, "user@acme.test", "user-password").await.is_ok(), "password unchanged");
}

#[tokio::test]
async fn unknown_emails_and_bad_tokens_send_nothing_and_answer_alike() {
    let w = world().await;
    let tenant = w.admin.tenant_id();
    let users = w.crm.users();
    users.forgot_password(tenant, "nobody@acme.test", LINK).await.unwrap();
    assert!(sent(&w).await.is_empty());
    let unknown = format!("crp_{}_{}_{}", tenant.0.simple(), uuid::Uuid::nil().simple(), "0".repeat(64));
    for token in ["", "crp_x", unknown.as_str()] {
        let e = users.reset_password_with_token(token, "a brand new password").await.unwrap_err();
        assert!(names_token(&e), "{token}: {e:?}");
    }
}

#[tokio::test]
async fn the_reset_token_is_stored_hashed_and_shown_nowhere() {
    let w = world().await;
    let tenant = w.admin.tenant_id();
    w.crm.users().forgot_password(tenant, "user@acme.test", LINK).await.unwrap();
    let email = &sent(&w).await[0];
    let secret = token_in(email).rsplit('_').next().unwrap().to_owned();
    let user = w.crm.users().get(&w.admin, w.user.user_id()).await.unwrap();
    let stored = serde_json::to_string(&user).unwrap();
    assert!(stored.contains("secret_hash") && !stored.contains(&secret), "only the hash is stored");
    assert!(!format!("{user:?}").contains("secret_hash"), "Debug hides the reset");
    assert!(!format!("{email:?}").contains(&secret), "Debug of an email shows no body");
    let audit = w.crm.storage().outbox_pending(1000).await.unwrap();
    assert!(audit.iter().all(|e| !e.payload.to_string().contains(&secret)));
}

#[tokio::test]
async fn an_issued_invoice_emails_its_contact_a_summary_with_escaped_html() {
    let w = world().await;
    let company = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Globex".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let contact = NewContact {
        first_name: "Ann <b>".into(),
        last_name: "Buyer".into(),
        email: Some("ann@globex.test".into()),
        company_id: Some(company.id()),
        ..NewContact::default()
    };
    let contact = w.crm.contacts().create(&w.manager, contact).await.unwrap();
    let input = NewInvoice {
        company_id: company.id(),
        contact_id: Some(contact.id()),
        owner_id: None,
        currency: crm_core::money::Currency::EUR,
        lines: vec![LineInput::new("Widgets & <gadgets>", dec!(2), dec!(50))],
        payment_terms_days: Some(14),
        notes: None,
    };
    let invoice = w.crm.invoices().create(&w.manager, input).await.unwrap();
    let invoice = w.crm.invoices().issue(&w.manager, invoice.id(), None).await.unwrap();
    let reaction = EmailReaction::new(w.crm.clone());
    for event in w.crm.storage().outbox_pending(1000).await.unwrap() {
        reaction.react(&event).await.unwrap();
    }
    let emails: Vec<Email> = sent(&w).await.into_iter().filter(|e| e.to == "ann@globex.test").collect();
    assert_eq!(emails.len(), 1, "{emails:?}");
    let number = invoice.number.clone().unwrap();
    let email = &emails[0];
    let total = format!("{} EUR", invoice.totals.total);
    assert!(email.subject.contains(&number) && email.subject.contains(&total), "{}", email.subject);
    let due = invoice.due_date.unwrap().to_string();
    for part in [number.as_str(), total.as_str(), due.as_str(), "Widgets & <gadgets>"] {
        assert!(email.text.contains(part), "text lacks {part}: {}", email.text);
    }
    assert!(email.html.contains(&escape_html("Widgets & <gadgets>")) && !email.html.contains("<gadgets>"));
    assert!(email.html.contains("Ann &lt;b&gt;") && !email.html.contains("<b>"), "{}", email.html);
}

#[tokio::test]
async fn an_assignment_emails_the_assignee_and_other_events_send_nothing() {
    let w = world().await;
    let lead = NewLead {
        first_name: "Bo".into(),
        last_name: "Lead".into(),
        email: None,
        phone: None,
        company_name: None,
        source: LeadSource::Referral,
        score: None,
        owner_id: Some(w.user.user_id()),
        notes: None,
    };
    w.crm.leads().create(&w.manager, lead).await.unwrap();
    let reaction = EmailReaction::new(w.crm.clone());
    let events = w.crm.storage().outbox_pending(1000).await.unwrap();
    let mut emails = Vec::new();
    for event in &events {
        emails.extend(reaction.emails_for(event).await.unwrap().into_iter().map(|e| (event.name.clone(), e)));
    }
    for (name, email) in &emails {
        assert!(name.ends_with(".assigned"), "{name} sends no email");
        assert_eq!(email.to, "user@acme.test");
    }
    let assigned = events.iter().filter(|e| e.name.ends_with(".assigned")).count();
    assert_eq!((emails.len(), assigned), (1, 1), "the lead's assignment, and nothing else");
}

#[test]
fn escape_html_escapes_markup_and_quotes() {
    assert_eq!(escape_html(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}
