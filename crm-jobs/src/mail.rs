//! Sending the core's emails ([`Email`] jobs on [`EMAILS`]) over SMTP with lettre, on
//! rustls with ring. Without SMTP configured, the [`Mailer::Log`] writes each message's
//! recipient to the log and nothing else: bodies may carry secrets (reset links).
//!
//! A send that fails for a reason that may pass (the server is down, a 4xx answer)
//! fails the job, and the queue runs it again after its backoff ([`RetryPolicy::EMAILS`]);
//! one that cannot succeed (an address the server refuses for good, a 5xx answer) is
//! dropped with a warning, since retrying it for hours helps nobody.
//!
//! [`RetryPolicy::EMAILS`]: crm_core::jobs::RetryPolicy::EMAILS

use std::{sync::Arc, time::Duration};

use crm_core::{
    CrmError, Result,
    jobs::{JobQueue, Reservation},
    mail::{EMAILS, Email},
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};

use crate::queue;

/// How long a reserved email stays with its worker: past lettre's own timeouts.
pub const EMAIL_VISIBILITY: Duration = Duration::from_secs(120);

/// Where emails go.
#[derive(Clone)]
pub enum Mailer {
    /// Nowhere: each message's recipient is logged (no SMTP configured).
    Log,
    /// An SMTP server.
    Smtp {
        /// The connection pool to the server.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The sender of every message.
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Log => f.write_str("Mailer::Log"),
            // The transport holds the credentials: not shown.
            Mailer::Smtp { from, .. } => f.debug_struct("Mailer::Smtp").field("from", &from.to_string()).finish(),
        }
    }
}

/// Why a mailer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The SMTP URL is not one lettre understands.
    #[error(
        "--smtp-url: {0} (expected smtp://user:pass@host:port, with ?tls=required for STARTTLS, or smtps:// for implicit TLS)"
    )]
    Url(String),
    /// The sender address is not an address.
    #[error("--mail-from `{0}` is not an email address")]
    From(String),
}

impl Mailer {
    /// A mailer sending through the SMTP server of `url` as `from`. `smtps://` is
    /// implicit TLS (port 465 by default); `smtp://…?tls=required` is STARTTLS; plain
    /// `smtp://` sends in the clear (a relay on the same host, tests).
    pub fn smtp(url: &str, from: &str) -> std::result::Result<Self, MailerError> {
        // lettre installs no TLS provider of its own; ring is the process's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailerError::Url(e.to_string()))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from.parse().map_err(|_| MailerError::From(from.to_owned()))?;
        Ok(Mailer::Smtp { transport, from })
    }

    /// Sends `email`. `Ok(false)`: it can never be sent (and was not).
    pub async fn send(&self, email: &Email) -> Result<bool> {
        let Mailer::Smtp { transport, from } = self else {
            tracing::info!(to = %email.to, "email not sent (no --smtp-url): logged here with its recipient only");
            return Ok(true);
        };
        let Ok(to) = email.to.parse::<Mailbox>() else {
            tracing::warn!(to = %email.to, "email dropped: its recipient is not an address");
            return Ok(false);
        };
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(|e| CrmError::Internal(format!("cannot build the email: {e}")))?;
        match transport.send(message).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_permanent() => {
                tracing::warn!(to = %email.to, error = %e, "email dropped: the SMTP server refused it for good");
                Ok(false)
            }
            Err(e) => Err(CrmError::Unavailable(format!("SMTP: {e}"))),
        }
    }
}

/// One server's email worker: takes [`EMAILS`] jobs and sends them.
#[derive(Clone)]
pub struct EmailWorker {
    queue: Arc<dyn JobQueue>,
    mailer: Mailer,
    concurrency: usize,
    idle: Duration,
}

impl std::fmt::Debug for EmailWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailWorker").field("queue", &self.queue.name()).field("mailer", &self.mailer).finish()
    }
}

impl EmailWorker {
    /// A worker taking emails from `queue` and sending them with `mailer`.
    pub fn new(queue: Arc<dyn JobQueue>, mailer: Mailer) -> Self {
        EmailWorker { queue, mailer, concurrency: 8, idle: Duration::from_millis(500) }
    }

    /// Sends up to a batch of due emails at once; says how many jobs it took.
    pub async fn pass(&self) -> Result<usize> {
        queue::pass(
            self.queue.as_ref(),
            EMAILS,
            EMAIL_VISIBILITY,
            self.concurrency,
            |r| async move { self.send(&r).await },
        )
        .await
    }

    async fn send(&self, reservation: &Reservation) -> Result<()> {
        let email = Email::of_job(&reservation.job)?;
        self.mailer.send(&email).await.map(drop)
    }

    /// Works until the task is aborted.
    pub async fn run(self) {
        queue::keep_working("the email worker", self.idle, || self.pass()).await;
    }
}
