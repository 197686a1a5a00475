//! The email worker against a real SMTP server process (aiosmtpd on 127.0.0.1): what
//! the core composed arrives whole, and a send to a server that is down fails the job,
//! which the queue runs again after its backoff.

use std::{sync::Arc, time::Duration};

use chrono::{TimeZone, Utc};
use crm_core::{
    Clock, ManualClock,
    jobs::{JobQueue, StorageJobQueue},
    mail::{EMAILS, Email},
    storage::memory::MemoryStorage,
};
use crm_jobs::{EmailWorker, Mailer, testing::SmtpSink};

fn queue_on(clock: Arc<ManualClock>) -> Arc<dyn JobQueue> {
    Arc::new(StorageJobQueue::new(Arc::new(MemoryStorage::new()), clock))
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()))
}

#[tokio::test]
async fn an_email_reaches_the_smtp_server_with_its_text_and_html() {
    let smtp = SmtpSink::start();
    let queue = queue_on(clock());
    let email = Email {
        to: "ada@acme.test".into(),
        subject: "Invoice INV-2026-0001 — 1 200,00 €".into(),
        text: "Hello Ada,\n\nyour invoice is attached.".into(),
        html: "<p>Hello Ada,</p><p>your invoice is attached.</p>".into(),
    };
    queue.enqueue(email.job().unwrap()).await.unwrap();
    let worker = EmailWorker::new(queue.clone(), Mailer::smtp(&smtp.url(), "CRM <crm@acme.test>").unwrap());
    assert_eq!(worker.pass().await.unwrap(), 1);
    let got = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["ada@acme.test"]);
    assert_eq!(got[0].mail_from, "crm@acme.test");
    assert_eq!(got[0].subject, email.subject, "non-ASCII subjects survive");
    assert_eq!(got[0].text.replace("\r\n", "\n").trim_end(), email.text);
    assert_eq!(got[0].html.trim_end(), email.html);
    assert_eq!(worker.pass().await.unwrap(), 0, "acked: sent once");
}

#[tokio::test]
async fn a_send_to_a_server_that_is_down_runs_again_after_its_backoff() {
    let clock = clock();
    let queue = queue_on(clock.clone());
    queue.enqueue(Email::plain("ada@acme.test", "Hi", &["Hello".into()]).job().unwrap()).await.unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down =
        EmailWorker::new(queue.clone(), Mailer::smtp(&format!("smtp://127.0.0.1:{port}"), "crm@acme.test").unwrap());
    assert_eq!(down.pass().await.unwrap(), 1);
    assert!(queue.reserve(EMAILS, Duration::from_secs(60)).await.unwrap().is_none(), "waits for its backoff");

    let smtp = SmtpSink::start();
    clock.set(clock.now() + chrono::Duration::minutes(2));
    let up = EmailWorker::new(queue.clone(), Mailer::smtp(&smtp.url(), "crm@acme.test").unwrap());
    assert_eq!(up.pass().await.unwrap(), 1, "due again after the backoff");
    assert_eq!(smtp.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    assert!(queue.dead_letters(EMAILS, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_smtp_settings_are_refused_with_the_flag_named() {
    let err = Mailer::smtp("http://mail.example", "crm@acme.test").unwrap_err();
    assert!(err.to_string().contains("--smtp-url"), "{err}");
    let err = Mailer::smtp("smtp://127.0.0.1:2525", "not an address").unwrap_err();
    assert!(err.to_string().contains("--mail-from"), "{err}");
}
